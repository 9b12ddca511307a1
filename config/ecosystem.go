package config

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// The conventions of the NATS and OpenTelemetry ecosystems that digitoll
// honours for the settings left unset, so that a machine set up for the
// nats CLI or for an OpenTelemetry Collector needs nothing more. A
// DIGITOLL_* setting always wins over its convention.
//
// NATS, for the worker (`digitoll run`) and the client commands alike:
//
//  1. DIGITOLL_NATS_URL (or --nats-url), with the DIGITOLL_NATS_* credentials;
//  2. NATS_URL, with the DIGITOLL_NATS_* credentials;
//  3. the nats context named by NATS_CONTEXT, or else the one the nats CLI
//     has selected ($XDG_CONFIG_HOME/nats/context.txt, ~/.config without
//     XDG_CONFIG_HOME): its url, and its credentials (creds, nkey,
//     user/password, token) and TLS files (cert, key, ca) where no
//     DIGITOLL_NATS_* setting gives them;
//  4. the worker starts its embedded server; the client commands connect
//     to nats://127.0.0.1:4222.
//
// DIGITOLL_NATS_URL=embedded makes the worker start its embedded server
// whatever NATS_URL or a context says.
//
// Traces: DIGITOLL_OTLP_ENDPOINT, else OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
// (the traces URL, as it is), else OTEL_EXPORTER_OTLP_ENDPOINT (a base URL,
// /v1/traces added); OTEL_SERVICE_NAME names the service.

// EmbeddedNATS is the value of DIGITOLL_NATS_URL that asks for the
// embedded server even when NATS_URL or a nats context names another.
const EmbeddedNATS = "embedded"

// DefaultNATSURL is where the client commands look for the worker's server
// when nothing names it.
const DefaultNATSURL = "nats://127.0.0.1:4222"

// applyEcosystem fills the settings left unset from the ecosystem's
// conventions (see above) and records where each came from.
func (c *Config) applyEcosystem(getenv func(string) string) []error {
	var errs []error
	c.borrowed = map[string]string{}
	if c.NATS.URL == "" && !c.given["DIGITOLL_NATS_URL"] {
		given := func(env string) bool { return c.given[env] }
		if err := c.NATS.fromEcosystem(getenv, given); err != nil {
			errs = append(errs, err)
		}
		if c.NATS.Source != "" {
			c.borrowed["DIGITOLL_NATS_URL"] = c.NATS.Source
		}
	} else if c.NATS.URL != "" {
		c.NATS.Source = "DIGITOLL_NATS_URL"
	}
	if !c.given["DIGITOLL_OTLP_ENDPOINT"] {
		for _, env := range []string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"} {
			v := strings.TrimSpace(getenv(env))
			if v == "" {
				continue
			}
			if !isHTTPURL(v) {
				errs = append(errs, &SettingError{Env: env, Problem: fmt.Sprintf("%q is not an http(s) URL (digitoll exports traces over OTLP/HTTP)", v)})
				break
			}
			c.Tracing.OTLPEndpoint = v
			c.Tracing.EndpointIsTracesURL = env == "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
			c.borrowed["DIGITOLL_OTLP_ENDPOINT"] = env
			for _, p := range []string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"} {
				if proto := strings.TrimSpace(getenv(p)); proto != "" {
					if proto != "http/protobuf" {
						errs = append(errs, &SettingError{Env: p, Problem: fmt.Sprintf("%q: digitoll exports traces over OTLP/HTTP (http/protobuf) only; point %s at the receiver's HTTP port (4318) and unset %s", proto, env, p)})
					}
					break
				}
			}
			break
		}
	}
	c.Tracing.ServiceName = strings.TrimSpace(getenv("OTEL_SERVICE_NAME"))
	return errs
}

