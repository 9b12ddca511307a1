package simulator_test

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/digitoll/digitoll-worker/simulator"
)

func TestExchangeRejected(t *testing.T) {
	srv := start(t, simulator.Config{})
	mp := maskinportenToken(t, srv, kidGrant(t, srv, scopeRoad))
	toll := exchange(t, srv, mp)
	exchangeURL := srv.TollBaseURL() + "/access/external/oauth/token"

	with := func(key, value string) url.Values {
		f := exchangeForm(mp)
		if value == "" {
			f.Del(key)
		} else {
			f.Set(key, value)
		}
		return f
	}
	tests := []struct {
		name   string
		form   url.Values
		status int
		code   string
	}{
		{"RFC 8693 grant_type", with("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange"), 400, "unsupported_grant_type"},
		{"missing grant_type", with("grant_type", ""), 400, "unsupported_grant_type"},
		{"RFC 8693 subject_token_type", with("subject_token_type", "urn:ietf:params:oauth:token-type:access_token"), 400, "invalid_request"},
		{"missing subject_token_type", with("subject_token_type", ""), 400, "invalid_request"},
		{"missing subject_token", with("subject_token", ""), 400, "invalid_request"},
		{"extra field", func() url.Values { f := exchangeForm(mp); f.Set("scope", scopeRoad); return f }(), 400, "invalid_request"},
		{"unknown subject_token", exchangeForm("made-up"), 401, "invalid_token"},
		{"Toll token as subject", exchangeForm(toll), 401, "invalid_token"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := postForm(t, exchangeURL, tc.form)
			if a.status != tc.status || a.str("error") != tc.code || a.str("error_description") == "" {
				t.Errorf("got %d %s; want %d %s", a.status, a.raw, tc.status, tc.code)
			}
		})
	}
	t.Run("JSON body", func(t *testing.T) {
		a := call(t, http.MethodPost, exchangeURL, "", map[string]string{"grant_type": "token-exchange", "subject_token_type": "access_token", "subject_token": mp})
		if a.status != 400 || a.str("error") != "invalid_request" {
			t.Errorf("got %d %s", a.status, a.raw)
		}
	})
	if got := srv.Stats().Exchanges(clientKid, scopeRoad); got != 1 {
		t.Errorf("Exchanges = %d, want 1", got)
	}
}

func TestTokensExpire(t *testing.T) {
	clk := &clock{}
	srv := start(t, simulator.Config{Now: clk.Now})
	grant := func() string {
		return sign(t, jwt.SigningMethodRS256, keys().kid, map[string]any{"kid": kidKid}, claims(srv, clientKid, scopeRoad, clk.Now()))
	}

	mp := maskinportenToken(t, srv, grant())
	clk.Advance(120 * time.Second)
	if a := postForm(t, srv.TollBaseURL()+"/access/external/oauth/token", exchangeForm(mp)); a.status != 401 || a.str("error") != "invalid_token" {
		t.Errorf("expired Maskinporten token: %d %s", a.status, a.raw)
	}

	toll := exchange(t, srv, maskinportenToken(t, srv, grant()))
	clk.Advance(969 * time.Second)
	if a := call(t, http.MethodGet, road(srv, "test-auth"), toll, nil); a.status != http.StatusOK {
		t.Fatalf("Toll token before expiry: %d %s", a.status, a.raw)
	}
	clk.Advance(time.Second)
	if a := call(t, http.MethodGet, road(srv, "test-auth"), toll, nil); a.status != http.StatusUnauthorized {
		t.Errorf("expired Toll token: %d %s", a.status, a.raw)
	}
}

func TestAPIAuthorization(t *testing.T) {
	srv := start(t, simulator.Config{})
	mp := maskinportenToken(t, srv, kidGrant(t, srv, scopeRoad))
	roadTok := exchange(t, srv, mp)
	airTok := x5cToken(t, srv, scopeAir)
	euGrant := sign(t, jwt.SigningMethodRS256, keys().kid, map[string]any{"kid": kidEU}, claims(srv, clientEU, scopeRoadEU, time.Now()))
	euTok := exchange(t, srv, maskinportenToken(t, srv, euGrant))
	airAuth := srv.TollBaseURL() + "/movement/air/v1/test-auth"

	testAuth := road(srv, "test-auth")
	get := http.MethodGet
	tests := []struct {
		name   string
		method string
		url    string
		auth   string
		status int
	}{
		{"no header", get, testAuth, "", 401},
		{"no token", get, testAuth, "Bearer ", 401},
		{"basic auth", get, testAuth, "Basic dXNlcjpwYXNz", 401},
		{"unknown token", get, testAuth, "Bearer made-up", 401},
		{"Maskinporten token", get, testAuth, "Bearer " + mp, 401},
		{"road token", get, testAuth, "Bearer " + roadTok, 200},
		{"lowercase scheme", get, testAuth, "bearer " + roadTok, 200},
		{"foreign business road token", get, testAuth, "Bearer " + euTok, 200},
		{"air token on road", get, testAuth, "Bearer " + airTok, 403},
		{"road token on air", get, airAuth, "Bearer " + roadTok, 403},
		{"air token on air", get, airAuth, "Bearer " + airTok, 200},
		{"air token on a road write", http.MethodPost, road(srv, "house-consignment"), "Bearer " + airTok, 403},
		{"no token on a road write", http.MethodPost, road(srv, "house-consignment"), "", 401},
		{"air token on a road query", get, roadQuery(srv, "house-consignment/validation-status/0b3c6e0e-5a8e-4c1e-9d55-0d5d4d5f2b11"), "Bearer " + airTok, 403},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, tc.url, nil)
			if err != nil {
				t.Fatal(err)
			}
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			a := do(t, req)
			if a.status != tc.status {
				t.Errorf("got %d %s, want %d", a.status, a.raw, tc.status)
			}
			if a.status == 401 && a.header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}
	if got := srv.Stats().Declarations(); len(got) != 0 {
		t.Errorf("a refused write reached processing: %+v", got)
	}
}
