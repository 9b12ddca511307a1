package auth_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/digitoll/digitoll-worker/auth"
	"github.com/digitoll/digitoll-worker/failure"
	"github.com/digitoll/digitoll-worker/simulator"
)

// metadataServer serves metadata at /.well-known/oauth-authorization-server
// that answer builds, and counts the reads.
type metadataServer struct {
	srv    *httptest.Server
	reads  atomic.Int64
	answer atomic.Value // func(issuer string) (int, any)
}

func newMetadataServer(t *testing.T, tlsServer bool, answer func(issuer string) (int, any)) *metadataServer {
	t.Helper()
	m := &metadataServer{}
	m.answer.Store(answer)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Path != "/.well-known/oauth-authorization-server" {
			http.NotFound(w, r)
			return
		}
		m.reads.Add(1)
		status, body := m.answer.Load().(func(string) (int, any))(m.issuer())
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(body)
	})
	if tlsServer {
		m.srv = httptest.NewTLSServer(h)
	} else {
		m.srv = httptest.NewServer(h)
	}
	t.Cleanup(m.srv.Close)
	return m
}

func (m *metadataServer) issuer() string { return m.srv.URL + "/" }

func (m *metadataServer) set(answer func(issuer string) (int, any)) { m.answer.Store(answer) }

func goodMetadata(issuer string) (int, any) {
	return 200, map[string]any{"issuer": issuer, "token_endpoint": issuer + "token", "grant_types_supported": []string{"x"}}
}

func TestDiscover(t *testing.T) {
	tests := []struct {
		name      string
		tls       bool
		answer    func(issuer string) (int, any)
		wantClass error // nil: succeeds
		wantText  string
	}{
		{"good", false, goodMetadata, nil, ""},
		{"good over https", true, goodMetadata, nil, ""},
		{"another issuer", false, func(string) (int, any) {
			return 200, map[string]string{"issuer": "https://evil.example/", "token_endpoint": "https://evil.example/token"}
		}, failure.ErrConfig, "names issuer"},
		{"issuer without its slash", false, func(iss string) (int, any) {
			return 200, map[string]string{"issuer": strings.TrimSuffix(iss, "/"), "token_endpoint": iss + "token"}
		}, failure.ErrConfig, "names issuer"},
		{"plain http token endpoint of an https issuer", true, func(iss string) (int, any) {
			return 200, map[string]string{"issuer": iss, "token_endpoint": "http://" + strings.TrimPrefix(iss, "https://") + "token"}
		}, failure.ErrConfig, "not https"},
		{"relative token endpoint", false, func(iss string) (int, any) {
			return 200, map[string]string{"issuer": iss, "token_endpoint": "/token"}
		}, failure.ErrConfig, "not an http(s) URL"},
		{"not JSON metadata", false, func(string) (int, any) { return 200, "hello" }, failure.ErrConfig, "not JSON"},
		{"server error", false, func(string) (int, any) { return 503, map[string]string{} }, failure.ErrTransient, "HTTP 503"},
		{"not found", false, func(string) (int, any) { return 404, map[string]string{} }, failure.ErrConfig, "HTTP 404"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newMetadataServer(t, tt.tls, tt.answer)
			md, err := auth.Discover(context.Background(), m.srv.Client(), m.issuer())
			if tt.wantClass == nil {
				if err != nil {
					t.Fatal(err)
				}
				if md.Issuer != m.issuer() || md.TokenEndpoint != m.issuer()+"token" {
					t.Errorf("metadata %+v", md)
				}
				return
			}
			if !errors.Is(err, tt.wantClass) || !strings.Contains(err.Error(), tt.wantText) {
				t.Fatalf("err = %v, want %v mentioning %q", err, tt.wantClass, tt.wantText)
			}
		})
	}
	if _, err := auth.Discover(context.Background(), nil, "http://127.0.0.1:1/"); !errors.Is(err, failure.ErrTransient) {
		t.Errorf("unreachable: err = %v, want ErrTransient", err)
	}
}

