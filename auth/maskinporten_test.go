package auth_test

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/digitoll/digitoll-worker/auth"
	"github.com/digitoll/digitoll-worker/failure"
)

func TestMaskinportenAndExchange(t *testing.T) {
	clock := newClock()
	d := newIDP(t, clock, &pki(t).leafKey.PublicKey)
	mp, ex := d.clients(kidSigner(t))
	mp.Issuer = strings.TrimSuffix(d.issuer(), "/") // the slash is added

	mpTok, err := mp.Token(context.Background(), "toll:movement/road/v2")
	if err != nil {
		t.Fatal(err)
	}
	if mpTok.AccessToken != "mp-1" || mpTok.TokenType != "Bearer" || mpTok.Scope != "toll:movement/road/v2" {
		t.Errorf("maskinporten token = %+v (access token %q)", mpTok, mpTok.AccessToken)
	}
	if want := clock.Now().Add(120 * time.Second); !mpTok.Expiry.Equal(want) {
		t.Errorf("expiry = %v, want %v", mpTok.Expiry, want)
	}

	d.setTollLifetime(970)
	tollTok, err := ex.Exchange(context.Background(), mpTok.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if tollTok.AccessToken != "toll-1-toll:movement/road/v2" || tollTok.TokenType != "Bearer" {
		t.Errorf("toll token = %+v (access token %q)", tollTok, tollTok.AccessToken)
	}
	if want := clock.Now().Add(970 * time.Second); !tollTok.Expiry.Equal(want) {
		t.Errorf("expiry = %v, want %v (from expires_in)", tollTok.Expiry, want)
	}

	// x5c signer against the same server: a second, distinct grant.
	p := pki(t)
	certSigner, err := auth.NewCertSigner(p.leafKey, []*x509.Certificate{p.leaf, p.inter})
	if err != nil {
		t.Fatal(err)
	}
	mp.Signer = certSigner
	if _, err := mp.Token(context.Background(), "toll:movement/air"); err != nil {
		t.Fatal(err)
	}
	if d.grants.Load() != 2 {
		t.Errorf("grants = %d, want 2", d.grants.Load())
	}
}

func TestMaskinportenIncompleteConfig(t *testing.T) {
	mp := &auth.Maskinporten{TokenURL: "http://127.0.0.1:1/token"}
	_, err := mp.Token(context.Background(), "toll:movement/air")
	if failure.Classify(err) != failure.Config || !strings.Contains(err.Error(), "ClientID") {
		t.Fatalf("err = %v, want a config error naming the missing fields", err)
	}
	ex := &auth.Exchanger{URL: "http://127.0.0.1:1/x"}
	if _, err := ex.Exchange(context.Background(), ""); failure.Classify(err) != failure.Config {
		t.Fatalf("empty subject token: err = %v, want a config error", err)
	}
}

// answer is one canned response of a token endpoint.
type answer struct {
	status int
	header map[string]string
	body   string
}

func serve(t *testing.T, a answer) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for k, v := range a.header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(a.status)
		_, _ = io.WriteString(w, a.body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// Both token endpoints classify their answers the same way; each case
// runs against the Maskinporten client and the exchanger.
func TestTokenEndpointErrors(t *testing.T) {
	signer := kidSigner(t)
	tests := []struct {
		name       string
		answer     answer
		class      failure.Class
		code       string
		descSubstr string
		retryAfter time.Duration
	}{
		{name: "invalid_grant", answer: answer{400, nil, `{"error":"invalid_grant","error_description":"Invalid assertion. Client authentication failed."}`},
			class: failure.Config, code: "invalid_grant", descSubstr: "Client authentication failed"},
		{name: "clock skew", answer: answer{400, nil, `{"error":"invalid_grant","error_description":"Invalid assertion. iat is in the future"}`},
			class: failure.Config, code: "invalid_grant", descSubstr: "iat"},
		{name: "invalid_scope", answer: answer{400, nil, `{"error":"invalid_scope","error_description":"Not authorized to request scope toll:movement/air"}`},
			class: failure.Config, code: "invalid_scope", descSubstr: "Not authorized"},
		{name: "invalid_client", answer: answer{401, nil, `{"error":"invalid_client"}`}, class: failure.Config, code: "invalid_client"},
		{name: "unauthorized_client", answer: answer{400, nil, `{"error":"unauthorized_client"}`}, class: failure.Config, code: "unauthorized_client"},
		{name: "401 without body", answer: answer{401, nil, ""}, class: failure.Config},
		{name: "403", answer: answer{403, nil, "Forbidden"}, class: failure.Config, descSubstr: "Forbidden"},
		{name: "404", answer: answer{404, nil, "no such path"}, class: failure.Config},
		{name: "redirect not followed", answer: answer{307, map[string]string{"Location": "http://127.0.0.1:1/elsewhere"}, ""}, class: failure.Config},
		{name: "503 HTML", answer: answer{503, nil, "<html>\n<body>Service Unavailable</body>\n</html>"}, class: failure.Transient, descSubstr: "<html>"},
		{name: "500 server_error", answer: answer{500, nil, `{"error":"server_error"}`}, class: failure.Transient, code: "server_error"},
		{name: "400 temporarily_unavailable", answer: answer{400, nil, `{"error":"temporarily_unavailable"}`}, class: failure.Transient, code: "temporarily_unavailable"},
		{name: "429 with Retry-After", answer: answer{429, map[string]string{"Retry-After": "7"}, ""}, class: failure.Transient, retryAfter: 7 * time.Second},
		{name: "503 with Retry-After date", answer: answer{503, map[string]string{"Retry-After": time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)}, ""},
			class: failure.Transient, retryAfter: time.Hour},
		{name: "200 not JSON", answer: answer{200, nil, "<html>"}, class: failure.Transient, descSubstr: "malformed"},
		{name: "200 without token", answer: answer{200, nil, `{"token_type":"Bearer","expires_in":60}`}, class: failure.Transient, descSubstr: "access_token"},
		{name: "200 without expires_in", answer: answer{200, nil, `{"access_token":"x"}`}, class: failure.Transient, descSubstr: "expires_in"},
		{name: "echoed JWT removed", answer: answer{400, nil, `{"error":"invalid_request","error_description":"bad eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl here"}`},
			class: failure.Config, code: "invalid_request", descSubstr: "bad [redacted] here"},
		{name: "multi-line description", answer: answer{400, nil, `{"error":"invalid_request","error_description":"first line\nsecond line"}`},
			class: failure.Config, code: "invalid_request", descSubstr: "first line"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := serve(t, tc.answer)
			mp := &auth.Maskinporten{TokenURL: srv.URL, Issuer: "https://test.maskinporten.no/", ClientID: testClientID, Signer: signer, HTTP: srv.Client()}
			ex := &auth.Exchanger{URL: srv.URL, HTTP: srv.Client()}
			calls := map[string]func() (auth.Token, error){
				"maskinporten": func() (auth.Token, error) { return mp.Token(context.Background(), "toll:movement/air") },
				"exchange":     func() (auth.Token, error) { return ex.Exchange(context.Background(), "mp-token") },
			}
			for name, call := range calls {
				_, err := call()
				if got := failure.Classify(err); got != tc.class {
					t.Errorf("%s: class = %v, want %v (err: %v)", name, got, tc.class, err)
				}
				var oe *auth.OAuthError
				if !errors.As(err, &oe) {
					t.Fatalf("%s: err %v is not an *OAuthError", name, err)
				}
				if oe.StatusCode != tc.answer.status || oe.Code != tc.code || oe.Endpoint != srv.URL {
					t.Errorf("%s: OAuthError = %+v", name, oe)
				}
				if !strings.Contains(oe.Description, tc.descSubstr) || strings.ContainsAny(oe.Description, "\r\n") {
					t.Errorf("%s: description %q: want one line containing %q", name, oe.Description, tc.descSubstr)
				}
				ra, ok := failure.RetryAfter(err)
				if tc.retryAfter == 0 && ok {
					t.Errorf("%s: RetryAfter = %v, want none", name, ra)
				}
				// Allow for the seconds an HTTP date loses.
				if tc.retryAfter != 0 && (ra > tc.retryAfter || ra < tc.retryAfter-5*time.Second) {
					t.Errorf("%s: RetryAfter = %v, want about %v", name, ra, tc.retryAfter)
				}
			}
		})
	}
}

