// Package app wires the worker's parts from a config.Config: the HTTP
// client for Toll and Maskinporten, the Toll client with the tenant's token
// cache, one handler per enabled kind, the worker and the routing poller,
// and the metrics and traces they report to.
// `digitoll run`, the demo and the benchmarks build the worker through it,
// so that what is measured and tested is what runs in production.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"

	"github.com/digitoll/digitoll-worker/auth"
	"github.com/digitoll/digitoll-worker/config"
	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/handlers"
	"github.com/digitoll/digitoll-worker/objectfiles"
	"github.com/digitoll/digitoll-worker/routing"
	"github.com/digitoll/digitoll-worker/telemetry"
	"github.com/digitoll/digitoll-worker/toll"
	"github.com/digitoll/digitoll-worker/worker"
)

// HTTPClient is the client for Toll and Maskinporten: keep-alive
// connections sized to the worker's concurrency, since nearly every
// in-flight message polls Toll.
func HTTPClient(c config.Worker) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = c.Concurrency + 16
	t.MaxIdleConnsPerHost = c.Concurrency + 16
	t.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	return &http.Client{Transport: t, Timeout: c.HTTPTimeout}
}

// LoadSigner reads the tenant's key and, in x5c mode, its certificate
// chain. Errors name the setting whose file is wrong.
func LoadSigner(t config.Tenant) (*auth.Signer, error) {
	if t.P12File != "" {
		password := ""
		if t.P12PasswordFile != "" {
			b, err := os.ReadFile(t.P12PasswordFile)
			if err != nil {
				return nil, fmt.Errorf("DIGITOLL_P12_PASSWORD_FILE: %w", err)
			}
			password = strings.TrimRight(string(b), "\r\n")
		}
		key, chain, err := auth.LoadPKCS12(t.P12File, password)
		if err != nil {
			return nil, fmt.Errorf("DIGITOLL_P12_FILE: %w", err)
		}
		return auth.NewCertSigner(key, chain)
	}
	key, err := auth.LoadPEMKey(t.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("DIGITOLL_KEY_FILE: %w", err)
	}
	if t.KeyID != "" {
		return auth.NewKeySigner(key, t.KeyID)
	}
	chain, err := auth.LoadPEMCertificates(t.CertFile)
	if err != nil {
		return nil, fmt.Errorf("DIGITOLL_CERT_FILE: %w", err)
	}
	s, err := auth.NewCertSigner(key, chain)
	if err != nil {
		return nil, fmt.Errorf("DIGITOLL_CERT_FILE: %w", err)
	}
	return s, nil
}

// NewTollClient builds the Toll client of the configured tenant: its
// signer, its own token cache (one Toll token per scope) and hc.
func NewTollClient(cfg *config.Config, hc *http.Client, logger *slog.Logger) (*toll.Client, error) {
	signer, err := LoadSigner(cfg.Tenant)
	if err != nil {
		return nil, err
	}
	client, _ := tollClient(cfg, hc, signer, logger)
	return client, nil
}

// tollClient is NewTollClient with the signer loaded; it also returns the
// token cache, whose counters the metrics read.
func tollClient(cfg *config.Config, hc *http.Client, signer auth.GrantSigner, logger *slog.Logger) (*toll.Client, *auth.Cache) {
	// Every line of the client and its token cache names the tenant
	// whose credentials it uses.
	logger = logger.With("tenant", cfg.Tenant.Name)
	tokens := auth.NewCache(auth.CacheConfig{
		Maskinporten: &auth.Maskinporten{
			TokenURL:  cfg.Maskinporten.TokenURL,
			Issuer:    cfg.Maskinporten.Issuer,
			ClientID:  cfg.Tenant.ClientID,
			Signer:    signer,
			HTTP:      hc,
			Endpoints: endpoints(cfg, hc, logger),
		},
		Exchanger: &auth.Exchanger{URL: strings.TrimRight(cfg.TollBaseURL, "/") + "/access/external/oauth/token", HTTP: hc},
		Logger:    logger,
		// While fetches fail, one attempt per probe of the paused kind:
		// the probe then always finds the backoff over.
		FailureBackoff:    min(auth.DefaultFailureBackoff, cfg.Worker.ProbeInterval),
		MaxFailureBackoff: cfg.Worker.ProbeInterval,
	})
	return &toll.Client{BaseURL: cfg.TollBaseURL, HTTP: hc, Tokens: tokens, Foreign: cfg.Tenant.Foreign, Logger: logger}, tokens
}

// Telemetry is what the services report to: Prometheus metrics and the
// tracer provider of their spans. Zero fields report nothing.
type Telemetry struct {
	Metrics *telemetry.Metrics
	Tracer  trace.TracerProvider
}

