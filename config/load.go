package config

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/digitoll/digitoll-worker/contract"
)

// ErrInvalid is wrapped by every validation error Load returns.
var ErrInvalid = errors.New("invalid configuration")

// ErrArgument is returned by Load for a positional argument: the worker's
// settings are all flags or variables.
var ErrArgument = errors.New("unexpected argument")

// Setting describes one configuration setting: its environment variable,
// its flag, its default and what it means. The README's configuration
// table and every --help text come from the same list.
type Setting struct {
	Env     string
	Flag    string
	Default string
	Usage   string
	set     func(c *Config, v string) error
}

// Settings lists every setting of the worker, in the order they are
// documented.
func Settings() []Setting {
	return []Setting{
		{Env: "DIGITOLL_ENV", Flag: "env", Default: "test",
			Usage: "environment: test, prod or sim (the bundled simulator); picks the Maskinporten and Toll URLs",
			set: func(c *Config, v string) error {
				switch Env(v) {
				case EnvProd, EnvTest, EnvSim:
					c.Env = Env(v)
					return nil
				}
				return fmt.Errorf("%q is not test, prod or sim", v)
			}},
		{Env: "DIGITOLL_MASKINPORTEN_ISSUER", Flag: "maskinporten-issuer", Usage: "Maskinporten issuer, the grant audience (default from DIGITOLL_ENV)",
			set: setURL(func(c *Config) *string { return &c.Maskinporten.Issuer })},
		{Env: "DIGITOLL_MASKINPORTEN_TOKEN_URL", Flag: "maskinporten-token-url", Usage: "Maskinporten token endpoint (default from DIGITOLL_ENV)",
			set: setURL(func(c *Config) *string { return &c.Maskinporten.TokenURL })},
		{Env: "DIGITOLL_TOLL_BASE_URL", Flag: "toll-base-url", Usage: "Toll API root (default from DIGITOLL_ENV)",
			set: setURL(func(c *Config) *string { return &c.TollBaseURL })},
		{Env: "DIGITOLL_SIM_URL", Flag: "sim-url", Default: "http://127.0.0.1:8090",
			Usage: "root of the simulator when DIGITOLL_ENV=sim",
			set:   func(c *Config, v string) error { return nil }},
		{Env: "DIGITOLL_SIM_DIR", Flag: "sim-dir", Default: ".digitoll/sim",
			Usage: "where `digitoll sim` writes its demo key; with DIGITOLL_ENV=sim the key settings default to it",
			set:   func(c *Config, v string) error { return nil }},
		{Env: "DIGITOLL_CLIENT_ID", Flag: "client-id", Usage: "Maskinporten integration id (client id) of the tenant",
			set: setString(func(c *Config) *string { return &c.Tenant.ClientID })},
		{Env: "DIGITOLL_KEY_FILE", Flag: "key-file", Usage: "PEM private key file (PKCS#1 or PKCS#8)",
			set: setString(func(c *Config) *string { return &c.Tenant.KeyFile })},
		{Env: "DIGITOLL_KEY_ID", Flag: "key-id", Usage: "kid of the key registered on the integration (kid mode)",
			set: setString(func(c *Config) *string { return &c.Tenant.KeyID })},
		{Env: "DIGITOLL_CERT_FILE", Flag: "cert-file", Usage: "PEM business certificate chain, leaf first (x5c mode)",
			set: setString(func(c *Config) *string { return &c.Tenant.CertFile })},
		{Env: "DIGITOLL_P12_FILE", Flag: "p12-file", Usage: "PKCS#12 business certificate with key (x5c mode)",
			set: setString(func(c *Config) *string { return &c.Tenant.P12File })},
		{Env: "DIGITOLL_P12_PASSWORD_FILE", Flag: "p12-password-file", Usage: "file holding the PKCS#12 password",
			set: setString(func(c *Config) *string { return &c.Tenant.P12PasswordFile })},
		{Env: "DIGITOLL_FOREIGN", Flag: "foreign", Default: "false", Usage: "foreign business: use the toll:eu/ scopes",
			set: setBool(func(c *Config) *bool { return &c.Tenant.Foreign })},
		{Env: "DIGITOLL_KINDS", Flag: "kinds", Default: "road", Usage: "comma-separated kinds to process: road, air, entry, document",
			set: func(c *Config, v string) error {
				c.Tenant.Kinds = nil
				for _, s := range strings.Split(v, ",") {
					k, err := contract.ParseKind(strings.TrimSpace(s))
					if err != nil {
						return err
					}
					c.Tenant.Kinds = append(c.Tenant.Kinds, k)
				}
				return nil
			}},
		{Env: "DIGITOLL_NATS_URL", Flag: "nats-url", Usage: "NATS server URL(s); empty starts an embedded server",
			set: setString(func(c *Config) *string { return &c.NATS.URL })},
		{Env: "DIGITOLL_NATS_CREDS_FILE", Flag: "nats-creds-file", Usage: "NATS credentials file",
			set: setString(func(c *Config) *string { return &c.NATS.CredsFile })},
		{Env: "DIGITOLL_NATS_DIR", Flag: "nats-dir", Default: ".digitoll/nats", Usage: "JetStream store of the embedded server",
			set: setString(func(c *Config) *string { return &c.NATS.EmbeddedDir })},
		{Env: "DIGITOLL_NATS_HOST", Flag: "nats-host", Default: "127.0.0.1", Usage: "listen address of the embedded server",
			set: setString(func(c *Config) *string { return &c.NATS.EmbeddedHost })},
		{Env: "DIGITOLL_NATS_PORT", Flag: "nats-port", Default: "4222", Usage: "listen port of the embedded server (-1: any free port)",
			set: func(c *Config, v string) error {
				n, err := strconv.Atoi(v)
				if err != nil || n < -1 || n > 65535 {
					return fmt.Errorf("%q is not a port (0-65535, or -1 for any)", v)
				}
				c.NATS.EmbeddedPort = n
				return nil
			}},
		{Env: "DIGITOLL_NATS_SYNC_ALWAYS", Flag: "nats-sync-always", Default: "false", Usage: "embedded server fsyncs every write (slower, survives power loss)",
			set: setBool(func(c *Config) *bool { return &c.NATS.SyncAlways })},
		{Env: "DIGITOLL_STREAM_REPLICAS", Flag: "stream-replicas", Default: "1", Usage: "replicas of the streams the worker creates (3 on a cluster)",
			set: setInt(func(c *Config) *int { return &c.NATS.Replicas }, 1, 5)},
		{Env: "DIGITOLL_CONCURRENCY", Flag: "concurrency", Default: "64", Usage: "messages processed at once",
			set: setInt(func(c *Config) *int { return &c.Worker.Concurrency }, 1, 10000)},
		{Env: "DIGITOLL_ACK_WAIT", Flag: "ack-wait", Default: "60s", Usage: "JetStream ack wait; in-progress acks are sent at a third of it",
			set: setDuration(func(c *Config) *time.Duration { return &c.Worker.AckWait }, 3*time.Second)},
		{Env: "DIGITOLL_MESSAGE_DEADLINE", Flag: "message-deadline", Default: "24h", Usage: "how long a message is retried before it is dead-lettered",
			set: setDuration(func(c *Config) *time.Duration { return &c.Worker.MessageDeadline }, time.Second)},
		{Env: "DIGITOLL_VALIDATION_TIMEOUT", Flag: "validation-timeout", Default: "10m", Usage: "longest wait for Toll's validation result in one delivery",
			set: setDuration(func(c *Config) *time.Duration { return &c.Worker.ValidationTimeout }, time.Second)},
		{Env: "DIGITOLL_HTTP_TIMEOUT", Flag: "http-timeout", Default: "30s", Usage: "timeout of one HTTP call to Toll or Maskinporten",
			set: setDuration(func(c *Config) *time.Duration { return &c.Worker.HTTPTimeout }, 100*time.Millisecond)},
		{Env: "DIGITOLL_SHUTDOWN_GRACE", Flag: "shutdown-grace", Default: "30s", Usage: "how long in-flight messages may finish on SIGTERM",
			set: setDuration(func(c *Config) *time.Duration { return &c.Worker.ShutdownGrace }, 0)},
		{Env: "DIGITOLL_ROUTING", Flag: "routing", Default: "auto", Usage: "poll Toll's routing feed: auto (when entry is enabled), on or off",
			set: func(c *Config, v string) error {
				if v != "auto" && v != "on" && v != "off" {
					return fmt.Errorf("%q is not auto, on or off", v)
				}
				c.Routing.Mode = v
				return nil
			}},
		{Env: "DIGITOLL_ROUTING_INTERVAL", Flag: "routing-interval", Default: "30s", Usage: "pause between polls of a caught-up routing feed",
			set: setDuration(func(c *Config) *time.Duration { return &c.Routing.Interval }, 100*time.Millisecond)},
		{Env: "DIGITOLL_HTTP_ADDR", Flag: "http-addr", Default: "127.0.0.1:8081", Usage: "address of /healthz and /readyz (host:port), or off",
			set: func(c *Config, v string) error {
				if v == "off" {
					c.HTTPAddr = ""
					return nil
				}
				if _, _, err := net.SplitHostPort(v); err != nil {
					return fmt.Errorf("%q is not host:port or off", v)
				}
				c.HTTPAddr = v
				return nil
			}},
		{Env: "DIGITOLL_LOG_LEVEL", Flag: "log-level", Default: "info", Usage: "debug, info, warn or error",
			set: func(c *Config, v string) error {
				if err := c.Log.Level.UnmarshalText([]byte(v)); err != nil {
					return fmt.Errorf("%q is not debug, info, warn or error", v)
				}
				return nil
			}},
		{Env: "DIGITOLL_LOG_FORMAT", Flag: "log-format", Default: "text", Usage: "text or json",
			set: func(c *Config, v string) error {
				if v != "text" && v != "json" {
					return fmt.Errorf("%q is not text or json", v)
				}
				c.Log.Format = v
				return nil
			}},
	}
}

