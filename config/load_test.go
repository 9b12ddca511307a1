package config_test

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/digitoll/digitoll-worker/config"
)

// env builds a getenv from pairs.
func env(kv map[string]string) func(string) string {
	return func(k string) string { return kv[k] }
}

func newFlagSet() *flag.FlagSet {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

func writeFile(t *testing.T, dir, name string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadPicksEndpointsByEnvironment(t *testing.T) {
	dir := t.TempDir()
	key := writeFile(t, dir, "key.pem")
	tests := []struct {
		env                       string
		issuer, tokenURL, tollURL string
	}{
		{"test", "https://test.maskinporten.no/", "https://test.maskinporten.no/token", "https://api-test.toll.no/api"},
		{"prod", "https://maskinporten.no/", "https://maskinporten.no/token", "https://api.toll.no/api"},
	}
	for _, tt := range tests {
		t.Run(tt.env, func(t *testing.T) {
			c, err := config.Load(newFlagSet(), nil, env(map[string]string{
				"DIGITOLL_ENV": tt.env, "DIGITOLL_CLIENT_ID": "abc", "DIGITOLL_KEY_FILE": key, "DIGITOLL_KEY_ID": "k1",
			}))
			if err != nil {
				t.Fatal(err)
			}
			if c.Maskinporten.Issuer != tt.issuer || c.Maskinporten.TokenURL != tt.tokenURL || c.TollBaseURL != tt.tollURL {
				t.Errorf("got %q %q %q", c.Maskinporten.Issuer, c.Maskinporten.TokenURL, c.TollBaseURL)
			}
		})
	}
}

func TestLoadSimDefaultsToTheSimulatorsDemoKey(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, config.SimKeyFile)
	writeFile(t, dir, config.SimCertFile)
	c, err := config.Load(newFlagSet(), nil, env(map[string]string{
		"DIGITOLL_ENV": "sim", "DIGITOLL_SIM_DIR": dir, "DIGITOLL_SIM_URL": "http://127.0.0.1:9999/",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Maskinporten.Issuer != "http://127.0.0.1:9999/maskinporten/" || c.TollBaseURL != "http://127.0.0.1:9999/toll/api" {
		t.Errorf("sim endpoints: %q %q", c.Maskinporten.Issuer, c.TollBaseURL)
	}
	if c.Tenant.ClientID != config.SimClientID || c.Tenant.CertFile != filepath.Join(dir, config.SimCertFile) {
		t.Errorf("sim tenant: %+v", c.Tenant)
	}
}

func TestFlagsOverrideEnvironment(t *testing.T) {
	dir := t.TempDir()
	key := writeFile(t, dir, "key.pem")
	c, err := config.Load(newFlagSet(), []string{"--concurrency", "7", "--ack-wait=90s"}, env(map[string]string{
		"DIGITOLL_CLIENT_ID": "abc", "DIGITOLL_KEY_FILE": key, "DIGITOLL_KEY_ID": "k1", "DIGITOLL_CONCURRENCY": "3",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Worker.Concurrency != 7 || c.Worker.AckWait != 90*time.Second {
		t.Errorf("concurrency %d ack wait %s", c.Worker.Concurrency, c.Worker.AckWait)
	}
}

func TestLoadNamesTheBadSetting(t *testing.T) {
	dir := t.TempDir()
	key := writeFile(t, dir, "key.pem")
	cert := writeFile(t, dir, "cert.pem")
	base := map[string]string{"DIGITOLL_CLIENT_ID": "abc", "DIGITOLL_KEY_FILE": key, "DIGITOLL_KEY_ID": "k1"}
	tests := []struct {
		name    string
		set     map[string]string
		wantVar string
	}{
		{"unknown env", map[string]string{"DIGITOLL_ENV": "staging"}, "DIGITOLL_ENV"},
		{"missing client id", map[string]string{"DIGITOLL_CLIENT_ID": ""}, "DIGITOLL_CLIENT_ID"},
		{"missing key", map[string]string{"DIGITOLL_KEY_FILE": ""}, "DIGITOLL_KEY_FILE"},
		{"unreadable key", map[string]string{"DIGITOLL_KEY_FILE": filepath.Join(dir, "nope.pem")}, "DIGITOLL_KEY_FILE"},
		{"kid and cert both", map[string]string{"DIGITOLL_CERT_FILE": cert}, "DIGITOLL_KEY_ID"},
		{"neither kid nor cert", map[string]string{"DIGITOLL_KEY_ID": ""}, "DIGITOLL_KEY_ID"},
		{"bad concurrency", map[string]string{"DIGITOLL_CONCURRENCY": "many"}, "DIGITOLL_CONCURRENCY"},
		{"zero concurrency", map[string]string{"DIGITOLL_CONCURRENCY": "0"}, "DIGITOLL_CONCURRENCY"},
		{"bad duration", map[string]string{"DIGITOLL_ACK_WAIT": "soon"}, "DIGITOLL_ACK_WAIT"},
		{"tiny ack wait", map[string]string{"DIGITOLL_ACK_WAIT": "1s"}, "DIGITOLL_ACK_WAIT"},
		{"bad url", map[string]string{"DIGITOLL_TOLL_BASE_URL": "ftp://x"}, "DIGITOLL_TOLL_BASE_URL"},
		{"world-readable key", map[string]string{"DIGITOLL_KEY_FILE": writeFileMode(t, dir, "open.pem", 0o644)}, "DIGITOLL_KEY_FILE"},
		{"prod over http", map[string]string{"DIGITOLL_ENV": "prod", "DIGITOLL_TOLL_BASE_URL": "http://127.0.0.1:1/api"}, "DIGITOLL_TOLL_BASE_URL"},
		{"unknown kind", map[string]string{"DIGITOLL_KINDS": "road,sea"}, "DIGITOLL_KINDS"},
		{"bad log level", map[string]string{"DIGITOLL_LOG_LEVEL": "loud"}, "DIGITOLL_LOG_LEVEL"},
		{"bad port", map[string]string{"DIGITOLL_NATS_PORT": "70000"}, "DIGITOLL_NATS_PORT"},
		{"validation longer than deadline", map[string]string{"DIGITOLL_VALIDATION_TIMEOUT": "2h", "DIGITOLL_MESSAGE_DEADLINE": "1h"}, "DIGITOLL_VALIDATION_TIMEOUT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kv := map[string]string{}
			for k, v := range base {
				kv[k] = v
			}
			for k, v := range tt.set {
				kv[k] = v
			}
			_, err := config.Load(newFlagSet(), nil, env(kv))
			if !errors.Is(err, config.ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tt.wantVar) {
				t.Errorf("error %q does not name %s", err, tt.wantVar)
			}
		})
	}
}

func writeFileMode(t *testing.T, dir, name string, mode os.FileMode) string {
	t.Helper()
	p := writeFile(t, dir, name)
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

// A configuration with several mistakes is reported whole: one line per
// setting, each naming it, so that one round of fixes is enough.
func TestLoadReportsEveryBadSettingAtOnce(t *testing.T) {
	dir := t.TempDir()
	key := writeFile(t, dir, "key.pem")
	tests := []struct {
		name     string
		set      map[string]string
		wantVars []string
	}{
		{"values that do not parse", map[string]string{"DIGITOLL_CONCURRENCY": "many", "DIGITOLL_ACK_WAIT": "soon", "DIGITOLL_LOG_LEVEL": "loud"},
			[]string{"DIGITOLL_CONCURRENCY (--concurrency)", "DIGITOLL_ACK_WAIT (--ack-wait)", "DIGITOLL_LOG_LEVEL (--log-level)"}},
		{"values and missing settings", map[string]string{"DIGITOLL_CLIENT_ID": "", "DIGITOLL_KEY_FILE": "", "DIGITOLL_TOLL_RATE": "fast"},
			[]string{"DIGITOLL_CLIENT_ID: is required", "DIGITOLL_KEY_FILE: is required", "DIGITOLL_TOLL_RATE (--toll-rate)"}},
		// The default stands in for a kind list that does not parse: the
		// list is reported once, not again as naming no kind.
		{"a bad value is reported once", map[string]string{"DIGITOLL_KINDS": "sea", "DIGITOLL_ENV": "staging"},
			[]string{"DIGITOLL_KINDS (--kinds)", "DIGITOLL_ENV (--env)"}},
		{"settings that do not fit together", map[string]string{"DIGITOLL_ENV": "prod", "DIGITOLL_TOLL_BASE_URL": "http://toll/api",
			"DIGITOLL_VALIDATION_TIMEOUT": "2h", "DIGITOLL_MESSAGE_DEADLINE": "1h", "DIGITOLL_NATS_CERT_FILE": key},
			[]string{"DIGITOLL_TOLL_BASE_URL: prod needs https", "DIGITOLL_VALIDATION_TIMEOUT: 2h0m0s must be shorter", "DIGITOLL_NATS_KEY_FILE: DIGITOLL_NATS_CERT_FILE and DIGITOLL_NATS_KEY_FILE go together"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kv := map[string]string{"DIGITOLL_CLIENT_ID": "abc", "DIGITOLL_KEY_FILE": key, "DIGITOLL_KEY_ID": "k1"}
			for k, v := range tt.set {
				kv[k] = v
			}
			_, err := config.Load(newFlagSet(), nil, env(kv))
			if !errors.Is(err, config.ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tt.wantVars) {
				t.Errorf("%d lines, want %d:\n%s", len(lines), len(tt.wantVars), err)
			}
			for _, w := range tt.wantVars {
				n := 0
				for _, l := range lines {
					if strings.Contains(l, w) {
						n++
					}
				}
				if n != 1 {
					t.Errorf("%q is on %d lines, want 1:\n%s", w, n, err)
				}
			}
			if got := config.Problems(err); len(got) != len(lines) {
				t.Errorf("Problems gives %d, want %d", len(got), len(lines))
			}
		})
	}
}

// The issuer is the grant's audience, with its trailing slash; written
// without it, it means the same to every command.
func TestIssuerWithOrWithoutTrailingSlash(t *testing.T) {
	dir := t.TempDir()
	key := writeFile(t, dir, "key.pem")
	for _, issuer := range []string{"https://test.maskinporten.no", "https://test.maskinporten.no/"} {
		vars := env(map[string]string{"DIGITOLL_CLIENT_ID": "abc", "DIGITOLL_KEY_FILE": key, "DIGITOLL_KEY_ID": "k1",
			"DIGITOLL_MASKINPORTEN_ISSUER": issuer})
		c, err := config.Load(newFlagSet(), nil, vars)
		if err != nil {
			t.Fatalf("%s: %v", issuer, err)
		}
		p, err := config.Parse(newFlagSet(), nil, vars)
		if err != nil {
			t.Fatalf("%s: %v", issuer, err)
		}
		if c.Maskinporten.Issuer != "https://test.maskinporten.no/" || p.Maskinporten.Issuer != c.Maskinporten.Issuer {
			t.Errorf("%s: Load gives %q, Parse %q", issuer, c.Maskinporten.Issuer, p.Maskinporten.Issuer)
		}
	}
}

func TestPrivateFile(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		mode      os.FileMode
		wantGroup bool
		wantErr   string
	}{
		{0o600, false, ""},
		{0o400, false, ""},
		{0o640, true, ""},
		{0o644, false, "is readable by everyone (mode 0644): chmod 600"},
		{0o604, false, "is readable by everyone (mode 0604): chmod 600"},
	}
	for _, tt := range tests {
		p := writeFileMode(t, dir, fmt.Sprintf("secret-%o", tt.mode), tt.mode)
		mode, group, err := config.PrivateFile(p)
		if mode != tt.mode || group != tt.wantGroup {
			t.Errorf("%04o: mode %04o group %v, want group %v", tt.mode, mode, group, tt.wantGroup)
		}
		if (err == nil) != (tt.wantErr == "") || err != nil && !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%04o: err = %v, want %q", tt.mode, err, tt.wantErr)
		}
	}
	if _, _, err := config.PrivateFile(filepath.Join(dir, "nope")); err == nil || !strings.Contains(err.Error(), "cannot read") {
		t.Errorf("missing file: err = %v", err)
	}
}

func TestWarnings(t *testing.T) {
	dir := t.TempDir()
	key := writeFile(t, dir, "key.pem")
	groupKey := writeFileMode(t, dir, "group.pem", 0o640)
	tenants := writeFile(t, dir, "tenants.yaml")
	tests := []struct {
		name string
		vars map[string]string
		args []string
		want []string
	}{
		{"single tenant, private key", map[string]string{"DIGITOLL_CLIENT_ID": "abc", "DIGITOLL_KEY_FILE": key}, nil, nil},
		{"group-readable key", map[string]string{"DIGITOLL_CLIENT_ID": "abc", "DIGITOLL_KEY_FILE": groupKey}, nil,
			[]string{"DIGITOLL_KEY_FILE: " + groupKey + " is readable by its group (mode 0640): chmod 600"}},
		{"tenants file alone", map[string]string{"DIGITOLL_TENANTS_FILE": tenants}, nil, nil},
		{"tenants file and single-tenant settings", map[string]string{"DIGITOLL_TENANTS_FILE": tenants, "DIGITOLL_CLIENT_ID": "abc", "DIGITOLL_KINDS": "air"},
			[]string{"--foreign", "true"}, []string{"DIGITOLL_CLIENT_ID, DIGITOLL_FOREIGN, DIGITOLL_KINDS are ignored: DIGITOLL_TENANTS_FILE is set"}},
		{"tenants file and one key setting", map[string]string{"DIGITOLL_TENANTS_FILE": tenants, "DIGITOLL_KEY_FILE": groupKey}, nil,
			[]string{"DIGITOLL_KEY_FILE is ignored: DIGITOLL_TENANTS_FILE is set"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := tt.want
			c, err := config.Parse(newFlagSet(), tt.args, env(tt.vars))
			if err != nil {
				t.Fatal(err)
			}
			got := c.Warnings()
			if len(got) != len(want) {
				t.Fatalf("warnings %q, want %d", got, len(want))
			}
			for i, w := range want {
				if !strings.Contains(got[i], w) {
					t.Errorf("warning %q lacks %q", got[i], w)
				}
			}
		})
	}
}

func TestUnknownVariables(t *testing.T) {
	got := config.UnknownVariables([]string{
		"HOME=/root", "DIGITOLL_CONCURRENCY=4", "DIGITOLL_CONCURENCY=8", "DIGITOLL_NATS_URLS=nats://x",
		"DIGITOLL_SIM_LISTEN=:1", "DIGITOLL_WHATEVER=secret", "DIGITOLL_CONCURENCY=9",
	}, "DIGITOLL_SIM_LISTEN")
	want := []string{
		"DIGITOLL_CONCURENCY is not a setting of digitoll; it is ignored (did you mean DIGITOLL_CONCURRENCY?)",
		"DIGITOLL_NATS_URLS is not a setting of digitoll; it is ignored (did you mean DIGITOLL_NATS_URL?)",
		"DIGITOLL_WHATEVER is not a setting of digitoll; it is ignored",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, w := range got {
		if strings.Contains(w, "secret") {
			t.Errorf("a value is repeated: %s", w)
		}
	}
}

func TestUnknownFlagIsAnError(t *testing.T) {
	_, err := config.Load(newFlagSet(), []string{"--no-such-flag"}, env(nil))
	if err == nil || !strings.Contains(err.Error(), "no-such-flag") {
		t.Fatalf("err = %v", err)
	}
}

func TestEverySettingHasAFlagAndUsage(t *testing.T) {
	seen := map[string]bool{}
	for _, s := range config.Settings() {
		if !strings.HasPrefix(s.Env, "DIGITOLL_") || s.Flag == "" || s.Usage == "" {
			t.Errorf("incomplete setting %+v", s)
		}
		if seen[s.Flag] {
			t.Errorf("flag %s twice", s.Flag)
		}
		seen[s.Flag] = true
	}
}

func TestNATSSecuritySettings(t *testing.T) {
	dir := t.TempDir()
	key := writeFile(t, dir, "key.pem")
	file := writeFile(t, dir, "secret")
	base := map[string]string{"DIGITOLL_CLIENT_ID": "abc", "DIGITOLL_KEY_FILE": key, "DIGITOLL_KEY_ID": "k1"}
	tests := []struct {
		name    string
		set     map[string]string
		wantVar string // empty: valid
	}{
		{"user and password", map[string]string{"DIGITOLL_NATS_URL": "tls://nats:4222", "DIGITOLL_NATS_USER": "w", "DIGITOLL_NATS_PASSWORD_FILE": file}, ""},
		{"nkey and client certificate", map[string]string{"DIGITOLL_NATS_URL": "nats://nats:4222", "DIGITOLL_NATS_NKEY_FILE": file,
			"DIGITOLL_NATS_CA_FILE": file, "DIGITOLL_NATS_CERT_FILE": file, "DIGITOLL_NATS_KEY_FILE": file}, ""},
		{"embedded on all interfaces with an nkey", map[string]string{"DIGITOLL_NATS_HOST": "0.0.0.0", "DIGITOLL_NATS_NKEY_FILE": file}, ""},
		{"embedded with a server certificate", map[string]string{"DIGITOLL_NATS_SERVER_CERT_FILE": file, "DIGITOLL_NATS_SERVER_KEY_FILE": file}, ""},
		{"embedded on ::1 without auth", map[string]string{"DIGITOLL_NATS_HOST": "::1"}, ""},
		{"user without password", map[string]string{"DIGITOLL_NATS_URL": "nats://n", "DIGITOLL_NATS_USER": "w"}, "DIGITOLL_NATS_PASSWORD_FILE"},
		{"two ways to authenticate", map[string]string{"DIGITOLL_NATS_URL": "nats://n", "DIGITOLL_NATS_CREDS_FILE": file, "DIGITOLL_NATS_NKEY_FILE": file}, "DIGITOLL_NATS_CREDS_FILE"},
		{"certificate without key", map[string]string{"DIGITOLL_NATS_URL": "nats://n", "DIGITOLL_NATS_CERT_FILE": file}, "DIGITOLL_NATS_KEY_FILE"},
		{"missing CA file", map[string]string{"DIGITOLL_NATS_URL": "nats://n", "DIGITOLL_NATS_CA_FILE": filepath.Join(dir, "nope")}, "DIGITOLL_NATS_CA_FILE"},
		{"missing seed file", map[string]string{"DIGITOLL_NATS_URL": "nats://n", "DIGITOLL_NATS_NKEY_FILE": filepath.Join(dir, "nope")}, "DIGITOLL_NATS_NKEY_FILE"},
		{"embedded on all interfaces without auth", map[string]string{"DIGITOLL_NATS_HOST": "0.0.0.0"}, "DIGITOLL_NATS_HOST"},
		{"creds file with the embedded server", map[string]string{"DIGITOLL_NATS_CREDS_FILE": file}, "DIGITOLL_NATS_CREDS_FILE"},
		{"server certificate with a remote server", map[string]string{"DIGITOLL_NATS_URL": "nats://n", "DIGITOLL_NATS_SERVER_CERT_FILE": file, "DIGITOLL_NATS_SERVER_KEY_FILE": file}, "DIGITOLL_NATS_SERVER_CERT_FILE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kv := map[string]string{}
			for k, v := range base {
				kv[k] = v
			}
			for k, v := range tt.set {
				kv[k] = v
			}
			_, err := config.Load(newFlagSet(), nil, env(kv))
			if tt.wantVar == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), tt.wantVar) {
				t.Fatalf("err = %v, want ErrInvalid naming %s", err, tt.wantVar)
			}
		})
	}
}

func TestLimitSettings(t *testing.T) {
	dir := t.TempDir()
	key := writeFile(t, dir, "key.pem")
	base := map[string]string{"DIGITOLL_CLIENT_ID": "abc", "DIGITOLL_KEY_FILE": key, "DIGITOLL_KEY_ID": "k1"}
	load := func(set map[string]string) (*config.Config, error) {
		kv := map[string]string{}
		for k, v := range base {
			kv[k] = v
		}
		for k, v := range set {
			kv[k] = v
		}
		return config.Load(newFlagSet(), nil, env(kv))
	}
	c, err := load(nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Limits.TollRate != 100 || c.Limits.TollBurst != 25 || len(c.Limits.KindConcurrency) != 1 || c.Limits.KindConcurrency["document"] != 8 {
		t.Errorf("defaults: %+v", c.Limits)
	}
	if !c.Maskinporten.Discovery {
		t.Error("discovery is off by default")
	}
	c, err = load(map[string]string{"DIGITOLL_KIND_CONCURRENCY": " road=32, air = 16", "DIGITOLL_TOLL_RATE": "2.5", "DIGITOLL_TOLL_BURST": "3"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Limits.KindConcurrency["road"] != 32 || c.Limits.KindConcurrency["air"] != 16 || len(c.Limits.KindConcurrency) != 2 ||
		c.Limits.TollRate != 2.5 || c.Limits.TollBurst != 3 {
		t.Errorf("limits: %+v", c.Limits)
	}
	c, err = load(map[string]string{"DIGITOLL_KIND_CONCURRENCY": "none", "DIGITOLL_TOLL_RATE": "0"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Limits.KindConcurrency != nil || c.Limits.TollRate != 0 {
		t.Errorf("none and no rate: %+v", c.Limits)
	}
	for _, bad := range []map[string]string{
		{"DIGITOLL_KIND_CONCURRENCY": "road"},
		{"DIGITOLL_KIND_CONCURRENCY": "sea=3"},
		{"DIGITOLL_KIND_CONCURRENCY": "road=0"},
		{"DIGITOLL_KIND_CONCURRENCY": "road=2,road=3"},
		{"DIGITOLL_TOLL_RATE": "-1"},
		{"DIGITOLL_TOLL_RATE": "fast"},
		{"DIGITOLL_TOLL_BURST": "0"},
	} {
		if _, err := load(bad); !errors.Is(err, config.ErrInvalid) {
			t.Errorf("%v: err = %v, want ErrInvalid", bad, err)
		}
	}
}

// Every setting's Value reads back what its variable set: feeding the
// values of one configuration to Load again gives the same values.
func TestValuesRoundTrip(t *testing.T) {
	dir := t.TempDir()
	key := writeFile(t, dir, "key.pem")
	c, err := config.Load(newFlagSet(), nil, env(map[string]string{
		"DIGITOLL_CLIENT_ID": "abc", "DIGITOLL_KEY_FILE": key, "DIGITOLL_KEY_ID": "k1", "DIGITOLL_KINDS": "road,air",
		"DIGITOLL_KIND_CONCURRENCY": "road=3,air=2", "DIGITOLL_HTTP_ADDR": "off", "DIGITOLL_LOG_LEVEL": "warn",
		"DIGITOLL_TOLL_RATE": "0.5", "DIGITOLL_NATS_URL": "nats://a:4222,nats://b:4222",
	}))
	if err != nil {
		t.Fatal(err)
	}
	kv := map[string]string{}
	for _, s := range config.Settings() {
		kv[s.Env] = s.Value(c)
	}
	again, err := config.Load(newFlagSet(), nil, env(kv))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range config.Settings() {
		if a, b := s.Value(c), s.Value(again); a != b {
			t.Errorf("%s: %q, then %q", s.Env, a, b)
		}
	}
	if kv["DIGITOLL_KIND_CONCURRENCY"] != "air=2,road=3" || kv["DIGITOLL_LOG_LEVEL"] != "warn" || kv["DIGITOLL_HTTP_ADDR"] != "off" {
		t.Errorf("values: %v", kv)
	}
}

func TestValueMasksURLPasswords(t *testing.T) {
	dir := t.TempDir()
	key := writeFile(t, dir, "key.pem")
	c, err := config.Load(newFlagSet(), nil, env(map[string]string{
		"DIGITOLL_CLIENT_ID": "abc", "DIGITOLL_KEY_FILE": key, "DIGITOLL_KEY_ID": "k1",
		"DIGITOLL_NATS_URL": "nats://worker:s3cret@a:4222,nats://tok3n@b:4222,nats://c:4222",
	}))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range config.Settings() {
		if s.Env != "DIGITOLL_NATS_URL" {
			continue
		}
		got := s.Value(c)
		if strings.Contains(got, "s3cret") || strings.Contains(got, "tok3n") || got != "nats://worker:***@a:4222,nats://***@b:4222,nats://c:4222" {
			t.Errorf("Value = %q", got)
		}
	}
}

func TestIsLoopback(t *testing.T) {
	for host, want := range map[string]bool{"": true, "127.0.0.1": true, "127.1.2.3": true, "::1": true, "localhost": true,
		"0.0.0.0": false, "::": false, "10.0.0.5": false, "nats.example.com": false} {
		if got := config.IsLoopback(host); got != want {
			t.Errorf("IsLoopback(%q) = %v", host, got)
		}
	}
}

func TestParseNATSForClientCommands(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, dir, "secret")
	n, err := config.ParseNATS(env(map[string]string{
		"DIGITOLL_NATS_URL": "tls://nats:4222", "DIGITOLL_NATS_USER": "w", "DIGITOLL_NATS_PASSWORD_FILE": file, "DIGITOLL_NATS_CA_FILE": file,
		// Not a client setting: ignored.
		"DIGITOLL_NATS_HOST": "0.0.0.0",
	}), env(map[string]string{"NATS_URL": "nats://elsewhere:4222"}))
	if err != nil {
		t.Fatal(err)
	}
	if n.URL != "tls://nats:4222" || n.User != "w" || n.PasswordFile != file || n.CAFile != file || n.EmbeddedHost != "" {
		t.Errorf("%+v", n)
	}
	for name, kv := range map[string]map[string]string{
		"embedded":           {"DIGITOLL_NATS_URL": "embedded"},
		"user, no password":  {"DIGITOLL_NATS_URL": "nats://n", "DIGITOLL_NATS_USER": "w"},
		"unreadable CA file": {"DIGITOLL_NATS_URL": "nats://n", "DIGITOLL_NATS_CA_FILE": filepath.Join(dir, "nope")},
	} {
		if _, err := config.ParseNATS(env(kv), env(nil)); !errors.Is(err, config.ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", name, err)
		}
	}
	var flags []string
	for _, s := range config.NATSClientSettings() {
		flags = append(flags, s.Flag)
	}
	if got := strings.Join(flags, " "); got != "nats-url nats-creds-file nats-nkey-file nats-user nats-password-file nats-ca-file nats-cert-file nats-key-file" {
		t.Errorf("client settings: %s", got)
	}
}