// NewTelemetry makes fresh metrics and the tracer provider cfg asks for
// (no-op unless DIGITOLL_OTLP_ENDPOINT is set). shutdown flushes spans not
// yet exported; call it once the services have stopped.
func NewTelemetry(ctx context.Context, cfg *config.Config) (tel Telemetry, shutdown func(context.Context) error, err error) {
	tp, shutdown, err := telemetry.NewTracerProvider(ctx, telemetry.TracingConfig{Endpoint: cfg.Tracing.OTLPEndpoint,
		EndpointIsTracesURL: cfg.Tracing.EndpointIsTracesURL, ServiceName: cfg.Tracing.ServiceName})
	if err != nil {
		return Telemetry{}, nil, fmt.Errorf("DIGITOLL_OTLP_ENDPOINT: %w", err)
	}
	m := telemetry.NewMetrics(telemetry.WithTenantLabelLimit(cfg.Metrics.TenantLabels))
	return Telemetry{Metrics: m, Tracer: tp}, shutdown, nil
}

// handlersObserver is tel's metrics as handlers see them; nil without
// metrics (a nil *Metrics in the interface would not be nil).
func (tel Telemetry) handlersObserver() handlers.Observer {
	if tel.Metrics == nil {
		return nil
	}
	return tel.Metrics
}

// workerObserver is tel's metrics as the worker sees them, or nil.
func (tel Telemetry) workerObserver() worker.Observer {
	if tel.Metrics == nil {
		return nil
	}
	return tel.Metrics
}

// routingObserver is tel's metrics as the routing poller sees them, or nil.
func (tel Telemetry) routingObserver() routing.Observer {
	if tel.Metrics == nil {
		return nil
	}
	return tel.Metrics
}

// NewHandlers returns the handler of each kind enabled in cfg (see
// handlers.Kinds), all calling Toll through client and reporting to tel;
// documents named by an object are read from js's Object Store. The
// movement handlers pace their validation polling with pacer (nil: the
// fixed schedule).
func NewHandlers(cfg *config.Config, js jetstream.JetStream, client *toll.Client, pacer *handlers.Pacer, tel Telemetry, logger *slog.Logger) (map[contract.Kind]handlers.Handler, error) {
	deps := handlers.Deps{
		Toll:     client,
		Files:    objectfiles.New(js),
		Retry:    handlers.RetryPolicy{MaxElapsed: cfg.Worker.RetryBudget},
		Poll:     handlers.PollPolicy{Timeout: cfg.Worker.ValidationTimeout, Pacer: pacer},
		Logger:   logger,
		Observer: tel.handlersObserver(),
	}
	kinds := map[contract.Kind]handlers.Handler{}
	for _, k := range cfg.Tenant.Kinds {
		spec, ok := handlers.KindOf(k)
		if !ok {
			return nil, fmt.Errorf("kind %s is not supported by this version", k)
		}
		kinds[k] = spec.New(deps)
	}
	return kinds, nil
}

// newWorker returns a worker for cfg that serves tenants, carrying out
// each kind with its handler in hs.
func newWorker(cfg *config.Config, js jetstream.JetStream, hs map[contract.Kind]worker.Handler, tenants worker.TenantSource, tel Telemetry, logger *slog.Logger) (*worker.Worker, error) {
	return worker.New(js, worker.Config{
		Handlers:          hs,
		Tenants:           tenants,
		Concurrency:       cfg.Worker.Concurrency,
		KindConcurrency:   cfg.Limits.KindConcurrency,
		TenantConcurrency: cfg.Limits.TenantConcurrency,
		AckWait:           cfg.Worker.AckWait,
		MessageDeadline:   cfg.Worker.MessageDeadline,
		ShutdownGrace:     cfg.Worker.ShutdownGrace,
		OutageThreshold:   cfg.Worker.OutageThreshold,
		// A message refused for the configuration waits in its paused
		// consumer; it comes back when the probe may have resumed it.
		ConfigRetryDelay: cfg.Worker.ProbeInterval,
		ProbeInterval:    cfg.Worker.ProbeInterval,
		PauseFor:         max(worker.DefaultPauseFor, 2*cfg.Worker.ProbeInterval),
		SendLease:        cfg.Worker.SendLease,
		Logger:           logger,
		Observer:         tel.workerObserver(),
		TracerProvider:   tel.Tracer,
	})
}

// EnsureStreams creates or updates the streams and buckets of the
// contract, with the configured replicas.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, c config.NATS) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return worker.EnsureStreams(ctx, js, worker.StreamOptions{Replicas: c.Replicas})
}

// Services are what `digitoll run` runs: the worker and the routing
// pollers of the tenants served, one tenant from the environment or those
// of a tenants file, built the same way (see tenancy): each tenant with its
// own Toll client, token cache and handlers.
type Services struct {
	// Worker consumes the tenants' lanes.
	Worker *worker.Worker
	// tenants serves the tenants, and runs their routing pollers.
	tenants *tenancy
	// Telemetry holds the metrics to serve at /metrics and the tracer
	// provider.
	Telemetry Telemetry

	// shutdown flushes the tracer provider (see Shutdown).
	shutdown func(context.Context) error
}

