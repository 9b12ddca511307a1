package config

import (
	"fmt"
	"maps"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/digitoll/digitoll-worker/contract"
)

// Setting describes one configuration setting: its environment variable,
// its flag, its default and what it means. docs/configuration.md's
// table and every --help text come from the same list.
type Setting struct {
	Env     string
	Flag    string
	Default string
	Usage   string
	set     func(c *Config, v string) error
	get     func(c *Config) string
}

// Value returns the setting's effective value in c as text, the way the
// variable would be written. It is safe to print: secrets are never
// settings (the settings name the files that hold them), and a password
// written into a URL is replaced by "***".
func (s Setting) Value(c *Config) string {
	return maskURLPasswords(s.get(c))
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
			},
			get: func(c *Config) string { return string(c.Env) }},
		{Env: "DIGITOLL_MASKINPORTEN_ISSUER", Flag: "maskinporten-issuer", Usage: "Maskinporten issuer, the grant audience (default from DIGITOLL_ENV)",
			set: func(c *Config, v string) error {
				if err := setURL(func(c *Config) *string { return &c.Maskinporten.Issuer })(c, v); err != nil {
					return err
				}
				c.Maskinporten.Issuer = NormalizeIssuer(v)
				return nil
			},
			get: getString(func(c *Config) *string { return &c.Maskinporten.Issuer })},
		{Env: "DIGITOLL_MASKINPORTEN_TOKEN_URL", Flag: "maskinporten-token-url", Usage: "Maskinporten token endpoint (default from DIGITOLL_ENV); the fallback while discovery fails",
			set: setURL(func(c *Config) *string { return &c.Maskinporten.TokenURL }),
			get: getString(func(c *Config) *string { return &c.Maskinporten.TokenURL })},
		{Env: "DIGITOLL_MASKINPORTEN_DISCOVERY", Flag: "maskinporten-discovery", Default: "true",
			Usage: "read the token endpoint from the issuer's .well-known/oauth-authorization-server metadata (cached for a day)",
			set:   setBool(func(c *Config) *bool { return &c.Maskinporten.Discovery }),
			get:   getBool(func(c *Config) *bool { return &c.Maskinporten.Discovery })},
		{Env: "DIGITOLL_TOLL_BASE_URL", Flag: "toll-base-url", Usage: "Toll API root (default from DIGITOLL_ENV)",
			set: setURL(func(c *Config) *string { return &c.TollBaseURL }),
			get: getString(func(c *Config) *string { return &c.TollBaseURL })},
		{Env: "DIGITOLL_SIM_URL", Flag: "sim-url", Default: "http://127.0.0.1:8090",
			Usage: "root of the simulator when DIGITOLL_ENV=sim",
			set:   setURL(func(c *Config) *string { return &c.Sim.URL }),
			get:   getString(func(c *Config) *string { return &c.Sim.URL })},
		{Env: "DIGITOLL_SIM_DIR", Flag: "sim-dir", Default: ".digitoll/sim",
			Usage: "where `digitoll sim` writes its demo key; with DIGITOLL_ENV=sim the key settings default to it",
			set:   setString(func(c *Config) *string { return &c.Sim.Dir }),
			get:   getString(func(c *Config) *string { return &c.Sim.Dir })},
		{Env: "DIGITOLL_CLIENT_ID", Flag: "client-id", Usage: "Maskinporten integration id (client id) of the tenant",
			set: setString(func(c *Config) *string { return &c.Tenant.ClientID }),
			get: getString(func(c *Config) *string { return &c.Tenant.ClientID })},
		{Env: "DIGITOLL_KEY_FILE", Flag: "key-file", Usage: "PEM private key file (PKCS#1 or PKCS#8)",
			set: setString(func(c *Config) *string { return &c.Tenant.KeyFile }),
			get: getString(func(c *Config) *string { return &c.Tenant.KeyFile })},
		{Env: "DIGITOLL_KEY_ID", Flag: "key-id", Usage: "kid of the key registered on the integration (kid mode)",
			set: setString(func(c *Config) *string { return &c.Tenant.KeyID }),
			get: getString(func(c *Config) *string { return &c.Tenant.KeyID })},
		{Env: "DIGITOLL_CERT_FILE", Flag: "cert-file", Usage: "PEM business certificate chain, leaf first (x5c mode)",
			set: setString(func(c *Config) *string { return &c.Tenant.CertFile }),
			get: getString(func(c *Config) *string { return &c.Tenant.CertFile })},
		{Env: "DIGITOLL_P12_FILE", Flag: "p12-file", Usage: "PKCS#12 business certificate with key (x5c mode)",
			set: setString(func(c *Config) *string { return &c.Tenant.P12File }),
			get: getString(func(c *Config) *string { return &c.Tenant.P12File })},
		{Env: "DIGITOLL_P12_PASSWORD_FILE", Flag: "p12-password-file", Usage: "file holding the PKCS#12 password",
			set: setString(func(c *Config) *string { return &c.Tenant.P12PasswordFile }),
			get: getString(func(c *Config) *string { return &c.Tenant.P12PasswordFile })},
		{Env: "DIGITOLL_FOREIGN", Flag: "foreign", Default: "false", Usage: "foreign business: use the toll:eu/ scopes",
			set: setBool(func(c *Config) *bool { return &c.Tenant.Foreign }),
			get: getBool(func(c *Config) *bool { return &c.Tenant.Foreign })},
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
			},
			get: func(c *Config) string {
				names := make([]string, len(c.Tenant.Kinds))
				for i, k := range c.Tenant.Kinds {
					names[i] = string(k)
				}
				return strings.Join(names, ",")
			}},
		{Env: "DIGITOLL_TENANTS_FILE", Flag: "tenants-file",
			Usage: "YAML or JSON file listing the tenants to serve, each with its integration, key and kinds; replaces the single tenant of DIGITOLL_CLIENT_ID…DIGITOLL_KINDS and is reloaded when it changes",
			set:   setString(func(c *Config) *string { return &c.TenantsFile }),
			get:   getString(func(c *Config) *string { return &c.TenantsFile })},
		{Env: "DIGITOLL_NATS_URL", Flag: "nats-url", Usage: "NATS server URL(s); unset: $NATS_URL, else the selected nats context, else an embedded server (as does the value embedded)",
			set: func(c *Config, v string) error {
				if v == EmbeddedNATS {
					v = ""
				}
				c.NATS.URL = v
				return nil
			},
			get: getString(func(c *Config) *string { return &c.NATS.URL })},
		{Env: "DIGITOLL_NATS_CREDS_FILE", Flag: "nats-creds-file", Usage: "NATS credentials file (JWT and NKey seed, for a server with an operator)",
			set: setString(func(c *Config) *string { return &c.NATS.CredsFile }),
			get: getString(func(c *Config) *string { return &c.NATS.CredsFile })},
		{Env: "DIGITOLL_NATS_NKEY_FILE", Flag: "nats-nkey-file", Usage: "file holding a NATS user NKey seed (SU…)",
			set: setString(func(c *Config) *string { return &c.NATS.NKeyFile }),
			get: getString(func(c *Config) *string { return &c.NATS.NKeyFile })},
		{Env: "DIGITOLL_NATS_USER", Flag: "nats-user", Usage: "NATS user name (with DIGITOLL_NATS_PASSWORD_FILE)",
			set: setString(func(c *Config) *string { return &c.NATS.User }),
			get: getString(func(c *Config) *string { return &c.NATS.User })},
		{Env: "DIGITOLL_NATS_PASSWORD_FILE", Flag: "nats-password-file", Usage: "file holding the NATS user's password",
			set: setString(func(c *Config) *string { return &c.NATS.PasswordFile }),
			get: getString(func(c *Config) *string { return &c.NATS.PasswordFile })},
		{Env: "DIGITOLL_NATS_CA_FILE", Flag: "nats-ca-file", Usage: "PEM CA certificates that issued the NATS server's certificate; turns TLS on",
			set: setString(func(c *Config) *string { return &c.NATS.CAFile }),
			get: getString(func(c *Config) *string { return &c.NATS.CAFile })},
		{Env: "DIGITOLL_NATS_CERT_FILE", Flag: "nats-cert-file", Usage: "PEM client certificate for NATS TLS (with DIGITOLL_NATS_KEY_FILE)",
			set: setString(func(c *Config) *string { return &c.NATS.CertFile }),
			get: getString(func(c *Config) *string { return &c.NATS.CertFile })},
		{Env: "DIGITOLL_NATS_KEY_FILE", Flag: "nats-key-file", Usage: "PEM private key of the NATS client certificate",
			set: setString(func(c *Config) *string { return &c.NATS.KeyFile }),
			get: getString(func(c *Config) *string { return &c.NATS.KeyFile })},
		{Env: "DIGITOLL_NATS_DIR", Flag: "nats-dir", Default: ".digitoll/nats", Usage: "JetStream store of the embedded server",
			set: setString(func(c *Config) *string { return &c.NATS.EmbeddedDir }),
			get: getString(func(c *Config) *string { return &c.NATS.EmbeddedDir })},
		{Env: "DIGITOLL_NATS_HOST", Flag: "nats-host", Default: "127.0.0.1", Usage: "listen address of the embedded server; beyond loopback it requires DIGITOLL_NATS_USER or DIGITOLL_NATS_NKEY_FILE",
			set: setString(func(c *Config) *string { return &c.NATS.EmbeddedHost }),
			get: getString(func(c *Config) *string { return &c.NATS.EmbeddedHost })},
		{Env: "DIGITOLL_NATS_PORT", Flag: "nats-port", Default: "4222", Usage: "listen port of the embedded server (-1: any free port)",
			set: func(c *Config, v string) error {
				n, err := strconv.Atoi(v)
				if err != nil || n < -1 || n > 65535 {
					return fmt.Errorf("%q is not a port (0-65535, or -1 for any)", v)
				}
				c.NATS.EmbeddedPort = n
				return nil
			},
			get: getInt(func(c *Config) *int { return &c.NATS.EmbeddedPort })},
		{Env: "DIGITOLL_NATS_SERVER_CERT_FILE", Flag: "nats-server-cert-file", Usage: "PEM certificate of the embedded server: other processes must connect with TLS (and, with DIGITOLL_NATS_CA_FILE, a client certificate)",
			set: setString(func(c *Config) *string { return &c.NATS.ServerCertFile }),
			get: getString(func(c *Config) *string { return &c.NATS.ServerCertFile })},
		{Env: "DIGITOLL_NATS_SERVER_KEY_FILE", Flag: "nats-server-key-file", Usage: "PEM private key of the embedded server's certificate",
			set: setString(func(c *Config) *string { return &c.NATS.ServerKeyFile }),
			get: getString(func(c *Config) *string { return &c.NATS.ServerKeyFile })},
		{Env: "DIGITOLL_NATS_SYNC_ALWAYS", Flag: "nats-sync-always", Default: "false", Usage: "embedded server fsyncs every write (slower, survives power loss)",
			set: setBool(func(c *Config) *bool { return &c.NATS.SyncAlways }),
			get: getBool(func(c *Config) *bool { return &c.NATS.SyncAlways })},
		{Env: "DIGITOLL_STREAM_REPLICAS", Flag: "stream-replicas", Default: "1", Usage: "replicas of the streams the worker creates (3 on a cluster)",
			set: setInt(func(c *Config) *int { return &c.NATS.Replicas }, 1, 5),
			get: getInt(func(c *Config) *int { return &c.NATS.Replicas })},
		{Env: "DIGITOLL_CONCURRENCY", Flag: "concurrency", Default: "64", Usage: "messages processed at once",
			set: setInt(func(c *Config) *int { return &c.Worker.Concurrency }, 1, 10000),
			get: getInt(func(c *Config) *int { return &c.Worker.Concurrency })},
		{Env: "DIGITOLL_TENANT_CONCURRENCY", Flag: "tenant-concurrency", Default: "0",
			Usage: "with a tenants file, messages of one tenant processed at once unless its entry sets concurrency (0: three quarters of DIGITOLL_CONCURRENCY)",
			set:   setInt(func(c *Config) *int { return &c.Limits.TenantConcurrency }, 0, 10000),
			get:   getInt(func(c *Config) *int { return &c.Limits.TenantConcurrency })},
		{Env: "DIGITOLL_KIND_CONCURRENCY", Flag: "kind-concurrency", Default: "document=8",
			Usage: "messages of one kind processed at once, within DIGITOLL_CONCURRENCY: kind=n pairs like road=32,air=16, or none",
			set:   setKindConcurrency,
			get: func(c *Config) string {
				if len(c.Limits.KindConcurrency) == 0 {
					return "none"
				}
				var pairs []string
				for _, k := range slices.Sorted(maps.Keys(c.Limits.KindConcurrency)) {
					pairs = append(pairs, fmt.Sprintf("%s=%d", k, c.Limits.KindConcurrency[k]))
				}
				return strings.Join(pairs, ",")
			}},
		{Env: "DIGITOLL_TOLL_RATE", Flag: "toll-rate", Default: "100", Usage: "requests per second to each Toll API (0: no limit); a 429 halves it for a while",
			set: func(c *Config, v string) error {
				r, err := strconv.ParseFloat(v, 64)
				if err != nil || r < 0 || r > 100000 {
					return fmt.Errorf("%q is not a rate from 0 to 100000 requests per second", v)
				}
				c.Limits.TollRate = r
				return nil
			},
			get: func(c *Config) string { return strconv.FormatFloat(c.Limits.TollRate, 'f', -1, 64) }},
		{Env: "DIGITOLL_TOLL_BURST", Flag: "toll-burst", Default: "25", Usage: "requests an idle Toll API may receive at once",
			set: setInt(func(c *Config) *int { return &c.Limits.TollBurst }, 1, 10000),
			get: getInt(func(c *Config) *int { return &c.Limits.TollBurst })},
		{Env: "DIGITOLL_ACK_WAIT", Flag: "ack-wait", Default: "60s", Usage: "JetStream ack wait; in-progress acks are sent at a third of it",
			set: setDuration(func(c *Config) *time.Duration { return &c.Worker.AckWait }, 3*time.Second),
			get: getDuration(func(c *Config) *time.Duration { return &c.Worker.AckWait })},
		{Env: "DIGITOLL_MESSAGE_DEADLINE", Flag: "message-deadline", Default: "24h", Usage: "how long a message is retried before it is dead-lettered",
			set: setDuration(func(c *Config) *time.Duration { return &c.Worker.MessageDeadline }, time.Second),
			get: getDuration(func(c *Config) *time.Duration { return &c.Worker.MessageDeadline })},
		{Env: "DIGITOLL_VALIDATION_TIMEOUT", Flag: "validation-timeout", Default: "10m", Usage: "longest wait for Toll's validation result in one delivery",
			set: setDuration(func(c *Config) *time.Duration { return &c.Worker.ValidationTimeout }, time.Second),
			get: getDuration(func(c *Config) *time.Duration { return &c.Worker.ValidationTimeout })},
		{Env: "DIGITOLL_VALIDATION_POLLING", Flag: "validation-polling", Default: "adaptive", Usage: "validation polls placed where recent verdicts came (adaptive) or on a fixed growing schedule (fixed)",
			set: setChoice(func(c *Config) *string { return &c.Worker.ValidationPolling }, "adaptive", "fixed"),
			get: getString(func(c *Config) *string { return &c.Worker.ValidationPolling })},
		{Env: "DIGITOLL_HTTP_TIMEOUT", Flag: "http-timeout", Default: "30s", Usage: "timeout of one HTTP call to Toll or Maskinporten",
			set: setDuration(func(c *Config) *time.Duration { return &c.Worker.HTTPTimeout }, 100*time.Millisecond),
			get: getDuration(func(c *Config) *time.Duration { return &c.Worker.HTTPTimeout })},
		{Env: "DIGITOLL_SHUTDOWN_GRACE", Flag: "shutdown-grace", Default: "30s", Usage: "how long in-flight messages may finish on SIGTERM",
			set: setDuration(func(c *Config) *time.Duration { return &c.Worker.ShutdownGrace }, 0),
			get: getDuration(func(c *Config) *time.Duration { return &c.Worker.ShutdownGrace })},
		{Env: "DIGITOLL_RETRY_BUDGET", Flag: "retry-budget", Default: "15s", Usage: "how long one delivery retries transient Toll failures before handing the message back",
			set: setDuration(func(c *Config) *time.Duration { return &c.Worker.RetryBudget }, 0),
			get: getDuration(func(c *Config) *time.Duration { return &c.Worker.RetryBudget })},
		{Env: "DIGITOLL_OUTAGE_THRESHOLD", Flag: "outage-threshold", Default: "10", Usage: "deliveries of a kind failing in a row that pause it as an outage (-1: never)",
			set: setInt(func(c *Config) *int { return &c.Worker.OutageThreshold }, -1, 100000),
			get: getInt(func(c *Config) *int { return &c.Worker.OutageThreshold })},
		{Env: "DIGITOLL_PROBE_INTERVAL", Flag: "probe-interval", Default: "15s", Usage: "how often a paused kind is probed",
			set: setDuration(func(c *Config) *time.Duration { return &c.Worker.ProbeInterval }, 100*time.Millisecond),
			get: getDuration(func(c *Config) *time.Duration { return &c.Worker.ProbeInterval })},
		{Env: "DIGITOLL_SEND_LEASE", Flag: "send-lease", Default: "1m", Usage: "how long a Toll call begun by one delivery is presumed alive before another makes it again",
			set: setDuration(func(c *Config) *time.Duration { return &c.Worker.SendLease }, time.Second),
			get: getDuration(func(c *Config) *time.Duration { return &c.Worker.SendLease })},
		{Env: "DIGITOLL_ROUTING", Flag: "routing", Default: "auto", Usage: "poll Toll's routing feed: auto (when entry is enabled), on or off",
			set: setChoice(func(c *Config) *string { return &c.Routing.Mode }, "auto", "on", "off"),
			get: getString(func(c *Config) *string { return &c.Routing.Mode })},
		{Env: "DIGITOLL_ROUTING_INTERVAL", Flag: "routing-interval", Default: "30s", Usage: "pause between polls of a caught-up routing feed",
			set: setDuration(func(c *Config) *time.Duration { return &c.Routing.Interval }, 100*time.Millisecond),
			get: getDuration(func(c *Config) *time.Duration { return &c.Routing.Interval })},
		{Env: "DIGITOLL_HTTP_ADDR", Flag: "http-addr", Default: "127.0.0.1:8081", Usage: "address of /healthz, /readyz and /metrics (host:port), or off",
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
			},
			get: func(c *Config) string {
				if c.HTTPAddr == "" {
					return "off"
				}
				return c.HTTPAddr
			}},
		{Env: "DIGITOLL_PPROF", Flag: "pprof", Default: "false",
			Usage: "serve Go's runtime profiles at /debug/pprof/ on DIGITOLL_HTTP_ADDR (for diagnosing CPU or memory; keep the address private)",
			set:   setBool(func(c *Config) *bool { return &c.Pprof }),
			get:   getBool(func(c *Config) *bool { return &c.Pprof })},
		{Env: "DIGITOLL_METRICS_TENANT_LABELS", Flag: "metrics-tenant-labels", Default: "200",
			Usage: "configured tenants labelled by name on the message metrics; later ones are labelled other, tenants not configured unconfigured (0: no tenant label, all)",
			set:   setInt(func(c *Config) *int { return &c.Metrics.TenantLabels }, 0, 10000),
			get:   getInt(func(c *Config) *int { return &c.Metrics.TenantLabels })},
		{Env: "DIGITOLL_LOG_LEVEL", Flag: "log-level", Default: "info", Usage: "debug, info, warn or error",
			set: func(c *Config, v string) error {
				if err := c.Log.Level.UnmarshalText([]byte(v)); err != nil {
					return fmt.Errorf("%q is not debug, info, warn or error", v)
				}
				return nil
			},
			get: func(c *Config) string { return strings.ToLower(c.Log.Level.String()) }},
		{Env: "DIGITOLL_LOG_FORMAT", Flag: "log-format", Default: "text", Usage: "text or json",
			set: setChoice(func(c *Config) *string { return &c.Log.Format }, "text", "json"),
			get: getString(func(c *Config) *string { return &c.Log.Format })},
		{Env: "DIGITOLL_OTLP_ENDPOINT", Flag: "otlp-endpoint", Usage: "OTLP/HTTP receiver for traces, e.g. http://otel-collector:4318 (spans go to its /v1/traces); empty: tracing off",
			set: setURL(func(c *Config) *string { return &c.Tracing.OTLPEndpoint }),
			get: getString(func(c *Config) *string { return &c.Tracing.OTLPEndpoint })},
	}
}

