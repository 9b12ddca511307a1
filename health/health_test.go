package health_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/digitoll/digitoll-worker/health"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// Readiness follows its checks and says which failed and why; liveness
// does not depend on them.
func TestReadinessFollowsItsChecks(t *testing.T) {
	var paused atomic.Bool
	checks := []health.NamedCheck{
		{Name: "nats", Check: func(context.Context) error { return nil }},
		{Name: "road", Check: func(context.Context) error {
			if paused.Load() {
				return errors.New("paused (configuration):\nNot authorized to request scope toll:movement/road/v2")
			}
			return nil
		}},
	}
	srv, err := health.Listen("127.0.0.1:0", health.Handler(checks, map[string]http.Handler{
		"GET /extra": http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "extra") }),
	}), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	base := "http://" + srv.Addr()

	if code, body := get(t, base+"/readyz"); code != http.StatusOK || !strings.HasPrefix(body, "ready") {
		t.Errorf("ready: %d %q", code, body)
	}
	paused.Store(true)
	code, body := get(t, base+"/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "road: paused (configuration): Not authorized to request scope toll:movement/road/v2") || strings.Contains(body, "nats:") {
		t.Errorf("not ready: %d %q", code, body)
	}
	if code, body := get(t, base+"/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("healthz while not ready: %d %q", code, body)
	}
	if code, body := get(t, base+"/extra"); code != http.StatusOK || body != "extra" {
		t.Errorf("extra: %d %q", code, body)
	}
}

// Profiles are served only where they are mounted: the index lists the
// runtime's profiles and a named one answers; without them the paths are
// unknown.
func TestProfilesAreOptIn(t *testing.T) {
	cases := []struct {
		name  string
		extra map[string]http.Handler
		want  int
	}{
		{"mounted", health.Profiles(), http.StatusOK},
		{"not mounted", nil, http.StatusNotFound},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(health.Handler(nil, tc.extra))
			t.Cleanup(srv.Close)
			for _, path := range []string{"/debug/pprof/", "/debug/pprof/goroutine?debug=1", "/debug/pprof/cmdline"} {
				code, body := get(t, srv.URL+path)
				if code != tc.want {
					t.Fatalf("GET %s: %d, want %d", path, code, tc.want)
				}
				if tc.want == http.StatusOK && path == "/debug/pprof/" && !strings.Contains(body, "heap") {
					t.Fatalf("GET %s does not list the heap profile:\n%s", path, body)
				}
			}
		})
	}
}