// TenantServices are the services of one tenant.
type TenantServices struct {
	// Toll is the client the tenant's handlers and routing poller call
	// Toll through, with the tenant's token cache.
	Toll *toll.Client
	// Handlers are the tenant's handlers, one per kind it may use. The
	// benchmarks call them without the worker, and tune the polling of
	// the movement handler, before Run.
	Handlers map[contract.Kind]handlers.Handler
}

// Tenant returns the services of the named tenant as now configured, and
// false when it is not served.
func (s *Services) Tenant(name string) (TenantServices, bool) {
	t := s.tenants.table.Load().byName[name]
	if t == nil {
		return TenantServices{}, false
	}
	hs := make(map[contract.Kind]handlers.Handler, len(t.handlers))
	for k, h := range t.handlers {
		hs[k] = h
	}
	return TenantServices{Toll: t.client, Handlers: hs}, true
}

// RoutingHealth is nil while a routing feed of some tenant is polling (or
// routing is off), and otherwise names each tenant's feeds paused by a
// failure only an operator can fix: the routing check of /readyz. As with
// the kinds' lanes, it fails only when every tenant's routing has a paused
// feed.
func (s *Services) RoutingHealth() error {
	return s.tenants.routingHealth()
}

// NewServices wires the services of cfg on js. It creates the routing
// markers bucket when routing is enabled for a tenant; EnsureStreams
// creates the rest.
func NewServices(ctx context.Context, cfg *config.Config, js jetstream.JetStream, logger *slog.Logger) (*Services, error) {
	tel, shutdown, err := NewTelemetry(ctx, cfg)
	if err != nil {
		return nil, err
	}
	s, err := newServices(ctx, cfg, js, tel, logger)
	if err != nil {
		// Nothing was traced yet; the exporter only has to stop.
		_ = shutdown(context.WithoutCancel(ctx))
		return nil, err
	}
	s.shutdown = shutdown
	return s, nil
}

// newServices is NewServices reporting to tel.
func newServices(ctx context.Context, cfg *config.Config, js jetstream.JetStream, tel Telemetry, logger *slog.Logger) (*Services, error) {
	hc := HTTPClient(cfg.Worker)
	hc.Transport = telemetry.Transport(hc.Transport, tel.Metrics)
	var limiter toll.Limiter
	var err error
	if hc.Transport, limiter, err = limitTollCalls(cfg, hc.Transport, logger); err != nil {
		return nil, err
	}
	ty, err := newTenancy(cfg, js, hc, limiter, tel, logger)
	if err != nil {
		return nil, err
	}
	// A tenant's poller starts with the services; one that could not make
	// the bucket would only log it, so a fault of NATS stops start-up.
	if ty.routingEnabled() {
		if _, err := routing.EnsureBucket(ctx, js, cfg.NATS.Replicas); err != nil {
			return nil, err
		}
	}
	w, err := newWorker(cfg, js, ty.handlers(), ty, tel, logger)
	if err != nil {
		return nil, err
	}
	if err := watchLanes(tel.Metrics, w, js); err != nil {
		return nil, err
	}
	return &Services{Worker: w, Telemetry: tel, tenants: ty}, nil
}

// watchLanes registers the metrics of each kind and tenant read at scrape
// time: whether it is paused and its backlog in the submit stream.
func watchLanes(m *telemetry.Metrics, w *worker.Worker, js jetstream.JetStream) error {
	if m == nil {
		return nil
	}
	if err := m.WatchPauses(func() []telemetry.LanePause { return lanePauses(w.Status()) }); err != nil {
		return err
	}
	return m.WatchBacklog(js, contract.StreamSubmit)
}

// lanePauses turns the worker's status into the pause metrics' lanes.
func lanePauses(st []worker.KindStatus) []telemetry.LanePause {
	out := make([]telemetry.LanePause, len(st))
	for i, s := range st {
		out[i] = telemetry.LanePause{Kind: string(s.Kind), Tenant: s.Tenant, Paused: s.Paused, Reason: s.Reason}
	}
	return out
}

// Shutdown flushes the spans not yet exported, within ctx. Call it once
// Run has returned.
func (s *Services) Shutdown(ctx context.Context) error {
	if s.shutdown == nil {
		return nil
	}
	return s.shutdown(ctx)
}

// Run runs the services until ctx is done, or until one of them fails,
// which stops the other.
func (s *Services) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var pollErr error
	var wg sync.WaitGroup
	wg.Go(func() {
		if pollErr = s.tenants.run(ctx); pollErr != nil {
			cancel()
		}
	})
	err := s.Worker.Run(ctx)
	cancel()
	wg.Wait()
	return errors.Join(err, pollErr)
}