// NormalizeIssuer gives a Maskinporten issuer its trailing slash. The
// issuer is the grant's audience and Maskinporten's metadata names it with
// the slash (https://maskinporten.no/); written without it, it means the
// same, and `digitoll run` and `digitoll config check` must agree on it.
func NormalizeIssuer(issuer string) string {
	if issuer == "" || strings.HasSuffix(issuer, "/") {
		return issuer
	}
	return issuer + "/"
}

// setKindConcurrency reads "road=32,air=16" (or "none") into
// Limits.KindConcurrency.
func setKindConcurrency(c *Config, v string) error {
	c.Limits.KindConcurrency = nil
	if v == "none" {
		return nil
	}
	caps := map[contract.Kind]int{}
	for _, pair := range strings.Split(v, ",") {
		name, num, ok := strings.Cut(strings.TrimSpace(pair), "=")
		if !ok {
			return fmt.Errorf("%q is not kind=n (e.g. road=32,air=16) or none", pair)
		}
		k, err := contract.ParseKind(strings.TrimSpace(name))
		if err != nil {
			return err
		}
		n, err := strconv.Atoi(strings.TrimSpace(num))
		if err != nil || n < 1 || n > 10000 {
			return fmt.Errorf("%s=%s: not a whole number from 1 to 10000", name, num)
		}
		if _, dup := caps[k]; dup {
			return fmt.Errorf("kind %s is named twice", k)
		}
		caps[k] = n
	}
	c.Limits.KindConcurrency = caps
	return nil
}

