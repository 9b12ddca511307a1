package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/digitoll/digitoll-worker/config"
	"github.com/digitoll/digitoll-worker/internal/pkitest"
	"github.com/digitoll/digitoll-worker/simulator"
)

// copyWithMode copies src into a new file of dir with the given mode.
func copyWithMode(t *testing.T, src string, mode os.FileMode) string {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), filepath.Base(src))
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigCheck(t *testing.T) {
	now := time.Now()
	ca := pkitest.NewCA(t, "business-ca")
	good := ca.Issue(t, "acme", pkitest.LeafOptions{RSA: true, NotAfter: now.Add(365 * 24 * time.Hour)})
	expired := ca.Issue(t, "acme-expired", pkitest.LeafOptions{Key: good.Key, NotBefore: now.Add(-400 * 24 * time.Hour), NotAfter: now.Add(-time.Hour)})
	soon := ca.Issue(t, "acme-soon", pkitest.LeafOptions{Key: good.Key, NotAfter: now.Add(10 * 24 * time.Hour)})
	other := ca.Issue(t, "other", pkitest.LeafOptions{RSA: true})
	natsDir := t.TempDir()

	x5c := func(set map[string]string) map[string]string {
		vars := map[string]string{
			"DIGITOLL_ENV": "test", "DIGITOLL_CLIENT_ID": "acme-integration",
			"DIGITOLL_KEY_FILE": good.KeyFile, "DIGITOLL_CERT_FILE": good.ChainFile, "DIGITOLL_NATS_DIR": natsDir,
		}
		for k, v := range set {
			vars[k] = v
		}
		return vars
	}
	tests := []struct {
		name     string
		vars     map[string]string
		args     []string
		wantCode int
		want     []string
	}{
		{"good business certificate", x5c(nil), nil, 0, []string{
			"✓ key file", "mode 0600", "✓ certificate        CN=acme matches the key", "✓ endpoint           DIGITOLL_TOLL_BASE_URL: https://api-test.toll.no/api",
			"✓ NATS", "0 failed"}},
		{"good registered key", x5c(map[string]string{"DIGITOLL_CERT_FILE": "", "DIGITOLL_KEY_ID": "acme-key-1"}), nil, 0, []string{
			`✓ mode               kid "acme-key-1"`, "integration acme-integration", "0 failed"}},
		{"world-readable key", x5c(map[string]string{"DIGITOLL_KEY_FILE": copyWithMode(t, good.KeyFile, 0o644)}), nil, 1, []string{
			"✗ key file", "readable by everyone (mode 0644): chmod 600"}},
		{"group-readable key warns", x5c(map[string]string{"DIGITOLL_KEY_FILE": copyWithMode(t, good.KeyFile, 0o640)}), nil, 0, []string{
			"! key file", "readable by its group (mode 0640)", "1 warnings, 0 failed"}},
		{"unreadable key", x5c(map[string]string{"DIGITOLL_KEY_FILE": filepath.Join(natsDir, "nope.pem")}), nil, 1, []string{
			"✗ key file", "cannot read"}},
		{"expired certificate", x5c(map[string]string{"DIGITOLL_CERT_FILE": expired.ChainFile}), nil, 1, []string{
			"✗ certificate        CN=acme-expired expired on"}},
		{"certificate expiring within 30 days", x5c(map[string]string{"DIGITOLL_CERT_FILE": soon.ChainFile}), nil, 0, []string{
			"! certificate        CN=acme-soon expires on", "in 9 days"}},
		{"certificate of another key", x5c(map[string]string{"DIGITOLL_CERT_FILE": other.ChainFile}), nil, 1, []string{
			"✗ certificate", "does not match"}},
		{"prod over plain http", x5c(map[string]string{"DIGITOLL_ENV": "prod", "DIGITOLL_TOLL_BASE_URL": "http://toll.internal/api"}), nil, 1, []string{
			"✗ settings", "prod needs https", "✗ endpoint           DIGITOLL_TOLL_BASE_URL: http://toll.internal/api: prod refuses plain http"}},
		{"plain http outside prod warns", x5c(map[string]string{"DIGITOLL_TOLL_BASE_URL": "http://toll.internal/api"}), nil, 0, []string{
			"! endpoint", "is plain http"}},
		{"foreign business with the leaf only", x5c(map[string]string{"DIGITOLL_FOREIGN": "true", "DIGITOLL_CERT_FILE": good.CertFile}), nil, 1, []string{
			"✗ chain", "must send the whole chain"}},
		{"foreign business with its chain", x5c(map[string]string{"DIGITOLL_FOREIGN": "true"}), nil, 0, []string{
			"✓ chain              2 certificates", "✓ issuer 1           CN=business-ca"}},
		{"flag wins and is named", x5c(nil), []string{"--concurrency", "7"}, 0, []string{
			"DIGITOLL_CONCURRENCY             7", "flag --concurrency"}},
		{"a setting that does not parse", x5c(map[string]string{"DIGITOLL_CONCURRENCY": "many"}), nil, 1, []string{
			"✗ settings", "DIGITOLL_CONCURRENCY"}},
		{"NATS unreachable", x5c(map[string]string{"DIGITOLL_NATS_URL": "nats://127.0.0.1:1"}), nil, 1, []string{
			"✗ NATS", "connect to NATS at nats://127.0.0.1:1"}},
		{"NATS password masked", x5c(map[string]string{"DIGITOLL_NATS_URL": "nats://worker:hunter2@127.0.0.1:1"}), nil, 1, []string{
			"nats://worker:***@127.0.0.1:1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, out, errOut := testEnv(tt.vars)
			code := run(context.Background(), env, append([]string{"config", "check"}, tt.args...))
			if code != tt.wantCode {
				t.Errorf("exit %d, want %d", code, tt.wantCode)
			}
			for _, w := range tt.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q", w)
				}
			}
			all := out.String() + errOut.String()
			for _, secret := range []string{"PRIVATE KEY", "hunter2"} {
				if strings.Contains(all, secret) {
					t.Errorf("output shows %q", secret)
				}
			}
			if t.Failed() {
				t.Logf("stdout:\n%s\nstderr:\n%s", out, errOut)
			}
		})
	}
}

