package auth_test

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/digitoll/digitoll-worker/auth"
)

func TestGrant(t *testing.T) {
	p := pki(t)
	certSigner, err := auth.NewCertSigner(p.leafKey, []*x509.Certificate{p.leaf, p.inter, p.root})
	if err != nil {
		t.Fatal(err)
	}
	const aud = "https://test.maskinporten.no/"
	now := time.Unix(1_736_928_000, 0)

	tests := []struct {
		name    string
		signer  *auth.Signer
		wantKID bool
	}{
		{"kid", kidSigner(t), true},
		{"x5c", certSigner, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			grant, err := tc.signer.Grant(testClientID, aud, []string{"toll:movement/road/v2", "toll:movement/air"}, now)
			if err != nil {
				t.Fatal(err)
			}
			tok, err := jwt.Parse(grant, func(*jwt.Token) (any, error) { return &p.leafKey.PublicKey, nil },
				jwt.WithValidMethods([]string{"RS256"}), jwt.WithTimeFunc(func() time.Time { return now }))
			if err != nil {
				t.Fatalf("grant does not verify: %v", err)
			}

			if tok.Header["alg"] != "RS256" || tok.Header["typ"] != "JWT" {
				t.Errorf("header alg/typ = %v/%v", tok.Header["alg"], tok.Header["typ"])
			}
			_, hasKID := tok.Header["kid"]
			_, hasX5C := tok.Header["x5c"]
			if hasKID == hasX5C {
				t.Fatalf("header must have exactly one of kid and x5c: %v", tok.Header)
			}
			if tc.wantKID {
				if tok.Header["kid"] != "test-kid" {
					t.Errorf("kid = %v", tok.Header["kid"])
				}
			} else {
				x5c, ok := tok.Header["x5c"].([]any)
				if !ok || len(x5c) != 3 {
					t.Fatalf("x5c = %#v, want 3 certificates", tok.Header["x5c"])
				}
				for i, want := range []*x509.Certificate{p.leaf, p.inter, p.root} {
					s, _ := x5c[i].(string)
					der, err := base64.StdEncoding.DecodeString(s)
					if err != nil {
						t.Fatalf("x5c[%d] is not standard base64: %v", i, err)
					}
					if string(der) != string(want.Raw) {
						t.Errorf("x5c[%d] is not %s", i, want.Subject)
					}
				}
			}

			// Claims, read from the raw payload so that their JSON types
			// and the exact set of names are checked.
			payload, err := base64.RawURLEncoding.DecodeString(strings.Split(grant, ".")[1])
			if err != nil {
				t.Fatal(err)
			}
			var claims map[string]json.RawMessage
			if err := json.Unmarshal(payload, &claims); err != nil {
				t.Fatal(err)
			}
			names := make([]string, 0, len(claims))
			for k := range claims {
				names = append(names, k)
			}
			slices.Sort(names)
			if want := []string{"aud", "exp", "iat", "iss", "jti", "scope"}; !slices.Equal(names, want) {
				t.Fatalf("claims = %v, want exactly %v", names, want)
			}
			var c struct {
				Aud   string `json:"aud"` // a string, not an array
				Iss   string `json:"iss"`
				Scope string `json:"scope"`
				Iat   int64  `json:"iat"`
				Exp   int64  `json:"exp"`
				JTI   string `json:"jti"`
			}
			if err := json.Unmarshal(payload, &c); err != nil {
				t.Fatalf("claims have wrong types: %v", err)
			}
			if c.Aud != aud || c.Iss != testClientID || c.Scope != "toll:movement/road/v2 toll:movement/air" {
				t.Errorf("aud, iss, scope = %q, %q, %q", c.Aud, c.Iss, c.Scope)
			}
			if c.Iat != now.Unix() {
				t.Errorf("iat = %d, want %d", c.Iat, now.Unix())
			}
			if life := c.Exp - c.Iat; life <= 0 || life > 120 {
				t.Errorf("exp - iat = %d s, want in (0, 120]", life)
			}
			id, err := uuid.Parse(c.JTI)
			if err != nil || id.Version() != 4 {
				t.Errorf("jti %q is not a UUID v4", c.JTI)
			}

			again, err := tc.signer.Grant(testClientID, aud, []string{"toll:movement/road/v2"}, now)
			if err != nil {
				t.Fatal(err)
			}
			var c2 struct {
				JTI string `json:"jti"`
			}
			p2, _ := base64.RawURLEncoding.DecodeString(strings.Split(again, ".")[1])
			if err := json.Unmarshal(p2, &c2); err != nil {
				t.Fatal(err)
			}
			if c2.JTI == c.JTI {
				t.Errorf("two grants share jti %s", c.JTI)
			}
		})
	}
}

func TestGrantRejectsBadInput(t *testing.T) {
	s := kidSigner(t)
	now := time.Now()
	tests := []struct {
		name          string
		client, aud   string
		scopes        []string
		wantErrSubstr string
	}{
		{"no client", "", "https://maskinporten.no/", []string{"toll:movement/air"}, "client id"},
		{"no audience", testClientID, "", []string{"toll:movement/air"}, "audience"},
		{"no scope", testClientID, "https://maskinporten.no/", nil, "no scope"},
		{"empty scope", testClientID, "https://maskinporten.no/", []string{""}, "invalid scope"},
		{"scope with space", testClientID, "https://maskinporten.no/", []string{"toll:a toll:b"}, "invalid scope"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Grant(tc.client, tc.aud, tc.scopes, now)
			if err == nil || !strings.Contains(err.Error(), tc.wantErrSubstr) {
				t.Fatalf("err = %v, want one mentioning %q", err, tc.wantErrSubstr)
			}
		})
	}
}
