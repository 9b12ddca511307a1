package auth

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/digitoll/digitoll-worker/failure"
)

// grantTypeJWTBearer is the RFC 7523 grant type Maskinporten expects.
const grantTypeJWTBearer = "urn:ietf:params:oauth:grant-type:jwt-bearer"

// GrantSigner signs the Maskinporten grants of one integration (see
// Signer.Grant for the contract). *Signer signs with its one key; *KeyRing
// with the key in force at now, which is how a key is rotated without a
// restart. Implementations must be safe for concurrent use.
type GrantSigner interface {
	Grant(clientID, audience string, scopes []string, now time.Time) (string, error)
}

// Maskinporten fetches Maskinporten access tokens for one integration
// (client id) in one environment. It signs a new grant for every request,
// so a retry after a failure is always a fresh grant. It caches nothing;
// Cache does. Safe for concurrent use once its fields are set.
type Maskinporten struct {
	// TokenURL is the token endpoint, e.g. "https://maskinporten.no/token".
	TokenURL string
	// Issuer is Maskinporten's issuer identifier, used as the grant's
	// aud, e.g. "https://maskinporten.no/". Every Maskinporten issuer
	// ends with a slash, so one is added when it is missing.
	Issuer string
	// ClientID is the integration id, the grant's iss.
	ClientID string
	// Signer signs the grants: a *Signer, or a *KeyRing choosing one of
	// several keys at each grant.
	Signer GrantSigner
	// HTTP sends the requests; nil means a client with a 30 s timeout.
	// Redirects are never followed, whatever the client says.
	HTTP *http.Client
	// Now is the clock for iat/exp and the token's expiry; nil means
	// time.Now.
	Now func() time.Time
	// Endpoints, when set, gives the issuer and token endpoint of each
	// request in place of Issuer and TokenURL: a *Discovery reads them
	// from the issuer's metadata, with Issuer and TokenURL as fallback.
	Endpoints MetadataSource
}

// Token fetches an access token for scopes. Failures are *OAuthError for
// answers from Maskinporten, or errors marked failure.ErrTransient
// (network, timeout) or failure.ErrConfig (incomplete configuration).
func (m *Maskinporten) Token(ctx context.Context, scopes ...string) (Token, error) {
	if err := m.check(); err != nil {
		return Token{}, err
	}
	issuer, tokenURL := m.Issuer, m.TokenURL
	if m.Endpoints != nil {
		md := m.Endpoints.Metadata(ctx)
		if md.Issuer == "" || md.TokenEndpoint == "" {
			return Token{}, failure.Mark(errNoEndpoints, failure.Config)
		}
		issuer, tokenURL = md.Issuer, md.TokenEndpoint
	}
	// The grant is signed after the endpoints are known: reading the
	// metadata may take a while, and the grant's lifetime is short.
	now := m.now()
	grant, err := m.Signer.Grant(m.ClientID, issuerWithSlash(issuer), scopes, now)
	if err != nil {
		return Token{}, failure.Mark(err, failure.Config)
	}
	form := url.Values{
		"grant_type": {grantTypeJWTBearer},
		"assertion":  {grant},
	}
	tr, err := postForm(ctx, m.HTTP, tokenURL, form, []string{grant}, now)
	if err != nil {
		return Token{}, err
	}
	return tr.token(now), nil
}

func (m *Maskinporten) check() error {
	var missing []string
	if m.TokenURL == "" {
		missing = append(missing, "TokenURL")
	}
	if m.Issuer == "" {
		missing = append(missing, "Issuer")
	}
	if m.ClientID == "" {
		missing = append(missing, "ClientID")
	}
	if signerMissing(m.Signer) {
		missing = append(missing, "Signer")
	}
	if len(missing) > 0 {
		return failure.Mark(fmt.Errorf("auth: maskinporten client: missing %s", strings.Join(missing, ", ")), failure.Config)
	}
	return nil
}

// signerMissing tells whether s is unset, including a nil *Signer or
// *KeyRing stored in the interface, which would otherwise panic at the
// first grant instead of being reported as configuration.
func signerMissing(s GrantSigner) bool {
	switch s := s.(type) {
	case nil:
		return true
	case *Signer:
		return s == nil
	case *KeyRing:
		return s == nil
	}
	return false
}

func (m *Maskinporten) now() time.Time {
	if m.Now != nil {
		return m.Now()
	}
	return time.Now()
}

func issuerWithSlash(issuer string) string {
	if strings.HasSuffix(issuer, "/") {
		return issuer
	}
	return issuer + "/"
}
