package simulator_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/digitoll/digitoll-worker/simulator"
)

func adminDo(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// The admin API changes a running simulator: faults, validation delay and
// scopes, and refuses what it cannot apply.
func TestAdminAPIChangesTheRunningSimulator(t *testing.T) {
	dir := t.TempDir()
	key, err := simulator.WriteDemoKey(dir, "admin-test")
	if err != nil {
		t.Fatal(err)
	}
	s, err := simulator.Start(simulator.Config{Clients: []simulator.Client{key.Client("toll:movement/road/v2")}}, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	admin := s.URL() + "/_sim/"

	if code, body := adminDo(t, http.MethodPut, admin+"faults", `{"latency":"250ms","errorRate":0.5,"maskinportenDown":true}`); code != http.StatusOK {
		t.Fatalf("put faults: %d %s", code, body)
	}
	code, body := adminDo(t, http.MethodGet, admin+"faults", "")
	if code != http.StatusOK || !strings.Contains(body, `"latency":"250ms"`) || !strings.Contains(body, `"errorRate":0.5`) || !strings.Contains(body, `"maskinportenDown":true`) {
		t.Fatalf("get faults: %d %s", code, body)
	}
	// A Maskinporten outage set over HTTP is in force.
	if code, _ := adminDo(t, http.MethodPost, s.TokenURL(), ""); code != http.StatusServiceUnavailable {
		t.Errorf("token endpoint during the outage: %d, want 503", code)
	}
	for _, bad := range []string{`{"errorRate":2}`, `{"latency":"soon"}`, `{"errorRate":0.6,"tooManyRate":0.6}`, `{"nope":1}`, `{`} {
		if code, _ := adminDo(t, http.MethodPut, admin+"faults", bad); code != http.StatusBadRequest {
			t.Errorf("faults %s: %d, want 400", bad, code)
		}
	}
	if code, body := adminDo(t, http.MethodPut, admin+"validation-delay", "2s"); code != http.StatusOK || strings.TrimSpace(body) != (2*time.Second).String() {
		t.Errorf("validation delay: %d %s", code, body)
	}
	if code, _ := adminDo(t, http.MethodPut, admin+"validation-delay", "later"); code != http.StatusBadRequest {
		t.Errorf("bad validation delay: %d", code)
	}
	if code, _ := adminDo(t, http.MethodPut, admin+"clients/admin-test/scopes/toll:movement/air", ""); code != http.StatusNoContent {
		t.Errorf("grant: %d", code)
	}
	if code, _ := adminDo(t, http.MethodDelete, admin+"clients/admin-test/scopes/toll:movement/road/v2", ""); code != http.StatusNoContent {
		t.Errorf("revoke: %d", code)
	}
	if code, _ := adminDo(t, http.MethodPut, admin+"clients/nobody/scopes/toll:movement/air", ""); code != http.StatusNotFound {
		t.Errorf("grant to an unknown client: %d", code)
	}
	if code, body := adminDo(t, http.MethodGet, admin+"stats", ""); code != http.StatusOK || !strings.Contains(body, "POST /maskinporten/token") {
		t.Errorf("stats: %d %s", code, body)
	}
}
