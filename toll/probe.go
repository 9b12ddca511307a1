package toll

import (
	"context"
	"fmt"
)

// Authorize obtains a token for api's scope without calling the API. It
// fails the way a call would while the scope is not granted to the
// integration or Maskinporten is down, so it serves as a probe for APIs
// that have no test-auth endpoint.
func (c *Client) Authorize(ctx context.Context, api API) error {
	if c.Tokens == nil {
		return fmt.Errorf("toll: client has no token source")
	}
	scope := Scope(c.Foreign, api.ScopeBase)
	if _, err := c.Tokens.Token(ctx, scope); err != nil {
		return fmt.Errorf("toll: token for scope %s: %w", scope, err)
	}
	return nil
}