func isHTTPURL(v string) bool {
	u, err := url.Parse(v)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// fromEcosystem sets n's URL from NATS_URL or, failing that, n's URL and
// credentials from the selected nats context; given tells which
// DIGITOLL_NATS_* settings were set, and are kept. It leaves n alone when
// neither is there.
func (n *NATS) fromEcosystem(getenv func(string) string, given func(env string) bool) error {
	if u := strings.TrimSpace(getenv("NATS_URL")); u != "" {
		n.URL, n.Source = u, "NATS_URL"
		return nil
	}
	ctx, path, err := selectedNATSContext(getenv)
	if err != nil || ctx == nil {
		return err
	}
	n.URL = ctx.URL
	if n.URL == "" {
		// The nats CLI's default for a context without servers.
		n.URL = DefaultNATSURL
	}
	n.Source = fmt.Sprintf("nats context %q (%s)", strings.TrimSuffix(filepath.Base(path), ".json"), path)
	home := getenv("HOME")
	if !given("DIGITOLL_NATS_CREDS_FILE") && !given("DIGITOLL_NATS_NKEY_FILE") && !given("DIGITOLL_NATS_USER") {
		n.CredsFile = expandHome(ctx.Creds, home)
		n.NKeyFile = expandHome(ctx.NKey, home)
		switch {
		case ctx.User != "" && ctx.Password != "":
			n.User, n.Password = ctx.User, ctx.Password
		case ctx.User != "":
			// The nats CLI's --user alone is a token.
			n.Token = ctx.User
		}
		if ctx.Token != "" {
			n.Token = ctx.Token
		}
	}
	if !given("DIGITOLL_NATS_CA_FILE") && !given("DIGITOLL_NATS_CERT_FILE") && !given("DIGITOLL_NATS_KEY_FILE") {
		n.CAFile = expandHome(ctx.CA, home)
		n.CertFile = expandHome(ctx.Cert, home)
		n.KeyFile = expandHome(ctx.Key, home)
	}
	return nil
}

// natsContext is the part of a nats CLI context file
// (<config>/nats/context/<name>.json) that says where the server is and
// how to authenticate; its other fields are not used.
type natsContext struct {
	URL      string `json:"url"`
	Creds    string `json:"creds"`
	NKey     string `json:"nkey"`
	User     string `json:"user"`
	Password string `json:"password"`
	Token    string `json:"token"`
	Cert     string `json:"cert"`
	Key      string `json:"key"`
	CA       string `json:"ca"`
}

// selectedNATSContext reads the context named by NATS_CONTEXT or, without
// it, the one the nats CLI selected; nil when none is. NATS_CONTEXT may
// also be the path of a context file. A context that is named but cannot
// be read is an error: the operator meant it.
func selectedNATSContext(getenv func(string) string) (*natsContext, string, error) {
	dir := strings.TrimSpace(getenv("XDG_CONFIG_HOME"))
	if dir == "" {
		if home := strings.TrimSpace(getenv("HOME")); home != "" {
			dir = filepath.Join(home, ".config")
		}
	}
	if dir != "" {
		dir = filepath.Join(dir, "nats")
	}
	env := "NATS_CONTEXT"
	name := strings.TrimSpace(getenv("NATS_CONTEXT"))
	if name == "" {
		if dir == "" {
			return nil, "", nil
		}
		b, err := os.ReadFile(filepath.Join(dir, "context.txt"))
		if err != nil {
			return nil, "", nil
		}
		name = strings.TrimSpace(string(b))
		env = "DIGITOLL_NATS_URL"
		if name == "" {
			return nil, "", nil
		}
	}
	path := name
	if !strings.HasSuffix(name, ".json") {
		if strings.Contains(name, "..") || strings.ContainsRune(name, os.PathSeparator) {
			return nil, "", &SettingError{Env: env, Problem: fmt.Sprintf("%q is not a nats context name", name)}
		}
		if dir == "" {
			return nil, "", &SettingError{Env: env, Problem: fmt.Sprintf("nats context %q: neither XDG_CONFIG_HOME nor HOME is set to find it under", name)}
		}
		path = filepath.Join(dir, "context", name+".json")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, "", &SettingError{Env: env, Problem: fmt.Sprintf("nats context %q: %v (select another with `nats context select`, or set DIGITOLL_NATS_URL)", name, err)}
	}
	var ctx natsContext
	if err := json.Unmarshal(b, &ctx); err != nil {
		return nil, "", &SettingError{Env: env, Problem: fmt.Sprintf("nats context %s: %v", path, err)}
	}
	return &ctx, path, nil
}

// expandHome replaces a leading ~ with home, as the nats CLI does for the
// paths in a context.
func expandHome(path, home string) string {
	if home == "" || (path != "~" && !strings.HasPrefix(path, "~/")) {
		return path
	}
	return filepath.Join(home, strings.TrimPrefix(path, "~"))
}
