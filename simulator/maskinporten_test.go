package simulator_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/digitoll/digitoll-worker/simulator"
)

func TestTokenFlow(t *testing.T) {
	srv := start(t, simulator.Config{})

	meta := call(t, http.MethodGet, srv.Issuer()+".well-known/oauth-authorization-server", "", nil)
	if meta.status != http.StatusOK || meta.str("issuer") != srv.Issuer() || meta.str("token_endpoint") != srv.TokenURL() {
		t.Fatalf("metadata: %d %s", meta.status, meta.raw)
	}
	if !strings.HasSuffix(srv.Issuer(), "/maskinporten/") || !strings.HasPrefix(srv.URL(), "http://127.0.0.1:") {
		t.Errorf("URL %s, Issuer %s", srv.URL(), srv.Issuer())
	}

	mp := postForm(t, srv.TokenURL(), grantForm(kidGrant(t, srv, scopeRoad)))
	if mp.status != http.StatusOK {
		t.Fatalf("token: %d %s", mp.status, mp.raw)
	}
	if mp.str("token_type") != "Bearer" || mp.str("scope") != scopeRoad || mp.body["expires_in"] != float64(120) {
		t.Errorf("token answer %s", mp.raw)
	}

	ex := postForm(t, srv.TollBaseURL()+"/access/external/oauth/token", exchangeForm(mp.str("access_token")))
	if ex.status != http.StatusOK {
		t.Fatalf("exchange: %d %s", ex.status, ex.raw)
	}
	if ex.str("issued_token_type") != "access_token" || ex.str("token_type") != "Bearer" || ex.body["expires_in"] != float64(970) {
		t.Errorf("exchange answer %s", ex.raw)
	}
	if ex.str("access_token") == mp.str("access_token") {
		t.Error("the Toll token is the Maskinporten token")
	}

	if a := call(t, http.MethodGet, road(srv, "test-auth"), ex.str("access_token"), nil); a.status != http.StatusOK {
		t.Errorf("test-auth: %d %s", a.status, a.raw)
	}

	st := srv.Stats()
	if st.Grants(clientKid, scopeRoad) != 1 || st.Exchanges(clientKid, scopeRoad) != 1 {
		t.Errorf("grants %d, exchanges %d; want 1, 1", st.Grants(clientKid, scopeRoad), st.Exchanges(clientKid, scopeRoad))
	}
	for _, route := range []string{simulator.RouteMaskinportenToken, simulator.RouteTokenExchange, "GET /toll/api/movement/road/v2/test-auth"} {
		if st.Requests(route) != 1 {
			t.Errorf("Requests(%q) = %d, want 1", route, st.Requests(route))
		}
	}
}

func TestTokenLifetimesConfigurable(t *testing.T) {
	srv := start(t, simulator.Config{TollTokenLifetime: 30 * time.Second, MaskinportenTokenLifetime: 60 * time.Second})
	mp := postForm(t, srv.TokenURL(), grantForm(kidGrant(t, srv, scopeRoad)))
	if mp.body["expires_in"] != float64(60) {
		t.Errorf("Maskinporten expires_in: %s", mp.raw)
	}
	ex := postForm(t, srv.TollBaseURL()+"/access/external/oauth/token", exchangeForm(mp.str("access_token")))
	if ex.body["expires_in"] != float64(30) {
		t.Errorf("Toll expires_in: %s", ex.raw)
	}
}

func TestGrantAccepted(t *testing.T) {
	srv := start(t, simulator.Config{})
	k := keys()
	now := time.Now()
	tests := []struct {
		name   string
		method jwt.SigningMethod
		key    any
		header map[string]any
		claims jwt.MapClaims
	}{
		{"x5c", jwt.SigningMethodRS256, k.x5c, map[string]any{"x5c": x5c(k.x5cCert, k.otherCert)}, claims(srv, clientX5c, scopeRoad+" "+scopeAir, now)},
		{"RS384", jwt.SigningMethodRS384, k.kid, map[string]any{"kid": kidKid}, claims(srv, clientKid, scopeRoad, now)},
		{"RS512", jwt.SigningMethodRS512, k.kid, map[string]any{"kid": kidKid}, claims(srv, clientKid, scopeRoad, now)},
		{"iat 8s behind", jwt.SigningMethodRS256, k.kid, map[string]any{"kid": kidKid}, claims(srv, clientKid, scopeRoad, now.Add(-8*time.Second))},
		{"iat 8s ahead", jwt.SigningMethodRS256, k.kid, map[string]any{"kid": kidKid}, claims(srv, clientKid, scopeRoad, now.Add(8*time.Second))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := postForm(t, srv.TokenURL(), grantForm(sign(t, tc.method, tc.key, tc.header, tc.claims)))
			if a.status != http.StatusOK {
				t.Fatalf("%d %s", a.status, a.raw)
			}
			if a.str("scope") != tc.claims["scope"] {
				t.Errorf("scope %q, want %q", a.str("scope"), tc.claims["scope"])
			}
		})
	}
	if got := srv.Stats().Grants(clientX5c, scopeAir); got != 1 {
		t.Errorf("Grants(x5c, air) = %d, want 1", got)
	}
}

