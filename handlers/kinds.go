package handlers

import (
	"log/slog"

	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/toll"
)

// Client is everything the handlers need from Toll; *toll.Client
// provides it.
type Client interface {
	MovementAPI
	EntryAPI
	DocumentAPI
}

// Deps are what the handlers are built from; each takes what it needs.
// Toll is required; the rest may be left zero for the defaults.
type Deps struct {
	Toll Client
	// Files reads the documents submissions name by object.
	Files    FileSource
	Retry    RetryPolicy
	Poll     PollPolicy
	Logger   *slog.Logger
	Observer Observer
}

// KindSpec is how the worker carries out one kind.
type KindSpec struct {
	// API is the Toll API the kind's submissions are sent to; its
	// ScopeBase is the scope of the kind's token.
	API toll.API
	// TestAuth tells whether the handler's Probe calls Toll's test-auth
	// besides getting a token (the movement APIs have one; the others
	// are only authorized).
	TestAuth bool
	// New builds the kind's handler.
	New func(Deps) Handler
}

// Kind is the kind the spec carries out: its API's.
func (s KindSpec) Kind() contract.Kind { return s.API.Kind }

// Kinds is the handler of every kind, in contract.Kinds' order (a test
// holds the two lists together). A new kind is an entry here and in
// contract's table; docs/development.md lists the rest.
func Kinds() []KindSpec {
	movement := func(api toll.API) KindSpec {
		return KindSpec{API: api, TestAuth: true, New: func(d Deps) Handler {
			return &Movement{API: api, Toll: d.Toll, Retry: d.Retry, Poll: d.Poll, Logger: d.Logger, Observer: d.Observer}
		}}
	}
	return []KindSpec{
		movement(toll.RoadV2()),
		movement(toll.AirV1()),
		{API: toll.PresentationV1(), New: func(d Deps) Handler {
			return &Entry{Toll: d.Toll, Retry: d.Retry, Logger: d.Logger, Observer: d.Observer}
		}},
		{API: toll.DocumentV2(), New: func(d Deps) Handler {
			return &Document{Toll: d.Toll, Files: d.Files, Retry: d.Retry, Logger: d.Logger, Observer: d.Observer}
		}},
	}
}

// KindOf returns the spec of kind, or false for a kind this version has
// no handler for.
func KindOf(kind contract.Kind) (KindSpec, bool) {
	for _, s := range Kinds() {
		if s.Kind() == kind {
			return s, true
		}
	}
	return KindSpec{}, false
}