// maskURLPasswords replaces the password of every URL in a comma-separated
// list with "***"; anything else is returned as it is.
func maskURLPasswords(v string) string {
	if !strings.Contains(v, "@") {
		return v
	}
	parts := strings.Split(v, ",")
	for i, p := range parts {
		u, err := url.Parse(strings.TrimSpace(p))
		if err != nil || u.User == nil {
			continue
		}
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "***")
		} else {
			// A lone user part is often a token (nats://<token>@host).
			u.User = url.User("***")
		}
		parts[i] = strings.Replace(u.String(), "%2A%2A%2A", "***", 1)
	}
	return strings.Join(parts, ",")
}

func setString(field func(*Config) *string) func(*Config, string) error {
	return func(c *Config, v string) error { *field(c) = v; return nil }
}

func getString(field func(*Config) *string) func(*Config) string {
	return func(c *Config) string { return *field(c) }
}

// setChoice sets field to one of choices, and refuses anything else
// naming them all ("is not auto, on or off").
func setChoice(field func(*Config) *string, choices ...string) func(*Config, string) error {
	return func(c *Config, v string) error {
		if !slices.Contains(choices, v) {
			last := len(choices) - 1
			return fmt.Errorf("%q is not %s or %s", v, strings.Join(choices[:last], ", "), choices[last])
		}
		*field(c) = v
		return nil
	}
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

func getBool(field func(*Config) *bool) func(*Config) string {
	return func(c *Config) string { return strconv.FormatBool(*field(c)) }
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

func getInt(field func(*Config) *int) func(*Config) string {
	return func(c *Config) string { return strconv.Itoa(*field(c)) }
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

func getDuration(field func(*Config) *time.Duration) func(*Config) string {
	return func(c *Config) string { return field(c).String() }
}