func TestGrantRejected(t *testing.T) {
	srv := start(t, simulator.Config{})
	k := keys()
	kid := map[string]any{"kid": kidKid}
	// One now for every claim: exp set from a second reading could fall
	// in the next second and make a 121 s lifetime read as 120 s.
	now := time.Now()
	valid := func() jwt.MapClaims { return claims(srv, clientKid, scopeRoad, now) }
	with := func(c jwt.MapClaims, key string, v any) jwt.MapClaims {
		if v == nil {
			delete(c, key)
		} else {
			c[key] = v
		}
		return c
	}
	tests := []struct {
		name      string
		assertion string
		status    int
		code      string
		desc      string
	}{
		{"wrong aud", sign(t, jwt.SigningMethodRS256, k.kid, kid, with(valid(), "aud", "https://maskinporten.no/")), 400, "invalid_grant", "aud must be"},
		{"aud without trailing slash", sign(t, jwt.SigningMethodRS256, k.kid, kid, with(valid(), "aud", strings.TrimSuffix(srv.Issuer(), "/"))), 400, "invalid_grant", "aud must be"},
		{"extra claim", sign(t, jwt.SigningMethodRS256, k.kid, kid, with(valid(), "resource", "https://api.toll.no")), 400, "invalid_grant", "Unknown claim resource"},
		{"missing jti", sign(t, jwt.SigningMethodRS256, k.kid, kid, with(valid(), "jti", nil)), 400, "invalid_grant", "Missing claim jti"},
		{"exp-iat over 120s", sign(t, jwt.SigningMethodRS256, k.kid, kid, with(valid(), "exp", now.Add(121*time.Second).Unix())), 400, "invalid_grant", "120 seconds"},
		{"exp before iat", sign(t, jwt.SigningMethodRS256, k.kid, kid, with(valid(), "exp", now.Add(-time.Second).Unix())), 400, "invalid_grant", "exp must be after iat"},
		{"iat 30s behind", sign(t, jwt.SigningMethodRS256, k.kid, kid, claims(srv, clientKid, scopeRoad, now.Add(-30*time.Second))), 400, "invalid_grant", "10 seconds"},
		{"iat 30s ahead", sign(t, jwt.SigningMethodRS256, k.kid, kid, claims(srv, clientKid, scopeRoad, now.Add(30*time.Second))), 400, "invalid_grant", "10 seconds"},
		{"unknown client", sign(t, jwt.SigningMethodRS256, k.kid, kid, claims(srv, "nobody", scopeRoad, now)), 401, "invalid_client", "nobody"},
		{"scope not granted", sign(t, jwt.SigningMethodRS256, k.kid, kid, claims(srv, clientKid, scopeRoad+" "+scopeAir, now)), 400, "invalid_scope", "Not authorized to request scope " + scopeAir},
		{"empty scope", sign(t, jwt.SigningMethodRS256, k.kid, kid, claims(srv, clientKid, " ", now)), 400, "invalid_scope", "No scope"},
		{"unknown kid", sign(t, jwt.SigningMethodRS256, k.kid, map[string]any{"kid": "kid-2"}, valid()), 400, "invalid_grant", "kid"},
		{"kid with wrong key", sign(t, jwt.SigningMethodRS256, k.other, kid, valid()), 400, "invalid_grant", "signature"},
		{"kid and x5c", sign(t, jwt.SigningMethodRS256, k.kid, map[string]any{"kid": kidKid, "x5c": x5c(k.x5cCert)}, valid()), 400, "invalid_grant", "exactly one of kid and x5c"},
		{"neither kid nor x5c", sign(t, jwt.SigningMethodRS256, k.kid, nil, valid()), 400, "invalid_grant", "exactly one of kid and x5c"},
		{"x5c with a wrong certificate", sign(t, jwt.SigningMethodRS256, k.other, map[string]any{"x5c": x5c(k.otherCert)}, claims(srv, clientX5c, scopeRoad, now)), 400, "invalid_grant", "not the one registered"},
		{"x5c signed with another key", sign(t, jwt.SigningMethodRS256, k.other, map[string]any{"x5c": x5c(k.x5cCert)}, claims(srv, clientX5c, scopeRoad, now)), 400, "invalid_grant", "signature"},
		{"x5c not base64", sign(t, jwt.SigningMethodRS256, k.x5c, map[string]any{"x5c": []string{"%%%"}}, claims(srv, clientX5c, scopeRoad, now)), 400, "invalid_grant", "base64"},
		{"x5c for a kid-only client", sign(t, jwt.SigningMethodRS256, k.kid, map[string]any{"x5c": x5c(k.x5cCert)}, valid()), 400, "invalid_grant", "not the one registered"},
		{"HS256", sign(t, jwt.SigningMethodHS256, []byte("secret-secret-secret-secret-1234"), kid, valid()), 400, "invalid_grant", "RS256"},
		{"PS256", sign(t, jwt.SigningMethodPS256, k.kid, kid, valid()), 400, "invalid_grant", "RS256"},
		{"not a JWT", "not.a.jwt", 400, "invalid_grant", "Malformed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := postForm(t, srv.TokenURL(), grantForm(tc.assertion))
			if a.status != tc.status || a.str("error") != tc.code || !strings.Contains(a.str("error_description"), tc.desc) {
				t.Errorf("got %d %s; want %d %s containing %q", a.status, a.raw, tc.status, tc.code, tc.desc)
			}
			if a.str("access_token") != "" {
				t.Error("refused grant got a token")
			}
		})
	}
	if got := srv.Stats().Grants(clientKid, scopeRoad); got != 0 {
		t.Errorf("Grants = %d after refusals only", got)
	}
}

