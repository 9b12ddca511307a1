package config_test

import (
	"errors"
	"flag"
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
		{"issuer without slash", map[string]string{"DIGITOLL_MASKINPORTEN_ISSUER": "https://test.maskinporten.no"}, "DIGITOLL_MASKINPORTEN_ISSUER"},
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
