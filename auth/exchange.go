package auth

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/digitoll/digitoll-worker/failure"
)

// Exchanger trades a Maskinporten access token for a Toll access token at
// Toll's token endpoint. It caches nothing; Cache does. Safe for
// concurrent use once its fields are set.
type Exchanger struct {
	// URL is <toll base>/access/external/oauth/token, e.g.
	// "https://api.toll.no/api/access/external/oauth/token".
	URL string
	// HTTP sends the requests; nil means a client with a 30 s timeout.
	// Redirects are never followed, whatever the client says.
	HTTP *http.Client
	// Now is the clock for the token's expiry and Retry-After dates; nil
	// means time.Now.
	Now func() time.Time
}

// Exchange trades maskinportenToken for a Toll token. The token's Expiry
// comes from Toll's expires_in; no lifetime is assumed. Failures are
// *OAuthError for answers from Toll (400/401/403 and other 4xx classify as
// failure.ErrConfig; 5xx and 429 as failure.ErrTransient, with
// RetryAfter when Toll sent Retry-After), or errors marked
// failure.ErrTransient for network failures and timeouts.
func (x *Exchanger) Exchange(ctx context.Context, maskinportenToken string) (Token, error) {
	if x.URL == "" {
		return Token{}, failure.Mark(errors.New("auth: token exchange: missing URL"), failure.Config)
	}
	if maskinportenToken == "" {
		return Token{}, failure.Mark(errors.New("auth: token exchange: empty Maskinporten token"), failure.Config)
	}
	now := time.Now()
	if x.Now != nil {
		now = x.Now()
	}
	// Toll documents these short values, not RFC 8693's URNs.
	form := url.Values{
		"grant_type":         {"token-exchange"},
		"subject_token_type": {"access_token"},
		"subject_token":      {maskinportenToken},
	}
	tr, err := postForm(ctx, x.HTTP, x.URL, form, []string{maskinportenToken}, now)
	if err != nil {
		return Token{}, err
	}
	return tr.token(now), nil
}
