// Package toll is the HTTP client for Tolletaten's Digitoll APIs. It knows
// paths, bodies and status codes; it does not know NATS, retries across
// messages, or how tokens are made.
package toll

import "context"

// Tokens hands out Toll bearer tokens per scope. Implementations cache
// tokens and must be safe for concurrent use (auth.Cache is the one the
// worker uses).
type Tokens interface {
	// Token returns a valid Toll access token for scope.
	Token(ctx context.Context, scope string) (string, error)
	// Invalidate drops token from the cache for scope, if it is still the
	// cached one, so that the next Token call fetches a fresh one. It is
	// called when Toll answers 401 to a request made with token.
	Invalidate(scope, token string)
}