// Load reads the settings from getenv, lets flags in args override them,
// fills the defaults that depend on the environment and validates the
// result. fs receives one flag per setting; its usage output therefore
// documents every setting. Errors name the variable and the flag.
func Load(fs *flag.FlagSet, args []string, getenv func(string) string) (*Config, error) {
	settings := Settings()
	values := make(map[string]string, len(settings))
	flags := make(map[string]*string, len(settings))
	for _, s := range settings {
		v := s.Default
		if e := getenv(s.Env); e != "" {
			v = e
		}
		values[s.Env] = v
		flags[s.Env] = fs.String(s.Flag, v, s.Usage+" ($"+s.Env+")")
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("%w %q", ErrArgument, fs.Arg(0))
	}
	c := &Config{Tenant: Tenant{Name: contract.DefaultTenant}}
	for _, s := range settings {
		v := strings.TrimSpace(*flags[s.Env])
		values[s.Env] = v
		if v == "" {
			continue
		}
		if err := s.set(c, v); err != nil {
			return nil, fmt.Errorf("%w: %s (--%s): %v", ErrInvalid, s.Env, s.Flag, err)
		}
	}
	c.applyEnvDefaults(values["DIGITOLL_SIM_URL"], values["DIGITOLL_SIM_DIR"])
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// SupportedKinds are the kinds this version can process.
func SupportedKinds() []contract.Kind {
	return []contract.Kind{contract.KindRoad, contract.KindAir, contract.KindEntry, contract.KindDocument}
}

// Endpoints returns the Maskinporten issuer, its token URL and the Toll
// base URL of a public environment.
func Endpoints(env Env) (issuer, tokenURL, tollBase string) {
	switch env {
	case EnvProd:
		return "https://maskinporten.no/", "https://maskinporten.no/token", "https://api.toll.no/api"
	case EnvTest:
		return "https://test.maskinporten.no/", "https://test.maskinporten.no/token", "https://api-test.toll.no/api"
	}
	return "", "", ""
}

// SimEndpoints returns the URLs the bundled simulator serves under root.
func SimEndpoints(root string) (issuer, tokenURL, tollBase string) {
	root = strings.TrimRight(root, "/")
	return root + "/maskinporten/", root + "/maskinporten/token", root + "/toll/api"
}

// SimClientID is the integration id the simulator's demo key is issued to.
const SimClientID = "digitoll-demo"

// Demo key files that `digitoll sim` writes into its directory for
// SimClientID.
const (
	SimKeyFile  = SimClientID + ".key.pem"
	SimCertFile = SimClientID + ".cert.pem"
)

func (c *Config) applyEnvDefaults(simURL, simDir string) {
	issuer, tokenURL, tollBase := Endpoints(c.Env)
	if c.Env == EnvSim {
		issuer, tokenURL, tollBase = SimEndpoints(simURL)
		if c.Tenant.ClientID == "" {
			c.Tenant.ClientID = SimClientID
		}
		if c.Tenant.KeyFile == "" && c.Tenant.P12File == "" {
			c.Tenant.KeyFile = filepath.Join(simDir, SimKeyFile)
			if c.Tenant.KeyID == "" && c.Tenant.CertFile == "" {
				c.Tenant.CertFile = filepath.Join(simDir, SimCertFile)
			}
		}
	}
	if c.Maskinporten.Issuer == "" {
		c.Maskinporten.Issuer = issuer
	}
	if c.Maskinporten.TokenURL == "" {
		c.Maskinporten.TokenURL = tokenURL
	}
	if c.TollBaseURL == "" {
		c.TollBaseURL = tollBase
	}
}

// Validate checks the settings that depend on each other. It names the
// variable to fix in every error.
func (c *Config) Validate() error {
	bad := func(env, format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrInvalid, env, fmt.Sprintf(format, args...))
	}
	if !strings.HasSuffix(c.Maskinporten.Issuer, "/") {
		return bad("DIGITOLL_MASKINPORTEN_ISSUER", "%q must end with '/': it is the grant audience, trailing slash included", c.Maskinporten.Issuer)
	}
	if c.Env == EnvProd {
		for env, u := range map[string]string{
			"DIGITOLL_MASKINPORTEN_ISSUER":    c.Maskinporten.Issuer,
			"DIGITOLL_MASKINPORTEN_TOKEN_URL": c.Maskinporten.TokenURL,
			"DIGITOLL_TOLL_BASE_URL":          c.TollBaseURL,
		} {
			if !strings.HasPrefix(u, "https://") {
				return bad(env, "prod needs https, got %q", u)
			}
		}
	}
	t := c.Tenant
	if t.ClientID == "" {
		return bad("DIGITOLL_CLIENT_ID", "is required: the Maskinporten integration id")
	}
	switch {
	case t.P12File != "":
		if t.KeyFile != "" || t.CertFile != "" || t.KeyID != "" {
			return bad("DIGITOLL_P12_FILE", "excludes DIGITOLL_KEY_FILE, DIGITOLL_CERT_FILE and DIGITOLL_KEY_ID")
		}
		if err := readable(t.P12File); err != nil {
			return bad("DIGITOLL_P12_FILE", "%v", err)
		}
		if t.P12PasswordFile != "" {
			if err := readable(t.P12PasswordFile); err != nil {
				return bad("DIGITOLL_P12_PASSWORD_FILE", "%v", err)
			}
		}
	case t.KeyFile == "":
		return bad("DIGITOLL_KEY_FILE", "is required (or DIGITOLL_P12_FILE): the integration's private key")
	default:
		if err := readable(t.KeyFile); err != nil {
			return bad("DIGITOLL_KEY_FILE", "%v", err)
		}
		if (t.KeyID == "") == (t.CertFile == "") {
			return bad("DIGITOLL_KEY_ID", "set exactly one of DIGITOLL_KEY_ID (registered key) and DIGITOLL_CERT_FILE (business certificate)")
		}
		if t.CertFile != "" {
			if err := readable(t.CertFile); err != nil {
				return bad("DIGITOLL_CERT_FILE", "%v", err)
			}
		}
	}
	if len(t.Kinds) == 0 {
		return bad("DIGITOLL_KINDS", "names no kind")
	}
	for _, k := range t.Kinds {
		if !slices.Contains(SupportedKinds(), k) {
			return bad("DIGITOLL_KINDS", "kind %q is not supported by this version (supported: %v)", k, SupportedKinds())
		}
	}
	if c.NATS.URL == "" && c.NATS.EmbeddedDir == "" {
		return bad("DIGITOLL_NATS_DIR", "is required for the embedded server")
	}
	if c.NATS.CredsFile != "" {
		if err := readable(c.NATS.CredsFile); err != nil {
			return bad("DIGITOLL_NATS_CREDS_FILE", "%v", err)
		}
	}
	if c.Worker.ValidationTimeout >= c.Worker.MessageDeadline {
		return bad("DIGITOLL_VALIDATION_TIMEOUT", "%s must be shorter than DIGITOLL_MESSAGE_DEADLINE (%s)", c.Worker.ValidationTimeout, c.Worker.MessageDeadline)
	}
	return nil
}

func readable(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("cannot read %s: %w", path, errors.Unwrap(err))
	}
	return f.Close()
}

func setString(field func(*Config) *string) func(*Config, string) error {
	return func(c *Config, v string) error { *field(c) = v; return nil }
}

func setURL(field func(*Config) *string) func(*Config, string) error {
	return func(c *Config, v string) error {
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("%q is not an http(s) URL", v)
		}
		*field(c) = v
		return nil
	}
}

func setBool(field func(*Config) *bool) func(*Config, string) error {
	return func(c *Config, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("%q is not true or false", v)
		}
		*field(c) = b
		return nil
	}
}

func setInt(field func(*Config) *int, lo, hi int) func(*Config, string) error {
	return func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < lo || n > hi {
			return fmt.Errorf("%q is not a whole number from %d to %d", v, lo, hi)
		}
		*field(c) = n
		return nil
	}
}

func setDuration(field func(*Config) *time.Duration, least time.Duration) func(*Config, string) error {
	return func(c *Config, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil || d < least {
			return fmt.Errorf("%q is not a duration of at least %s (e.g. 30s, 5m)", v, least)
		}
		*field(c) = d
		return nil
	}
}