func TestDiscoveryCachesAndFallsBack(t *testing.T) {
	m := newMetadataServer(t, false, goodMetadata)
	clock := newClock()
	fallback := auth.Metadata{Issuer: m.issuer(), TokenEndpoint: "https://fallback.example/token"}
	d := &auth.Discovery{Issuer: m.issuer(), Fallback: fallback, MaxAge: time.Hour, RetryAfter: time.Minute, Now: clock.Now}
	ctx := context.Background()
	discovered := auth.Metadata{Issuer: m.issuer(), TokenEndpoint: m.issuer() + "token"}

	steps := []struct {
		name      string
		advance   time.Duration
		answer    func(string) (int, any)
		want      auth.Metadata
		wantReads int64
	}{
		{"first use reads", 0, nil, discovered, 1},
		{"cached within MaxAge", 59 * time.Minute, nil, discovered, 1},
		{"read again after MaxAge", 2 * time.Minute, nil, discovered, 2},
		{"a failed read keeps the last metadata", time.Hour + time.Second, func(string) (int, any) { return 503, map[string]string{} }, discovered, 3},
		{"no new try before RetryAfter", 30 * time.Second, nil, discovered, 3},
		{"tried again after RetryAfter", 31 * time.Second, goodMetadata, discovered, 4},
	}
	for _, s := range steps {
		clock.Advance(s.advance)
		if s.answer != nil {
			m.set(s.answer)
		}
		if got := d.Metadata(ctx); got != s.want {
			t.Errorf("%s: %+v, want %+v", s.name, got, s.want)
		}
		if n := m.reads.Load(); n != s.wantReads {
			t.Errorf("%s: %d reads, want %d", s.name, n, s.wantReads)
		}
	}

	never := &auth.Discovery{Issuer: "http://127.0.0.1:1/", Fallback: fallback, Now: clock.Now}
	if got := never.Metadata(ctx); got != fallback {
		t.Errorf("unreachable metadata: %+v, want the fallback", got)
	}
}

// The worker's Maskinporten client takes its token endpoint from the
// simulator's metadata, and falls back to the configured one when the
// metadata cannot be read.
func TestMaskinportenUsesDiscoveredEndpoints(t *testing.T) {
	key, err := simulator.WriteDemoKey(t.TempDir(), "discovery-test")
	if err != nil {
		t.Fatal(err)
	}
	sim, err := simulator.Start(simulator.Config{Clients: []simulator.Client{key.Client("toll:movement/road/v2")}}, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	signer, err := auth.NewKeySigner(key.Key, key.KeyID)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	// The configured token URL leads nowhere: only the discovered one
	// can give a token.
	mp := &auth.Maskinporten{
		Issuer: sim.Issuer(), TokenURL: "http://127.0.0.1:1/token", ClientID: key.ClientID, Signer: signer,
		Endpoints: &auth.Discovery{Issuer: sim.Issuer(), Fallback: auth.Metadata{Issuer: sim.Issuer(), TokenEndpoint: "http://127.0.0.1:1/token"}},
	}
	if _, err := mp.Token(ctx, "toll:movement/road/v2"); err != nil {
		t.Fatalf("with discovery: %v", err)
	}

	// Metadata unreadable (wrong path): the configured pair serves.
	fallback := auth.Metadata{Issuer: sim.Issuer(), TokenEndpoint: sim.TokenURL()}
	mp = &auth.Maskinporten{
		Issuer: sim.Issuer(), TokenURL: sim.TokenURL(), ClientID: key.ClientID, Signer: signer,
		Endpoints: &auth.Discovery{Issuer: sim.URL() + "/nowhere/", Fallback: fallback},
	}
	if _, err := mp.Token(ctx, "toll:movement/road/v2"); err != nil {
		t.Fatalf("with the fallback: %v", err)
	}

	mp.Endpoints = &auth.Discovery{Issuer: sim.URL() + "/nowhere/"}
	if _, err := mp.Token(ctx, "toll:movement/road/v2"); !errors.Is(err, failure.ErrConfig) {
		t.Fatalf("no endpoints at all: err = %v, want ErrConfig", err)
	}
}