// --online gets a token for every enabled kind's scope (and calls
// test-auth where there is one): a scope the integration lacks fails.
func TestConfigCheckOnline(t *testing.T) {
	dir := t.TempDir()
	key, err := simulator.WriteDemoKey(dir, config.SimClientID)
	if err != nil {
		t.Fatal(err)
	}
	sim, err := simulator.Start(simulator.Config{
		Clients: []simulator.Client{key.Client("toll:movement/road/v2", "toll:movement/entry")},
	}, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	vars := map[string]string{
		"DIGITOLL_ENV": "sim", "DIGITOLL_SIM_URL": sim.URL(), "DIGITOLL_SIM_DIR": dir,
		"DIGITOLL_NATS_DIR": t.TempDir(), "DIGITOLL_KINDS": "road,entry",
	}
	env, out, errOut := testEnv(vars)
	if code := run(context.Background(), env, []string{"config", "check", "--online"}); code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	for _, w := range []string{"✓ metadata           issuer " + sim.Issuer(), "✓ road               token for toll:movement/road/v2, and Toll's test-auth accepts it", "✓ entry              token for toll:movement/entry"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}

	sim.RevokeScope(config.SimClientID, "toll:movement/entry")
	env, out, errOut = testEnv(vars)
	if code := run(context.Background(), env, []string{"config", "check", "--online"}); code != 1 || !strings.Contains(out.String(), "✗ entry") {
		t.Fatalf("entry scope revoked: exit %d\n%s%s", code, out, errOut)
	}
	if !strings.Contains(errOut.String(), "1 of") {
		t.Errorf("stderr does not sum up: %s", errOut)
	}
}

func TestConfigUsage(t *testing.T) {
	env, out, errOut := testEnv(nil)
	if code := run(context.Background(), env, []string{"config"}); code != 2 || !strings.Contains(errOut.String(), "Usage: digitoll config check") {
		t.Errorf("no subcommand: exit %d %s%s", code, out, errOut)
	}
	env, out, _ = testEnv(nil)
	if code := run(context.Background(), env, []string{"config", "check", "--help"}); code != 0 || !strings.Contains(out.String(), "--online") {
		t.Errorf("--help: exit %d %s", code, out)
	}
}

// `digitoll run` stops on what `config check` fails, reports every bad
// setting at once, and warns about what has no effect, as `config check`
// does.
func TestRunReportsTheConfiguration(t *testing.T) {
	ca := pkitest.NewCA(t, "business-ca")
	good := ca.Issue(t, "acme", pkitest.LeafOptions{RSA: true})
	groupKey := copyWithMode(t, good.KeyFile, 0o640)
	tenants := filepath.Join(t.TempDir(), "tenants.yaml")
	if err := os.WriteFile(tenants, []byte("tenants:\n  - name: acme\n    organisationNumber: \"912345678\"\n    clientId: acme-client\n    keyFile: "+good.KeyFile+"\n    keyId: k1\n    kinds: [road]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := func(set map[string]string) map[string]string {
		vars := map[string]string{
			"DIGITOLL_CLIENT_ID": "acme-integration", "DIGITOLL_KEY_FILE": good.KeyFile, "DIGITOLL_KEY_ID": "k1",
			// Connecting fails at once, after the configuration is read.
			"DIGITOLL_NATS_URL": "nats://127.0.0.1:1", "DIGITOLL_HTTP_ADDR": "off",
		}
		for k, v := range set {
			vars[k] = v
		}
		return vars
	}
	tests := []struct {
		name       string
		vars       map[string]string
		wantStderr []string
	}{
		{"world-readable key", base(map[string]string{"DIGITOLL_KEY_FILE": copyWithMode(t, good.KeyFile, 0o644)}),
			[]string{"DIGITOLL_KEY_FILE: ", "is readable by everyone (mode 0644): chmod 600"}},
		{"every bad setting at once", base(map[string]string{"DIGITOLL_CONCURRENCY": "lots", "DIGITOLL_ACK_WAIT": "soon", "DIGITOLL_CLIENT_ID": ""}),
			[]string{"DIGITOLL_CONCURRENCY (--concurrency)", "DIGITOLL_ACK_WAIT (--ack-wait)", "DIGITOLL_CLIENT_ID: is required"}},
		{"a typo of a missing setting", base(map[string]string{"DIGITOLL_CLIENT_ID": "", "DIGITOLL_CLIENTID": "acme-integration"}),
			[]string{"warning: DIGITOLL_CLIENTID is not a setting of digitoll; it is ignored (did you mean DIGITOLL_CLIENT_ID?)", "DIGITOLL_CLIENT_ID: is required"}},
		{"unknown variable", base(map[string]string{"DIGITOLL_CONCURENCY": "8"}),
			[]string{"DIGITOLL_CONCURENCY is not a setting of digitoll; it is ignored (did you mean DIGITOLL_CONCURRENCY?)", "connect to NATS"}},
		{"group-readable key", base(map[string]string{"DIGITOLL_KEY_FILE": groupKey}),
			[]string{"is readable by its group (mode 0640)", "connect to NATS"}},
		{"NATS_URL without DIGITOLL_NATS_URL", base(map[string]string{"DIGITOLL_NATS_URL": "", "NATS_URL": "nats://127.0.0.1:1"}),
			[]string{"NATS: nats://127.0.0.1:1", "from=NATS_URL", "connect to NATS at nats://127.0.0.1:1"}},
		{"the standard OTLP variables", base(map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_SERVICE_NAME": "edge"}),
			[]string{"traces: http://127.0.0.1:1", "from=OTEL_EXPORTER_OTLP_ENDPOINT"}},
		{"tenants file with single-tenant settings", base(map[string]string{"DIGITOLL_TENANTS_FILE": tenants}),
			[]string{"DIGITOLL_CLIENT_ID, DIGITOLL_KEY_FILE, DIGITOLL_KEY_ID are ignored: DIGITOLL_TENANTS_FILE is set"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, out, errOut := testEnv(tt.vars)
			if code := run(context.Background(), env, []string{"run"}); code != 1 {
				t.Errorf("exit %d, want 1", code)
			}
			for _, w := range tt.wantStderr {
				if !strings.Contains(errOut.String(), w) {
					t.Errorf("stderr lacks %q", w)
				}
			}
			if t.Failed() {
				t.Logf("stdout:\n%s\nstderr:\n%s", out, errOut)
			}
		})
	}
}

func TestConfigCheckWarnsAboutWhatHasNoEffect(t *testing.T) {
	ca := pkitest.NewCA(t, "business-ca")
	good := ca.Issue(t, "acme", pkitest.LeafOptions{RSA: true})
	env, out, _ := testEnv(map[string]string{
		"DIGITOLL_CLIENT_ID": "acme-integration", "DIGITOLL_KEY_FILE": good.KeyFile, "DIGITOLL_CERT_FILE": good.ChainFile,
		"DIGITOLL_NATS_DIR": t.TempDir(), "DIGITOLL_KIND": "air", "DIGITOLL_MASKINPORTEN_ISSUER": "https://test.maskinporten.no",
	})
	if code := run(context.Background(), env, []string{"config", "check"}); code != 0 {
		t.Errorf("exit %d, want 0:\n%s", code, out)
	}
	for _, w := range []string{
		"! environment        DIGITOLL_KIND is not a setting of digitoll; it is ignored (did you mean DIGITOLL_KINDS?)",
		// The issuer without its slash is the issuer with it.
		"DIGITOLL_MASKINPORTEN_ISSUER     https://test.maskinporten.no/",
		"✓ settings           consistent",
	} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
}