func TestGrantCertificateExpired(t *testing.T) {
	k := keys()
	srv := start(t, simulator.Config{Clients: []simulator.Client{{ID: clientX5c, Certificate: k.expiredCertForX5cKey, Scopes: []string{scopeRoad}}}})
	g := sign(t, jwt.SigningMethodRS256, k.x5c, map[string]any{"x5c": x5c(k.expiredCertForX5cKey)}, claims(srv, clientX5c, scopeRoad, time.Now()))
	a := postForm(t, srv.TokenURL(), grantForm(g))
	if a.status != 400 || a.str("error") != "invalid_grant" || !strings.Contains(a.str("error_description"), "expired") {
		t.Errorf("got %d %s", a.status, a.raw)
	}
}

func TestGrantReplay(t *testing.T) {
	srv := start(t, simulator.Config{})
	g := kidGrant(t, srv, scopeRoad)
	maskinportenToken(t, srv, g)
	a := postForm(t, srv.TokenURL(), grantForm(g))
	if a.status != 400 || a.str("error") != "invalid_grant" || !strings.Contains(a.str("error_description"), "Grant is used before") {
		t.Errorf("replay: %d %s", a.status, a.raw)
	}
	// A new grant is fine.
	maskinportenToken(t, srv, kidGrant(t, srv, scopeRoad))
}

func TestTokenRequestRejected(t *testing.T) {
	srv := start(t, simulator.Config{})
	g := kidGrant(t, srv, scopeRoad)

	t.Run("assertion in the URL", func(t *testing.T) {
		req, err := http.NewRequest(http.MethodPost, srv.TokenURL()+"?"+grantForm(g).Encode(), nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if a := do(t, req); a.status != 400 || a.str("error") != "invalid_request" {
			t.Errorf("got %d %s", a.status, a.raw)
		}
	})
	t.Run("JSON body", func(t *testing.T) {
		a := call(t, http.MethodPost, srv.TokenURL(), "", map[string]string{"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": g})
		if a.status != 400 || a.str("error") != "invalid_request" {
			t.Errorf("got %d %s", a.status, a.raw)
		}
	})
	tests := []struct {
		name string
		form url.Values
		code string
	}{
		{"wrong grant_type", url.Values{"grant_type": {"client_credentials"}, "assertion": {g}}, "unsupported_grant_type"},
		{"missing grant_type", url.Values{"assertion": {g}}, "invalid_request"},
		{"missing assertion", url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:jwt-bearer"}}, "invalid_request"},
		{"repeated assertion", url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:jwt-bearer"}, "assertion": {g, g}}, "invalid_request"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if a := postForm(t, srv.TokenURL(), tc.form); a.status != 400 || a.str("error") != tc.code {
				t.Errorf("got %d %s, want 400 %s", a.status, a.raw, tc.code)
			}
		})
	}
	// None of these consumed the grant.
	maskinportenToken(t, srv, g)
}

func TestRuntimeClientChanges(t *testing.T) {
	srv := start(t, simulator.Config{Clients: []simulator.Client{}})
	k := keys()
	grantFor := func(scope string) answer {
		g := sign(t, jwt.SigningMethodRS256, k.kid, map[string]any{"kid": "k"}, claims(srv, "late", scope, time.Now()))
		return postForm(t, srv.TokenURL(), grantForm(g))
	}
	if a := grantFor(scopeRoad); a.str("error") != "invalid_client" {
		t.Fatalf("before AddClient: %d %s", a.status, a.raw)
	}
	srv.AddClient(simulator.Client{ID: "late", KeyID: "k", PublicKey: &k.kid.PublicKey})
	if a := grantFor(scopeRoad); a.str("error") != "invalid_scope" {
		t.Fatalf("before GrantScope: %d %s", a.status, a.raw)
	}
	srv.GrantScope("late", scopeRoad)
	if a := grantFor(scopeRoad); a.status != http.StatusOK {
		t.Fatalf("after GrantScope: %d %s", a.status, a.raw)
	}
	srv.RevokeScope("late", scopeRoad)
	if a := grantFor(scopeRoad); a.str("error") != "invalid_scope" {
		t.Fatalf("after RevokeScope: %d %s", a.status, a.raw)
	}
}
