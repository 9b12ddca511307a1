package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/digitoll/digitoll-worker/internal/natstest"
	"github.com/digitoll/digitoll-worker/simulator"
	"github.com/digitoll/digitoll-worker/worker"
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
	tenants, keys, _ := strings.Cut(strings.TrimSpace(out.String()), "\n\n")
	lines := strings.Split(tenants, "\n")
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
	// Then each tenant's key: kid, or certificate subject and expiry.
	lines = strings.Split(keys, "\n")
	notAfter := beta.Certificate.NotAfter.UTC().Format(time.RFC3339)
	for i, want := range []string{
		"TENANT KEY NOT BEFORE NOT AFTER STATE",
		"acme kid " + acme.KeyID + " - - in use",
		"beta x5c " + beta.Certificate.Subject.String() + " - " + notAfter + " in use",
	} {
		if i >= len(lines) || strings.Join(strings.Fields(lines[i]), " ") != want {
			t.Errorf("keys table line %d: want %q in\n%s", i, want, keys)
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

// A tenant rotating its key lists both: `tenants list` shows which signs
// now and when the other takes over; `tenants check` gets a token with
// each, so a new key not yet registered on the integration is found
// before its notBefore.
func TestTenantsKeys(t *testing.T) {
	dir := t.TempDir()
	old, err := simulator.WriteDemoKey(filepath.Join(dir, "old"), "acme-client")
	if err != nil {
		t.Fatal(err)
	}
	next, err := simulator.WriteDemoKey(filepath.Join(dir, "new"), "acme-client")
	if err != nil {
		t.Fatal(err)
	}
	sim, err := simulator.Start(simulator.Config{}, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	sim.AddClient(old.Client("toll:movement/road/v2")) // the new key is not registered yet
	switchAt := time.Now().Add(24 * time.Hour).UTC().Truncate(time.Second)
	file := filepath.Join(dir, "tenants.yaml")
	content := fmt.Sprintf(`tenants:
  - name: acme
    organisationNumber: "912345678"
    clientId: acme-client
    kinds: [road]
    keys:
      - keyFile: %s
        keyId: %s
      - keyFile: %s
        keyId: %s
        notBefore: %s
`, old.KeyFile, old.KeyID, next.KeyFile, next.KeyID, switchAt.Format(time.RFC3339))
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
	tenants, keys, _ := strings.Cut(strings.TrimSpace(out.String()), "\n\n")
	if !strings.Contains(strings.Join(strings.Fields(tenants), " "), "acme-client kid "+old.KeyID+" toll:") {
		t.Errorf("list: the tenant's mode is not the key in use:\n%s", tenants)
	}
	for _, want := range []string{
		"acme kid " + old.KeyID + " - - in use",
		"acme kid " + next.KeyID + " " + switchAt.Format(time.RFC3339) + " - not before " + switchAt.Format(time.RFC3339),
	} {
		if !strings.Contains(strings.Join(strings.Fields(keys), " "), want) {
			t.Errorf("list: keys table lacks %q:\n%s", want, keys)
		}
	}

	// The new key is not registered: check fails on it, not on the old.
	env, out, errOut = testEnv(vars)
	if code := run(context.Background(), env, []string{"tenants", "check", "acme"}); code != 1 {
		t.Fatalf("check before registering: exit %d, want 1\n%s%s", code, out, errOut)
	}
	first, second, ok := strings.Cut(out.String(), "Key 2 of 2 (not before "+switchAt.Format(time.RFC3339)+"):")
	if !ok || !strings.Contains(first, "Key 1 of 2 (not before -):") || !strings.Contains(first, "✓ road") ||
		!strings.Contains(second, "✗ road") || !strings.Contains(second, "kid is not registered") {
		t.Errorf("check before registering: want road passing with key 1 and failing with key 2:\n%s", out)
	}
	for _, want := range []string{
		`✓ key in use         key 1: kid "` + old.KeyID + `"`,
		"Keys:\n",
		"- key 2              kid " + next.KeyID + ": not before " + switchAt.Format(time.RFC3339),
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("check: output lacks %q:\n%s", want, out)
		}
	}

	// Registered, both keys pass.
	c := old.Client("toll:movement/road/v2")
	c.MoreKeys = []simulator.RegisteredKey{{KeyID: next.KeyID, PublicKey: &next.Key.PublicKey}}
	sim.AddClient(c)
	env, out, errOut = testEnv(vars)
	if code := run(context.Background(), env, []string{"tenants", "check", "acme"}); code != 0 {
		t.Fatalf("check after registering: exit %d\n%s%s", code, out, errOut)
	}
	if n := strings.Count(out.String(), "✓ road"); n != 2 {
		t.Errorf("check after registering: %d road verdicts passed, want one per key:\n%s", n, out)
	}
}

// `digitoll tenants provision` makes each tenant's reader consumers, filtered
// on its own subjects, and can be run again; an unknown tenant is refused.
func TestTenantsProvision(t *testing.T) {
	dir := t.TempDir()
	var entries []string
	for i, name := range []string{"acme", "beta"} {
		key, err := simulator.WriteDemoKey(dir, name+"-client")
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, fmt.Sprintf("  - name: %s\n    organisationNumber: \"91234567%d\"\n    clientId: %s-client\n    keyFile: %s\n    keyId: %s\n    kinds: [road]\n",
			name, i, name, key.KeyFile, key.KeyID))
	}
	file := filepath.Join(dir, "tenants.yaml")
	if err := os.WriteFile(file, []byte("tenants:\n"+strings.Join(entries, "")), 0o600); err != nil {
		t.Fatal(err)
	}
	natsDir := t.TempDir()
	vars := map[string]string{"DIGITOLL_NATS_DIR": natsDir, "DIGITOLL_TENANTS_FILE": file}

	for _, args := range [][]string{{"tenants", "provision"}, {"tenants", "provision", "acme"}} {
		env, out, errOut := testEnv(vars)
		if code := run(context.Background(), env, args); code != 0 {
			t.Fatalf("%v: exit %d\n%s%s", args, code, out, errOut)
		}
		if !strings.Contains(strings.Join(strings.Fields(out.String()), " "), "acme results-acme DIGITOLL_RESULTS digitoll.result.*.acme") {
			t.Errorf("%v: output lacks acme's results consumer:\n%s", args, out)
		}
	}
	env, out, errOut := testEnv(vars)
	if code := run(context.Background(), env, []string{"tenants", "provision", "nobody"}); code == 0 || !strings.Contains(errOut.String(), `tenant "nobody" is not configured`) {
		t.Errorf("an unknown tenant: exit %d\n%s%s", code, out, errOut)
	}

	_, js := natstest.Start(t, natsDir)
	for _, tenant := range []string{"acme", "beta"} {
		for _, r := range worker.TenantReaders(tenant) {
			c, err := js.Consumer(t.Context(), r.Stream, r.Name)
			if err != nil {
				t.Errorf("%s: %v", r.Name, err)
				continue
			}
			if f := c.CachedInfo().Config.FilterSubject; f != r.Filter || !strings.HasSuffix(f, "."+tenant) {
				t.Errorf("%s filters %q, want %q", r.Name, f, r.Filter)
			}
		}
	}
}
