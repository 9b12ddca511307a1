package auth_test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/digitoll/digitoll-worker/auth"
	"github.com/digitoll/digitoll-worker/internal/clocktest"
)

// testPKI is the key material every test shares: RSA keys are slow to
// generate, so they are made once per test binary.
type testPKI struct {
	leafKey, interKey, rootKey *rsa.PrivateKey
	root, inter, leaf          *x509.Certificate
}

var sharedPKI = sync.OnceValues(func() (*testPKI, error) {
	keys := make([]*rsa.PrivateKey, 3)
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for i := range keys {
		wg.Go(func() { keys[i], errs[i] = rsa.GenerateKey(rand.Reader, 2048) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	p := &testPKI{leafKey: keys[0], interKey: keys[1], rootKey: keys[2]}
	now := time.Now()
	var err error
	if p.root, err = makeCert(2, "Test Root CA", p.rootKey, nil, nil, true, now); err != nil {
		return nil, err
	}
	if p.inter, err = makeCert(3, "Test Intermediate CA", p.interKey, p.root, p.rootKey, true, now); err != nil {
		return nil, err
	}
	if p.leaf, err = makeCert(4, "ACME AS (virksomhetssertifikat)", p.leafKey, p.inter, p.interKey, false, now); err != nil {
		return nil, err
	}
	return p, nil
})

func pki(t *testing.T) *testPKI {
	t.Helper()
	p, err := sharedPKI()
	if err != nil {
		t.Fatalf("generating test keys: %v", err)
	}
	return p
}

// makeCert issues a certificate for key's public key, signed by parent
// (self-signed when parent is nil).
func makeCert(serial int64, cn string, key *rsa.PrivateKey, parent *x509.Certificate, parentKey *rsa.PrivateKey, ca bool, now time.Time) (*x509.Certificate, error) {
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(serial),
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"Test"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(365 * 24 * time.Hour).Truncate(time.Second),
		BasicConstraintsValid: true,
		IsCA:                  ca,
		KeyUsage:              x509.KeyUsageDigitalSignature,
	}
	if ca {
		tmpl.KeyUsage |= x509.KeyUsageCertSign
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

func kidSigner(t *testing.T) *auth.Signer {
	t.Helper()
	s, err := auth.NewKeySigner(pki(t).leafKey, "test-kid")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// newClock is a settable clock shared by the clients, the cache and the
// fake servers.
func newClock() *clocktest.Clock { return clocktest.New(time.Now().Truncate(time.Second)) }

const testClientID = "0a1b2c3d-client"

// idp fakes Maskinporten (POST /token) and Toll's exchange endpoint
// (POST /api/access/external/oauth/token). It verifies every grant the
// way Maskinporten does and counts what it issues.
type idp struct {
	t     *testing.T
	srv   *httptest.Server
	clock *clocktest.Clock
	pub   *rsa.PublicKey

	grants, exchanges atomic.Int64

	mu sync.Mutex
	// tollLifetime is expires_in of Toll tokens, in seconds.
	tollLifetime int
	// mpScope maps issued Maskinporten tokens to their scope.
	mpScope map[string]string
	jtis    map[string]bool
	// onExchange, if set, runs before a successful exchange answer; it
	// may write its own answer and return true.
	onExchange func(w http.ResponseWriter, r *http.Request, scope string, n int64) bool
}

func newIDP(t *testing.T, clock *clocktest.Clock, pub *rsa.PublicKey) *idp {
	t.Helper()
	d := &idp{t: t, clock: clock, pub: pub, tollLifetime: 970, mpScope: map[string]string{}, jtis: map[string]bool{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", d.token)
	mux.HandleFunc("POST /api/access/external/oauth/token", d.exchange)
	d.srv = httptest.NewServer(mux)
	t.Cleanup(d.srv.Close)
	return d
}

func (d *idp) issuer() string      { return d.srv.URL + "/" }
func (d *idp) tokenURL() string    { return d.srv.URL + "/token" }
func (d *idp) exchangeURL() string { return d.srv.URL + "/api/access/external/oauth/token" }

func (d *idp) setExchangeHook(f func(w http.ResponseWriter, r *http.Request, scope string, n int64) bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.onExchange = f
}

func (d *idp) setTollLifetime(s int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.tollLifetime = s
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (d *idp) token(w http.ResponseWriter, r *http.Request) {
	if r.URL.RawQuery != "" {
		d.t.Errorf("token request has a query string")
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/x-www-form-urlencoded" {
		d.t.Errorf("token request Content-Type = %q", ct)
	}
	if err := r.ParseForm(); err != nil {
		writeJSON(w, 400, map[string]string{"error": "invalid_request"})
		return
	}
	if gt := r.PostForm.Get("grant_type"); gt != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
		d.t.Errorf("grant_type = %q", gt)
	}
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(r.PostForm.Get("assertion"), claims,
		func(*jwt.Token) (any, error) { return d.pub, nil },
		jwt.WithValidMethods([]string{"RS256"}),
		jwt.WithAudience(d.issuer()),
		jwt.WithIssuer(testClientID),
		jwt.WithIssuedAt(),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(d.clock.Now),
	)
	if err != nil {
		d.t.Errorf("grant rejected: %v", err)
		writeJSON(w, 400, map[string]string{"error": "invalid_grant", "error_description": "Invalid assertion"})
		return
	}
	jti, _ := claims["jti"].(string)
	scope, _ := claims["scope"].(string)
	d.mu.Lock()
	reused := d.jtis[jti]
	d.jtis[jti] = true
	n := d.grants.Add(1)
	at := fmt.Sprintf("mp-%d", n)
	d.mpScope[at] = scope
	d.mu.Unlock()
	if reused {
		d.t.Errorf("grant jti %s reused", jti)
		writeJSON(w, 400, map[string]string{"error": "invalid_grant", "error_description": "Grant is used before"})
		return
	}
	writeJSON(w, 200, map[string]any{"access_token": at, "token_type": "Bearer", "expires_in": 120, "scope": scope})
}

func (d *idp) exchange(w http.ResponseWriter, r *http.Request) {
	if r.URL.RawQuery != "" {
		d.t.Errorf("exchange request has a query string")
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/x-www-form-urlencoded" {
		d.t.Errorf("exchange Content-Type = %q", ct)
	}
	if err := r.ParseForm(); err != nil {
		writeJSON(w, 400, map[string]string{"error": "invalid_request"})
		return
	}
	if r.PostForm.Get("grant_type") != "token-exchange" || r.PostForm.Get("subject_token_type") != "access_token" {
		d.t.Errorf("exchange form = %v", r.PostForm)
	}
	d.mu.Lock()
	scope, ok := d.mpScope[r.PostForm.Get("subject_token")]
	hook := d.onExchange
	lifetime := d.tollLifetime
	d.mu.Unlock()
	if !ok {
		d.t.Errorf("exchange of a token Maskinporten did not issue")
		writeJSON(w, 401, map[string]string{"error": "invalid_token"})
		return
	}
	n := d.exchanges.Add(1)
	if hook != nil && hook(w, r, scope, n) {
		return
	}
	writeJSON(w, 200, map[string]any{
		"issued_token_type": "access_token",
		"access_token":      fmt.Sprintf("toll-%d-%s", n, strings.ReplaceAll(scope, " ", "+")),
		"token_type":        "Bearer",
		"expires_in":        lifetime,
	})
}

// clients returns real clients wired to d and clock.
func (d *idp) clients(signer *auth.Signer) (*auth.Maskinporten, *auth.Exchanger) {
	mp := &auth.Maskinporten{
		TokenURL: d.tokenURL(),
		Issuer:   d.issuer(),
		ClientID: testClientID,
		Signer:   signer,
		HTTP:     d.srv.Client(),
		Now:      d.clock.Now,
	}
	ex := &auth.Exchanger{URL: d.exchangeURL(), HTTP: d.srv.Client(), Now: d.clock.Now}
	return mp, ex
}

// receive returns the next value from ch, failing the test if none
// arrives before a generous deadline.
func receive[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}