func TestTokenEndpointDescriptionBounded(t *testing.T) {
	srv := serve(t, answer{400, nil, `{"error":"invalid_request","error_description":"` + strings.Repeat("ø", 1000) + `"}`})
	_, err := (&auth.Exchanger{URL: srv.URL, HTTP: srv.Client()}).Exchange(context.Background(), "t")
	var oe *auth.OAuthError
	if !errors.As(err, &oe) {
		t.Fatal(err)
	}
	if len(oe.Description) > 210 || !strings.HasSuffix(oe.Description, "ø…") {
		t.Errorf("description of %d bytes: %q…", len(oe.Description), oe.Description[:20])
	}
}

func TestTokenEndpointNetworkFailures(t *testing.T) {
	t.Run("connection refused", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		srv.Close()
		_, err := (&auth.Exchanger{URL: srv.URL}).Exchange(context.Background(), "mp-token")
		if err == nil || failure.Classify(err) != failure.Transient {
			t.Fatalf("err = %v, want a transient error", err)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		release := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}))
		t.Cleanup(srv.Close)
		t.Cleanup(func() { close(release) })
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		mp := &auth.Maskinporten{TokenURL: srv.URL, Issuer: "https://test.maskinporten.no/", ClientID: testClientID, Signer: kidSigner(t), HTTP: srv.Client()}
		_, err := mp.Token(ctx, "toll:movement/air")
		if failure.Classify(err) != failure.Transient || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want a transient deadline error", err)
		}
	})
	t.Run("redirect target never receives the credential", func(t *testing.T) {
		var hit atomic.Bool
		target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hit.Store(true) }))
		t.Cleanup(target.Close)
		srv := serve(t, answer{307, map[string]string{"Location": target.URL}, ""})
		_, err := (&auth.Exchanger{URL: srv.URL, HTTP: srv.Client()}).Exchange(context.Background(), "mp-token")
		if err == nil || hit.Load() {
			t.Fatalf("err = %v, redirect followed = %v", err, hit.Load())
		}
	})
}

