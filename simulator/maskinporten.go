package simulator

import (
	"bytes"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const (
	grantTypeJWTBearer = "urn:ietf:params:oauth:grant-type:jwt-bearer"
	// maxGrantLifetime is the longest exp-iat Maskinporten accepts.
	maxGrantLifetime = 120 * time.Second
	// clockSkew is how far iat (and exp) may be off the simulator's clock.
	clockSkew = 10 * time.Second
	// maxFormBytes bounds token request bodies; a grant is a few KiB even
	// with a certificate chain in x5c.
	maxFormBytes = 64 << 10
	// descInvalidAssertion starts every invalid_grant description, as
	// Maskinporten's do.
	descInvalidAssertion = "Invalid assertion. Client authentication failed."
)

// grantClaims are the claims a grant must have, and the only ones it may
// have.
func grantClaims() []string { return []string{"aud", "iss", "scope", "iat", "exp", "jti"} }

func allowedGrantAlgs() []string { return []string{"RS256", "RS384", "RS512"} }

// oauthError is an OAuth error answer: {error, error_description}.
type oauthError struct {
	status      int
	Code        string `json:"error"`
	Description string `json:"error_description"`
}

func (e *oauthError) Error() string { return e.Code + ": " + e.Description }

func (e *oauthError) write(w http.ResponseWriter) {
	if e.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer error="`+e.Code+`"`)
	}
	writeJSON(w, e.status, e)
}

func invalidRequest(desc string) *oauthError {
	return &oauthError{status: http.StatusBadRequest, Code: "invalid_request", Description: desc}
}

func invalidGrant(detail string) *oauthError {
	return &oauthError{status: http.StatusBadRequest, Code: "invalid_grant", Description: descInvalidAssertion + " " + detail}
}

func serverError(desc string) *oauthError {
	return &oauthError{status: http.StatusServiceUnavailable, Code: "server_error", Description: desc}
}

// serveMetadata answers the authorization server metadata that clients
// read the token endpoint from.
func (s *Server) serveMetadata(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                s.Issuer(),
		"token_endpoint":                        s.TokenURL(),
		"grant_types_supported":                 []string{grantTypeJWTBearer},
		"token_endpoint_auth_methods_supported": []string{"private_key_jwt"},
	})
}

// maskinportenToken is the token endpoint's success answer.
type maskinportenToken struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
	Scope       string `json:"scope"`
}

// grant is what a verified JWT grant asks for.
type grant struct {
	clientID string
	scopes   []string
	jti      string
	exp      time.Time
}

func (s *Server) serveMaskinportenToken(w http.ResponseWriter, r *http.Request) {
	if s.currentFaults().MaskinportenDown {
		serverError("simulated Maskinporten outage").write(w)
		return
	}
	form, oerr := readForm(w, r)
	if oerr != nil {
		oerr.write(w)
		return
	}
	switch gt := form.Get("grant_type"); gt {
	case "":
		invalidRequest("Missing grant_type.").write(w)
		return
	case grantTypeJWTBearer:
	default:
		(&oauthError{status: http.StatusBadRequest, Code: "unsupported_grant_type", Description: "grant_type must be " + grantTypeJWTBearer + "."}).write(w)
		return
	}
	assertion := form.Get("assertion")
	if assertion == "" {
		invalidRequest("Missing assertion.").write(w)
		return
	}
	s.mu.Lock()
	s.st.receivedGrants = remember(s.st.receivedGrants, assertion)
	s.mu.Unlock()
	g, oerr := s.verifyGrant(assertion)
	if oerr == nil {
		setRequestClient(r, g.clientID)
		var tok maskinportenToken
		tok, oerr = s.issueMaskinportenToken(g)
		if oerr == nil {
			writeJSON(w, http.StatusOK, tok)
			return
		}
	}
	setRequestNote(r, oerr.Error())
	oerr.write(w)
}

// readForm reads an OAuth form body. Parameters in the URL are refused:
// they would put grants and tokens into access logs.
func readForm(w http.ResponseWriter, r *http.Request) (url.Values, *oauthError) {
	if r.URL.RawQuery != "" {
		return nil, invalidRequest("Parameters must be sent in the request body, not in the URL.")
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, invalidRequest("Content-Type must be application/x-www-form-urlencoded.")
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		return nil, invalidRequest("Malformed form body.")
	}
	for k, v := range r.PostForm {
		if len(v) != 1 {
			return nil, invalidRequest("Parameter " + k + " must be given once.")
		}
	}
	return r.PostForm, nil
}

// verifyGrant checks a JWT grant the way Maskinporten does. The replay and
// scope checks need the lock and are made when the token is issued.
func (s *Server) verifyGrant(assertion string) (grant, *oauthError) {
	parser := jwt.NewParser(jwt.WithValidMethods(allowedGrantAlgs()), jwt.WithoutClaimsValidation())
	claims := jwt.MapClaims{}
	_, err := parser.ParseWithClaims(assertion, claims, func(t *jwt.Token) (any, error) {
		// ParseWithClaims has decoded the claims before it asks for the
		// key, so iss names the client whose key to use.
		key, oerr := s.grantKey(t, claims)
		if oerr != nil {
			return nil, oerr
		}
		return key, nil
	})
	if err != nil {
		var oerr *oauthError
		switch {
		case errors.As(err, &oerr):
			return grant{}, oerr
		case errors.Is(err, jwt.ErrTokenSignatureInvalid):
			return grant{}, invalidGrant("Invalid signature, or alg not one of RS256, RS384, RS512.")
		default:
			return grant{}, invalidGrant("Malformed JWT.")
		}
	}
	return s.checkGrantClaims(claims)
}

// grantKey finds the key that must have signed the grant: the registered
// key named by kid, or the pinned certificate sent in x5c.
func (s *Server) grantKey(t *jwt.Token, claims jwt.MapClaims) (*rsa.PublicKey, *oauthError) {
	kid, hasKid := t.Header["kid"]
	x5c, hasX5c := t.Header["x5c"]
	if hasKid == hasX5c {
		return nil, invalidGrant("The JWT header must contain exactly one of kid and x5c.")
	}
	iss, _ := claims["iss"].(string)
	if iss == "" {
		return nil, invalidGrant("Missing iss.")
	}
	s.mu.Lock()
	c, ok := s.st.clients[iss]
	now := s.now()
	s.mu.Unlock()
	if !ok {
		return nil, &oauthError{status: http.StatusUnauthorized, Code: "invalid_client", Description: "Unknown client " + iss + "."}
	}
	if hasKid {
		k, _ := kid.(string)
		pub := c.key(k)
		if pub == nil {
			return nil, invalidGrant("The kid is not registered on the client.")
		}
		return pub, nil
	}
	chain, _ := x5c.([]any)
	if len(chain) == 0 {
		return nil, invalidGrant("x5c must be a non-empty array of certificates.")
	}
	leaf, _ := chain[0].(string)
	der, err := base64.StdEncoding.DecodeString(leaf)
	if err != nil || leaf == "" {
		return nil, invalidGrant("x5c must hold standard base64 DER certificates.")
	}
	if c.Certificate == nil || !bytes.Equal(der, c.Certificate.Raw) {
		return nil, invalidGrant("The certificate in x5c is not the one registered on the client.")
	}
	if now.Before(c.Certificate.NotBefore) || now.After(c.Certificate.NotAfter) {
		return nil, invalidGrant("The certificate in x5c is expired or not yet valid.")
	}
	key, ok := c.Certificate.PublicKey.(*rsa.PublicKey)
	if !ok {
		return nil, invalidGrant("The certificate in x5c does not hold an RSA key.")
	}
	return key, nil
}

// checkGrantClaims checks the claims of a grant whose signature verified.
func (s *Server) checkGrantClaims(claims jwt.MapClaims) (grant, *oauthError) {
	allowed := grantClaims()
	names := make([]string, 0, len(claims))
	for k := range claims {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if !slices.Contains(allowed, k) {
			return grant{}, invalidGrant("Unknown claim " + k + ".")
		}
	}
	for _, k := range allowed {
		if _, ok := claims[k]; !ok {
			return grant{}, invalidGrant("Missing claim " + k + ".")
		}
	}
	aud, err := claims.GetAudience()
	if err != nil || len(aud) != 1 || aud[0] != s.Issuer() {
		return grant{}, invalidGrant("aud must be " + s.Issuer() + ".")
	}
	iss, _ := claims["iss"].(string)
	jti, _ := claims["jti"].(string)
	if jti == "" {
		return grant{}, invalidGrant("jti must be a non-empty string.")
	}
	scope, ok := claims["scope"].(string)
	if !ok {
		return grant{}, invalidGrant("scope must be a string.")
	}
	scopes := strings.Fields(scope)
	if len(scopes) == 0 {
		return grant{}, &oauthError{status: http.StatusBadRequest, Code: "invalid_scope", Description: "No scope requested."}
	}
	iatDate, err := claims.GetIssuedAt()
	if err != nil || iatDate == nil {
		return grant{}, invalidGrant("iat must be a NumericDate.")
	}
	expDate, err := claims.GetExpirationTime()
	if err != nil || expDate == nil {
		return grant{}, invalidGrant("exp must be a NumericDate.")
	}
	iat, exp := iatDate.Time, expDate.Time
	if !exp.After(iat) || exp.Sub(iat) > maxGrantLifetime {
		return grant{}, invalidGrant("exp must be after iat and at most 120 seconds after it.")
	}
	now := s.now()
	if iat.Before(now.Add(-clockSkew)) || iat.After(now.Add(clockSkew)) {
		return grant{}, invalidGrant("iat is more than 10 seconds off the current time.")
	}
	if now.After(exp.Add(clockSkew)) {
		return grant{}, invalidGrant("The grant has expired.")
	}
	return grant{clientID: iss, scopes: scopes, jti: jti, exp: exp}, nil
}

// issueMaskinportenToken makes the checks that need the current state
// (replay, scopes) and issues the access token.
func (s *Server) issueMaskinportenToken(g grant) (maskinportenToken, *oauthError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	s.st.prune(now)
	used := scopeKey{g.clientID, g.jti}
	if until, seen := s.st.usedGrants[used]; seen && !now.After(until) {
		return maskinportenToken{}, invalidGrant("Grant is used before.")
	}
	s.st.usedGrants[used] = g.exp.Add(clockSkew)
	c, ok := s.st.clients[g.clientID]
	if !ok {
		return maskinportenToken{}, &oauthError{status: http.StatusUnauthorized, Code: "invalid_client", Description: "Unknown client " + g.clientID + "."}
	}
	for _, sc := range g.scopes {
		if !slices.Contains(c.Scopes, sc) {
			return maskinportenToken{}, &oauthError{status: http.StatusBadRequest, Code: "invalid_scope", Description: "Not authorized to request scope " + sc}
		}
	}
	tok := newOpaqueToken()
	s.st.mpTokens[tok] = issuedToken{clientID: g.clientID, scopes: g.scopes, expires: now.Add(s.mpLifetime)}
	s.st.issuedTokens = remember(s.st.issuedTokens, tok)
	for _, sc := range g.scopes {
		s.st.grants[scopeKey{g.clientID, sc}]++
	}
	return maskinportenToken{
		AccessToken: tok,
		TokenType:   "Bearer",
		ExpiresIn:   int64(s.mpLifetime / time.Second),
		Scope:       strings.Join(g.scopes, " "),
	}, nil
}
