package ops_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/digitoll/digitoll-worker/ops"
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
	checks := []ops.NamedCheck{
		{Name: "nats", Check: func(context.Context) error { return nil }},
		{Name: "road", Check: func(context.Context) error {
			if paused.Load() {
				return errors.New("paused (configuration):\nNot authorized to request scope toll:movement/road/v2")
			}
			return nil
		}},
	}
	srv, err := ops.Listen("127.0.0.1:0", ops.Handler(checks, map[string]http.Handler{
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