// Servers that echo what they were sent must not get a grant or token
// into our errors, whatever shape the echo takes.
func TestErrorsCarryNoSecrets(t *testing.T) {
	var lastAssertion atomic.Value
	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		form, _ := url.ParseQuery(string(raw))
		secret := form.Get("assertion") + form.Get("subject_token")
		lastAssertion.Store(secret)
		switch r.URL.Path {
		case "/json":
			writeJSON(w, 400, map[string]string{"error": "invalid_grant " + secret, "error_description": "bad: " + secret + "\n" + secret})
		case "/raw":
			w.WriteHeader(502)
			_, _ = fmt.Fprintf(w, "upstream said %s", raw)
		case "/half":
			// A truncation boundary in the middle of the secret.
			writeJSON(w, 400, map[string]string{"error": "invalid_request", "error_description": strings.Repeat("x", 150) + secret})
		}
	})
	srv := httptest.NewServer(echo)
	t.Cleanup(srv.Close)
	subject := "opaque+token/with=chars-" + strings.Repeat("s", 40)

	for _, path := range []string{"/json", "/raw", "/half"} {
		mp := &auth.Maskinporten{TokenURL: srv.URL + path, Issuer: "https://test.maskinporten.no/", ClientID: testClientID, Signer: kidSigner(t), HTTP: srv.Client()}
		ex := &auth.Exchanger{URL: srv.URL + path, HTTP: srv.Client()}
		_, mpErr := mp.Token(context.Background(), "toll:movement/air")
		assertion, _ := lastAssertion.Load().(string)
		_, exErr := ex.Exchange(context.Background(), subject)
		for _, c := range []struct {
			err    error
			secret string
		}{{mpErr, assertion}, {exErr, subject}} {
			if c.err == nil || c.secret == "" {
				t.Fatalf("%s: err = %v, secret %q: want an error from a secret-bearing request", path, c.err, c.secret)
			}
			var logged strings.Builder
			slog.New(slog.NewTextHandler(&logged, nil)).Error("fetch failed", "err", c.err)
			for _, out := range []string{c.err.Error(), fmt.Sprintf("%+v", c.err), fmt.Sprintf("%#v", c.err), logged.String()} {
				for _, piece := range []string{c.secret, c.secret[len(c.secret)-30:], url.QueryEscape(c.secret)} {
					if strings.Contains(out, piece) {
						t.Errorf("%s: error output contains a secret: %s", path, out)
					}
				}
			}
		}
	}
}
