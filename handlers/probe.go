package handlers

import (
	"context"

	"github.com/digitoll/digitoll-worker/toll"
)

// Probes tell the worker whether a paused kind can work again. They fail
// the way the kind's messages would: while the scope is not granted, the
// key is unknown, or Toll or Maskinporten is down.

// testAuther is the part of the Toll client a movement probe uses.
type testAuther interface {
	TestAuth(ctx context.Context, api toll.Movement) error
}

// authorizer is the part of the Toll client that obtains a token for an
// API without calling it, for APIs without test-auth.
type authorizer interface {
	Authorize(ctx context.Context, api toll.Movement) error
}

// Probe obtains a token for the API's scope and calls Toll's test-auth. A
// Toll client without TestAuth cannot be probed and reports success.
func (m *Movement) Probe(ctx context.Context) error {
	p, ok := m.Toll.(testAuther)
	if !ok {
		return nil
	}
	return p.TestAuth(ctx, m.API)
}

// Probe obtains a token for the entry scope.
func (e *Entry) Probe(ctx context.Context) error {
	return authorize(ctx, e.Toll, toll.PresentationV1())
}

// Probe obtains a token for the document upload scope.
func (d *Document) Probe(ctx context.Context) error {
	return authorize(ctx, d.Toll, toll.DocumentV2())
}

// authorize probes client for api when it can obtain tokens on its own.
func authorize(ctx context.Context, client any, api toll.Movement) error {
	a, ok := client.(authorizer)
	if !ok {
		return nil
	}
	return a.Authorize(ctx, api)
}
