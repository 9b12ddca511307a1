package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/digitoll/digitoll-worker/config"
)

// writeNATSContext writes a nats CLI context named name under
// <configDir>/nats and, with selected, selects it as the CLI does.
func writeNATSContext(t *testing.T, configDir, name, body string, selected bool) string {
	t.Helper()
	dir := filepath.Join(configDir, "nats", "context")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name+".json")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	if selected {
		if err := os.WriteFile(filepath.Join(configDir, "nats", "context.txt"), []byte(name+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

func TestNATSFromTheEcosystem(t *testing.T) {
	home := t.TempDir()
	xdg := t.TempDir()
	key := writeFile(t, home, "key.pem")
	creds := writeFile(t, home, "ops.creds")
	ca := writeFile(t, home, "ca.pem")
	// The CLI's selected context lives under ~/.config without XDG_CONFIG_HOME.
	devPath := writeNATSContext(t, filepath.Join(home, ".config"), "dev",
		`{"description":"dev","url":"nats://dev:4222","creds":"~/ops.creds","ca":"`+ca+`","jetstream_domain":""}`, true)
	writeNATSContext(t, xdg, "staging", `{"url":"tls://staging:4222","user":"worker","password":"s3cret"}`, false)
	writeNATSContext(t, xdg, "tokened", `{"url":"nats://t:4222","token":"tok"}`, false)
	writeNATSContext(t, xdg, "nourl", `{"nkey":"`+key+`"}`, false)
	writeNATSContext(t, xdg, "broken", `{"url":`, false)

	base := map[string]string{"DIGITOLL_CLIENT_ID": "abc", "DIGITOLL_KEY_FILE": key, "DIGITOLL_KEY_ID": "k1"}
	tests := []struct {
		name     string
		vars     map[string]string
		wantURL  string
		wantFrom string // the Source, and BorrowedFrom unless the setting was given
		check    func(t *testing.T, n config.NATS)
		wantErr  string
	}{
		{"nothing: the embedded server", map[string]string{}, "", "", nil, ""},
		{"the setting wins", map[string]string{"DIGITOLL_NATS_URL": "nats://mine:4222", "NATS_URL": "nats://theirs:4222", "HOME": home},
			"nats://mine:4222", "DIGITOLL_NATS_URL", func(t *testing.T, n config.NATS) {
				if n.CredsFile != "" {
					t.Error("the context's credentials were taken with DIGITOLL_NATS_URL set")
				}
			}, ""},
		{"embedded wins over NATS_URL", map[string]string{"DIGITOLL_NATS_URL": "embedded", "NATS_URL": "nats://theirs:4222"}, "", "", nil, ""},
		{"NATS_URL before a context", map[string]string{"NATS_URL": "nats://theirs:4222", "HOME": home}, "nats://theirs:4222", "NATS_URL",
			func(t *testing.T, n config.NATS) {
				if n.CredsFile != "" {
					t.Error("the context's credentials were taken with NATS_URL")
				}
			}, ""},
		{"the nats CLI's selected context", map[string]string{"HOME": home}, "nats://dev:4222", `nats context "dev" (` + devPath + ")",
			func(t *testing.T, n config.NATS) {
				if n.CredsFile != creds || n.CAFile != ca {
					t.Errorf("creds %q ca %q, want the context's, ~ expanded", n.CredsFile, n.CAFile)
				}
			}, ""},
		{"NATS_CONTEXT over the selected one", map[string]string{"HOME": home, "XDG_CONFIG_HOME": xdg, "NATS_CONTEXT": "staging"},
			"tls://staging:4222", `nats context "staging"`, func(t *testing.T, n config.NATS) {
				if n.User != "worker" || n.Password != "s3cret" {
					t.Errorf("user %q password set %v", n.User, n.Password != "")
				}
			}, ""},
		{"a context's token", map[string]string{"XDG_CONFIG_HOME": xdg, "NATS_CONTEXT": "tokened"}, "nats://t:4222", `nats context "tokened"`,
			func(t *testing.T, n config.NATS) {
				if n.Token != "tok" || n.User != "" {
					t.Errorf("token %v user %q", n.Token != "", n.User)
				}
			}, ""},
		{"a setting's credentials win over the context's", map[string]string{"HOME": home, "DIGITOLL_NATS_NKEY_FILE": key},
			"nats://dev:4222", `nats context "dev"`, func(t *testing.T, n config.NATS) {
				if n.CredsFile != "" || n.NKeyFile != key || n.CAFile != ca {
					t.Errorf("creds %q nkey %q ca %q", n.CredsFile, n.NKeyFile, n.CAFile)
				}
			}, ""},
		{"a context without servers", map[string]string{"XDG_CONFIG_HOME": xdg, "NATS_CONTEXT": "nourl"}, config.DefaultNATSURL, `nats context "nourl"`, nil, ""},
		{"a context file by path", map[string]string{"NATS_CONTEXT": filepath.Join(xdg, "nats", "context", "tokened.json")}, "nats://t:4222", `nats context "tokened"`, nil, ""},
		{"an unknown context", map[string]string{"XDG_CONFIG_HOME": xdg, "NATS_CONTEXT": "nope"}, "", "", nil, "NATS_CONTEXT: nats context \"nope\""},
		{"a broken context", map[string]string{"XDG_CONFIG_HOME": xdg, "NATS_CONTEXT": "broken"}, "", "", nil, "NATS_CONTEXT: nats context " + filepath.Join(xdg, "nats", "context", "broken.json")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kv := map[string]string{}
			for k, v := range base {
				kv[k] = v
			}
			for k, v := range tt.vars {
				kv[k] = v
			}
			c, err := config.Load(newFlagSet(), nil, env(kv))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.NATS.URL != tt.wantURL || !strings.HasPrefix(c.NATS.Source, tt.wantFrom) {
				t.Errorf("URL %q from %q, want %q from %q", c.NATS.URL, c.NATS.Source, tt.wantURL, tt.wantFrom)
			}
			borrowed := c.BorrowedFrom("DIGITOLL_NATS_URL")
			if given := kv["DIGITOLL_NATS_URL"] != ""; given && borrowed != "" || !given && borrowed != c.NATS.Source {
				t.Errorf("BorrowedFrom %q, source %q", borrowed, c.NATS.Source)
			}
			if tt.check != nil {
				tt.check(t, c.NATS)
			}
		})
	}
}

// The client commands find the server as the worker does, and else at
// the default URL.
func TestParseNATSFromTheEcosystem(t *testing.T) {
	xdg := t.TempDir()
	writeNATSContext(t, xdg, "dev", `{"url":"nats://dev:4222"}`, true)
	none := func(string) string { return "" }
	for _, tt := range []struct {
		name     string
		value    map[string]string
		getenv   map[string]string
		wantURL  string
		wantFrom string
	}{
		{"default", nil, nil, config.DefaultNATSURL, ""},
		{"setting", map[string]string{"DIGITOLL_NATS_URL": "nats://mine:4222"}, map[string]string{"NATS_URL": "nats://x:1"}, "nats://mine:4222", "DIGITOLL_NATS_URL"},
		{"NATS_URL", nil, map[string]string{"NATS_URL": "nats://x:1", "XDG_CONFIG_HOME": xdg}, "nats://x:1", "NATS_URL"},
		{"context", nil, map[string]string{"XDG_CONFIG_HOME": xdg}, "nats://dev:4222", `nats context "dev"`},
	} {
		value := none
		if tt.value != nil {
			value = env(tt.value)
		}
		n, err := config.ParseNATS(value, env(tt.getenv))
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if n.URL != tt.wantURL || !strings.HasPrefix(n.Source, tt.wantFrom) {
			t.Errorf("%s: %q from %q, want %q from %q", tt.name, n.URL, n.Source, tt.wantURL, tt.wantFrom)
		}
	}
}

func TestTracingFromTheEcosystem(t *testing.T) {
	dir := t.TempDir()
	key := writeFile(t, dir, "key.pem")
	tests := []struct {
		name     string
		vars     map[string]string
		want     config.Tracing
		wantFrom string
		wantErr  string
	}{
		{"off", nil, config.Tracing{}, "", ""},
		{"the setting", map[string]string{"DIGITOLL_OTLP_ENDPOINT": "http://mine:4318", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://theirs:4318"},
			config.Tracing{OTLPEndpoint: "http://mine:4318"}, "", ""},
		{"the standard endpoint", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_SERVICE_NAME": "customs-edge"},
			config.Tracing{OTLPEndpoint: "http://collector:4318", ServiceName: "customs-edge"}, "OTEL_EXPORTER_OTLP_ENDPOINT", ""},
		{"the traces endpoint first", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://ingest/spans"},
			config.Tracing{OTLPEndpoint: "https://ingest/spans", EndpointIsTracesURL: true}, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", ""},
		{"the service name with the setting", map[string]string{"DIGITOLL_OTLP_ENDPOINT": "http://mine:4318", "OTEL_SERVICE_NAME": "edge"},
			config.Tracing{OTLPEndpoint: "http://mine:4318", ServiceName: "edge"}, "", ""},
		{"http/protobuf", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"},
			config.Tracing{OTLPEndpoint: "http://collector:4318"}, "OTEL_EXPORTER_OTLP_ENDPOINT", ""},
		{"grpc is refused", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
			config.Tracing{}, "", "OTEL_EXPORTER_OTLP_PROTOCOL: \"grpc\""},
		{"not a URL", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"},
			config.Tracing{}, "", "OTEL_EXPORTER_OTLP_ENDPOINT: \"collector:4318\" is not an http(s) URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kv := map[string]string{"DIGITOLL_CLIENT_ID": "abc", "DIGITOLL_KEY_FILE": key, "DIGITOLL_KEY_ID": "k1"}
			for k, v := range tt.vars {
				kv[k] = v
			}
			c, err := config.Load(newFlagSet(), nil, env(kv))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Tracing != tt.want || c.BorrowedFrom("DIGITOLL_OTLP_ENDPOINT") != tt.wantFrom {
				t.Errorf("tracing %+v from %q, want %+v from %q", c.Tracing, c.BorrowedFrom("DIGITOLL_OTLP_ENDPOINT"), tt.want, tt.wantFrom)
			}
		})
	}
}
