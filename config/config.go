// Package config holds the worker's settings as plain data, and reads them
// from environment variables (the docker-compose way) and command-line
// flags. Every setting has one environment variable and one flag; a flag
// wins over the variable. Load validates everything at once and names the
// setting that is wrong, so a bad configuration stops start-up with one
// clear message instead of failing later at the border.
//
// Secrets never come from flags or variables: the private key, the PKCS#12
// password and NATS credentials, seeds and passwords are read from files
// whose paths are configured.
package config

import (
	"log/slog"
	"slices"
	"time"

	"github.com/digitoll/digitoll-worker/contract"
)

// Env names a pair of Maskinporten and Toll environments.
type Env string

// The environments of DIGITOLL.md, plus the project's simulator.
const (
	EnvProd Env = "prod"
	EnvTest Env = "test"
	EnvSim  Env = "sim"
)

// Config is everything the worker needs to run.
type Config struct {
	Env          Env
	Maskinporten Maskinporten
	// TollBaseURL is the Toll API root, e.g. https://api-test.toll.no/api.
	TollBaseURL string
	// Tenant is the single tenant configured from the environment,
	// served when TenantsFile is empty.
	Tenant Tenant
	// TenantsFile lists the tenants to serve instead of Tenant (see
	// LoadTenants); it is read again whenever it changes.
	TenantsFile string
	NATS        NATS
	Worker      Worker
	Log         Log
	// HTTPAddr is where /healthz, /readyz and /metrics are served;
	// empty disables the server.
	HTTPAddr string
	// Pprof serves Go's runtime profiles at /debug/pprof/ beside
	// HTTPAddr's other paths. Off by default: a profile shows the
	// worker's internals and costs CPU while it is taken.
	Pprof   bool
	Routing Routing
	Limits  Limits
	// Sim locates the bundled simulator for DIGITOLL_ENV=sim.
	Sim Sim
	// Tracing says where spans are exported.
	Tracing Tracing
	// Metrics shapes the Prometheus metrics.
	Metrics Metrics

	// given holds the variables of the settings that Parse found set, by
	// a flag or in the environment, for the warnings about settings that
	// have no effect.
	given map[string]bool
	// borrowed names, for a setting left unset that took its value from
	// a convention of the ecosystem (NATS_URL, a nats context, OTEL_*),
	// where the value came from.
	borrowed map[string]string
}

// BorrowedFrom says where the value of the setting named by its variable
// came from when the setting was not set but a convention of the ecosystem
// was (such as "NATS_URL" for DIGITOLL_NATS_URL); "" otherwise.
func (c *Config) BorrowedFrom(env string) string {
	return c.borrowed[env]
}

// Metrics shapes the Prometheus metrics served at /metrics.
type Metrics struct {
	// TenantLabels is how many configured tenants the message metrics
	// label by name; the rest share the label "other", tenants not
	// configured "unconfigured". 0 drops the tenant: every series is
	// labelled "all". It bounds the series whatever publishers send.
	TenantLabels int
}

// Tracing configures the export of OpenTelemetry traces.
type Tracing struct {
	// OTLPEndpoint is the base URL of an OTLP/HTTP receiver (an
	// OpenTelemetry Collector's port 4318); empty turns tracing off.
	// Without DIGITOLL_OTLP_ENDPOINT it comes from the standard
	// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT.
	OTLPEndpoint string
	// EndpointIsTracesURL says that OTLPEndpoint is the URL spans are
	// posted to, as it is: it came from OTEL_EXPORTER_OTLP_TRACES_ENDPOINT.
	EndpointIsTracesURL bool
	// ServiceName is the service.name of the spans, from the standard
	// OTEL_SERVICE_NAME; empty is "digitoll-worker".
	ServiceName string
}

// Sim says where the bundled simulator runs and keeps its demo key.
type Sim struct {
	// URL is the simulator's root; the endpoints of DIGITOLL_ENV=sim
	// are under it.
	URL string
	// Dir is where `digitoll sim` writes its demo key, which the key
	// settings default to with DIGITOLL_ENV=sim.
	Dir string
}

// Limits are the worker's own limits on how hard it calls Toll, so that a
// burst of messages does not turn into a burst of 429s.
type Limits struct {
	// TollRate is the requests per second sent to each Toll API (the
	// first two path segments below the base URL, e.g. movement/road);
	// 0 means no limit. A 429 halves it for a while.
	TollRate float64
	// TollBurst is how many requests an idle API may receive at once.
	TollBurst int
	// KindConcurrency caps the messages of one kind in progress at once,
	// within Worker.Concurrency; kinds not named share the whole pool.
	KindConcurrency map[contract.Kind]int
	// TenantConcurrency caps each tenant's messages in progress at once
	// when its entry in the tenants file sets none; 0 is three quarters of
	// Worker.Concurrency. Only with a tenants file.
	TenantConcurrency int
}

// Routing configures the poller of Toll's routing feed.
type Routing struct {
	// Mode is "auto" (on when the entry kind is enabled), "on" or "off".
	Mode string
	// Interval is the pause between polls of a caught-up feed.
	Interval time.Duration
}

// RoutingEnabled tells whether the routing poller runs for c.
func (c *Config) RoutingEnabled() bool {
	switch c.Routing.Mode {
	case "on":
		return true
	case "off":
		return false
	}
	return slices.Contains(c.Tenant.Kinds, contract.KindEntry)
}

