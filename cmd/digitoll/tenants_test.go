package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/digitoll/digitoll-worker/simulator"
)

// `digitoll tenants list` shows the file's tenants; `tenants check NAME`
// gets each of the tenant's scopes with its own key and says which Toll
// refuses.
func TestTenantsCommand(t *testing.T) {
	dir := t.TempDir()
	acme, err := simulator.WriteDemoKey(dir, "acme-client")
	if err != nil {
		t.Fatal(err)
	}
	beta, err := simulator.WriteDemoKey(dir, "beta-client")
	if err != nil {
		t.Fatal(err)
	}
	sim, err := simulator.Start(simulator.Config{Clients: []simulator.Client{
		acme.Client("toll:movement/road/v2", "toll:movement/entry"),
		beta.Client("toll:movement/road/v2"), // entry not granted
	}}, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	file := filepath.Join(dir, "tenants.yaml")
	content := fmt.Sprintf(`tenants:
  - name: acme
    organisationNumber: "912345678"
    clientId: acme-client
    keyFile: %s
    keyId: %s
    kinds: [road, entry]
  - name: beta
    organisationNumber: "987654321"
    clientId: beta-client
    keyFile: %s
    certFile: %s
    kinds: [road, entry]
    concurrency: 5
`, acme.KeyFile, acme.KeyID, beta.KeyFile, beta.CertFile)
	if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{
		"DIGITOLL_ENV": "sim", "DIGITOLL_SIM_URL": sim.URL(), "DIGITOLL_SIM_DIR": dir,
		"DIGITOLL_NATS_DIR": t.TempDir(), "DIGITOLL_TENANTS_FILE": file,
	}

	env, out, errOut := testEnv(vars)
	if code := run(context.Background(), env, []string{"tenants", "list"}); code != 0 {
		t.Fatalf("list: exit %d\n%s%s", code, out, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("list printed %d lines, want a header and 2 tenants:\n%s", len(lines), out)
	}
	for i, want := range [][]string{
		{"acme", "912345678", "acme-client", "kid", acme.KeyID, "toll:", "road,entry", "-"},
		{"beta", "987654321", "beta-client", "x5c", "toll:", "road,entry", "5"},
	} {
		if got := strings.Fields(lines[i+1]); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("line %d = %q, want fields %v", i+1, lines[i+1], want)
		}
	}

	env, out, errOut = testEnv(vars)
	if code := run(context.Background(), env, []string{"tenants", "check", "acme"}); code != 0 {
		t.Fatalf("check acme: exit %d\n%s%s", code, out, errOut)
	}
	for _, w := range []string{"✓ road               token for toll:movement/road/v2, and Toll's test-auth accepts it", "✓ entry              token for toll:movement/entry"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("check acme: output lacks %q:\n%s", w, out)
		}
	}

	env, out, errOut = testEnv(vars)
	if code := run(context.Background(), env, []string{"tenants", "check", "beta"}); code != 1 {
		t.Fatalf("check beta: exit %d, want 1\n%s%s", code, out, errOut)
	}
	if !strings.Contains(out.String(), "✓ road") || !strings.Contains(out.String(), "✗ entry") {
		t.Errorf("check beta: want road passing and entry failing:\n%s", out)
	}
	// Each tenant's grants were signed as its own integration.
	st := sim.Stats()
	if st.Grants("acme-client", "toll:movement/entry") != 1 || st.Grants("beta-client", "toll:movement/road/v2") != 1 {
		t.Errorf("grants: acme entry %d, beta road %d; want 1 each",
			st.Grants("acme-client", "toll:movement/entry"), st.Grants("beta-client", "toll:movement/road/v2"))
	}

	env, out, errOut = testEnv(vars)
	if code := run(context.Background(), env, []string{"tenants", "check", "nobody"}); code != 1 || !strings.Contains(errOut.String(), `no tenant "nobody" (tenants: acme, beta)`) {
		t.Errorf("check nobody: exit %d\n%s%s", code, out, errOut)
	}
	// config check leaves the tenants to tenants check.
	env, out, errOut = testEnv(vars)
	if code := run(context.Background(), env, []string{"config", "check"}); code != 0 || !strings.Contains(out.String(), "✓ tenants            2 in "+file) {
		t.Errorf("config check: exit %d\n%s%s", code, out, errOut)
	}
	env, out, errOut = testEnv(vars)
	if code := run(context.Background(), env, []string{"tenants"}); code != 2 || !strings.Contains(errOut.String(), "Usage: digitoll tenants") {
		t.Errorf("no subcommand: exit %d\n%s%s", code, out, errOut)
	}
}
