package handlers

import (
	"context"

	"github.com/digitoll/digitoll-worker/toll"
)

// Probes tell the worker whether a paused kind can work again. They fail
// the way the kind's messages would: while the scope is not granted, the
// key is unknown, or Toll or Maskinporten is down.

// Probe obtains a token for the API's scope and calls Toll's test-auth.
func (m *Movement) Probe(ctx context.Context) error {
	return m.Toll.TestAuth(ctx, m.API)
}

// Probe obtains a token for the entry scope.
func (e *Entry) Probe(ctx context.Context) error {
	return e.Toll.Authorize(ctx, toll.PresentationV1())
}

// Probe obtains a token for the document upload scope.
func (d *Document) Probe(ctx context.Context) error {
	return d.Toll.Authorize(ctx, toll.DocumentV2())
}