// RoutingEnabledFor tells whether a routing poller runs for tenant t:
// as RoutingEnabled, with t's kinds deciding "auto".
func (c *Config) RoutingEnabledFor(t Tenant) bool {
	switch c.Routing.Mode {
	case "on":
		return true
	case "off":
		return false
	}
	return slices.Contains(t.Kinds, contract.KindEntry)
}

// Maskinporten locates the identity provider.
type Maskinporten struct {
	// Issuer is the grant audience, with its trailing slash.
	Issuer string
	// TokenURL is where grants are exchanged for Maskinporten tokens.
	TokenURL string
	// Discovery reads the issuer and token endpoint from the issuer's
	// metadata (.well-known/oauth-authorization-server), with Issuer and
	// TokenURL as the fallback while it cannot be read.
	Discovery bool
}

// Tenant is one Maskinporten integration and what it may declare.
type Tenant struct {
	Name string
	// OrgNumber is the business's Norwegian organisation number (nine
	// digits), empty for a foreign business; it identifies the customer
	// to the operator.
	OrgNumber string
	ClientID  string
	// KeyFile is a PEM private key (PKCS#1 or PKCS#8). With KeyID the
	// grant names a key registered on the integration (kid); with
	// CertFile it carries the business certificate chain (x5c).
	KeyFile  string
	KeyID    string
	CertFile string
	// P12File is a business certificate with its key in PKCS#12 form,
	// the format Norwegian certificate issuers deliver; its password is
	// read from P12PasswordFile.
	P12File         string
	P12PasswordFile string
	// Keys, set only from a tenants file, replace the single key above
	// (whose fields are then empty) with several, for rotating the
	// integration's key; SigningKeys returns either form.
	Keys []TenantKey
	// Foreign businesses use the toll:eu/ scopes.
	Foreign bool
	Kinds   []contract.Kind
	// Concurrency caps the tenant's messages in progress at once; zero
	// means no cap of its own.
	Concurrency int
}

// NATS says where JetStream is: a server at URL, or an embedded server.
type NATS struct {
	// URL of a NATS server or cluster (comma-separated); empty starts an
	// embedded server.
	URL string
	// CredsFile is a NATS credentials file (JWT + NKey seed), for a
	// server with an operator.
	CredsFile string
	// NKeyFile holds a user NKey seed ("SU…"); the server knows its
	// public key and the client proves it holds the seed.
	NKeyFile string
	// User and PasswordFile authenticate with a user name and the
	// password held in the file.
	User         string
	PasswordFile string
	// Password and Token come only from a nats context, whose file holds
	// them; no setting holds a secret.
	Password string
	Token    string
	// Source says where URL and the credentials came from, for the log:
	// "DIGITOLL_NATS_URL", "NATS_URL", a nats context, or "" for the
	// embedded server or a client command's default.
	Source string
	// CAFile holds the certificates that issued the server's TLS
	// certificate (and, for the embedded server, the clients'); setting
	// it makes the connection use TLS.
	CAFile string
	// CertFile and KeyFile are the client's TLS certificate and key, for
	// a server that requires client certificates.
	CertFile string
	KeyFile  string
	// ServerCertFile and ServerKeyFile give the embedded server a TLS
	// certificate: it then accepts only TLS connections from other
	// processes, and with CAFile requires client certificates issued by
	// it.
	ServerCertFile string
	ServerKeyFile  string
	// EmbeddedDir holds the embedded server's JetStream store.
	EmbeddedDir string
	// EmbeddedHost and EmbeddedPort are where the embedded server listens;
	// loopback unless told otherwise, and then only with authentication
	// (User or NKeyFile).
	EmbeddedHost string
	EmbeddedPort int
	// SyncAlways makes the embedded server fsync every write.
	SyncAlways bool
	// Replicas of the streams the worker creates (1 or 3 on a cluster).
	Replicas int
}

// Worker tunes message processing.
type Worker struct {
	// Concurrency bounds the messages processed at once; most of their
	// time is spent waiting on Toll, so it can be high.
	Concurrency int
	// AckWait is how long JetStream waits for an ack before redelivering;
	// the worker sends in-progress acks at a third of it.
	AckWait time.Duration
	// MessageDeadline bounds how long a message may be retried before it
	// is dead-lettered with reason "deadline".
	MessageDeadline time.Duration
	// ValidationTimeout bounds one delivery's wait for Toll's validation
	// result; a message still pending after it is handed back and resumed.
	ValidationTimeout time.Duration
	// ValidationPolling is how validation is polled: "adaptive" (polls
	// placed where recent verdicts came, see handlers.Pacer) or "fixed"
	// (pauses from 250 ms growing by 1.2 up to 2 s).
	ValidationPolling string
	// HTTPTimeout bounds one HTTP call to Toll or Maskinporten.
	HTTPTimeout time.Duration
	// ShutdownGrace is how long in-flight messages may finish on SIGTERM.
	ShutdownGrace time.Duration
	// RetryBudget is how long one delivery retries transient Toll
	// failures in process before it hands the message back.
	RetryBudget time.Duration
	// OutageThreshold is how many deliveries of a kind failing in a row
	// pause the kind as an outage (-1: never).
	OutageThreshold int
	// ProbeInterval is how often a paused kind is probed.
	ProbeInterval time.Duration
	// SendLease is how long a Toll call begun by one delivery is presumed
	// alive before a later delivery makes it again.
	SendLease time.Duration
}

// Log configures log output.
type Log struct {
	Level  slog.Level
	Format string // "text" or "json"
}
