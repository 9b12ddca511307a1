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
// documents named by an object are read from js's Object Store.
func NewHandlers(cfg *config.Config, js jetstream.JetStream, client *toll.Client, tel Telemetry, logger *slog.Logger) (map[contract.Kind]handlers.Handler, error) {
	deps := handlers.Deps{
		Toll:     client,
		Files:    objectfiles.New(js),
		Retry:    handlers.RetryPolicy{MaxElapsed: cfg.Worker.RetryBudget},
		Poll:     handlers.PollPolicy{Timeout: cfg.Worker.ValidationTimeout},
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

// NewWorker returns a worker for cfg that carries out each kind with its
// handler in hs.
func NewWorker(cfg *config.Config, js jetstream.JetStream, hs map[contract.Kind]handlers.Handler, tel Telemetry, logger *slog.Logger) (*worker.Worker, error) {
	return newWorker(cfg, js, hs, nil, tel, logger)
}

// newWorker is NewWorker serving the tenants of tenants, each through
// lanes of its own, or with tenants nil one consumer per kind.
func newWorker(cfg *config.Config, js jetstream.JetStream, hs map[contract.Kind]handlers.Handler, tenants worker.TenantSource, tel Telemetry, logger *slog.Logger) (*worker.Worker, error) {
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

// Services are what `digitoll run` runs: the worker and, when enabled,
// the routing poller, sharing the tenant's Toll client (and so its token
// cache); with a tenants file, one client and poller per tenant.
type Services struct {
	// Toll is the client every service calls Toll through; nil with a
	// tenants file, where each tenant has its own.
	Toll *toll.Client
	// Handlers are the worker's handlers, one per enabled kind. The
	// benchmarks call them without the worker, and tune the polling of
	// the movement handler, before Run.
	Handlers map[contract.Kind]handlers.Handler
	// Worker consumes the enabled kinds.
	Worker *worker.Worker
	// Poller is nil when routing is off, and with a tenants file, whose
	// tenants' pollers come and go with the file.
	Poller *routing.Poller
	// tenants serves the tenants file; nil for the single tenant of the
	// environment.
	tenants *tenancy
	// Telemetry holds the metrics to serve at /metrics and the tracer
	// provider.
	Telemetry Telemetry

	// shutdown flushes the tracer provider (see Shutdown).
	shutdown func(context.Context) error
}

// RoutingHealth is nil while every routing feed is polling (or routing is
// off), and otherwise names each feed paused by a failure only an operator
// can fix: the routing check of /readyz. With a tenants file it fails only
// when every tenant's routing has a paused feed, naming the tenants.
func (s *Services) RoutingHealth() error {
	switch {
	case s.Poller != nil:
		return s.Poller.Health()
	case s.tenants != nil:
		return s.tenants.routingHealth()
	}
	return nil
}

// NewServices wires the services of cfg on js. It creates the routing
// markers bucket when routing is enabled; EnsureStreams creates the rest.
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
	if cfg.TenantsFile != "" {
		return newTenantServices(cfg, js, hc, limiter, tel, logger)
	}
	signer, err := LoadSigner(cfg.Tenant)
	if err != nil {
		return nil, err
	}
	client, tokens := tollClient(cfg, hc, signer, logger)
	client.Limiter = limiter
	hs, err := NewHandlers(cfg, js, client, tel, logger)
	if err != nil {
		return nil, err
	}
	w, err := NewWorker(cfg, js, onlyTenant(cfg.Tenant.Name, hs), tel, logger)
	if err != nil {
		return nil, err
	}
	if err := watch(tel.Metrics, cfg, js, signer, tokens); err != nil {
		return nil, err
	}
	if err := watchLanes(tel.Metrics, w, js, cfg.Tenant.Name); err != nil {
		return nil, err
	}
	s := &Services{Toll: client, Handlers: hs, Worker: w, Telemetry: tel}
	if cfg.RoutingEnabled() {
		kv, err := routing.EnsureBucket(ctx, js, cfg.NATS.Replicas)
		if err != nil {
			return nil, err
		}
		s.Poller = &routing.Poller{
			JetStream: js,
			Markers:   kv,
			Tenant:    cfg.Tenant.Name,
			Toll:      client,
			Interval:  cfg.Routing.Interval,
			Logger:    logger.With("component", "routing"),
			Observer:  tel.routingObserver(),
		}
	}
	return s, nil
}

// newTenantServices wires the services of the tenants file of cfg: each
// tenant with its own signer, token cache and Toll client (see tenancy).
func newTenantServices(cfg *config.Config, js jetstream.JetStream, hc *http.Client, limiter toll.Limiter, tel Telemetry, logger *slog.Logger) (*Services, error) {
	ty, err := newTenancy(cfg, js, hc, limiter, tel, logger)
	if err != nil {
		return nil, err
	}
	hs := ty.handlers()
	w, err := newWorker(cfg, js, hs, ty, tel, logger)
	if err != nil {
		return nil, err
	}
	// The lanes' consumers come and go with the tenants; the backlog and
	// pause metrics of watchLanes stand in for the per-kind consumers'.
	if err := watchLanes(tel.Metrics, w, js, ""); err != nil {
		return nil, err
	}
	return &Services{Handlers: hs, Worker: w, Telemetry: tel, tenants: ty}, nil
}

// watchLanes registers the metrics of each kind and tenant read at scrape
// time: whether it is paused and its backlog in the submit stream. single
// is the tenant of a worker with one consumer per kind, whose pauses are
// per kind and name no tenant; "" with a tenants file.
func watchLanes(m *telemetry.Metrics, w *worker.Worker, js jetstream.JetStream, single string) error {
	if m == nil {
		return nil
	}
	if err := m.WatchPauses(func() []telemetry.LanePause { return lanePauses(w.Status(), single) }); err != nil {
		return err
	}
	return m.WatchBacklog(js, contract.StreamSubmit)
}

// lanePauses turns the worker's status into the pause metrics' lanes; a
// lane without a tenant is single's.
func lanePauses(st []worker.KindStatus, single string) []telemetry.LanePause {
	out := make([]telemetry.LanePause, len(st))
	for i, s := range st {
		tenant := s.Tenant
		if tenant == "" {
			tenant = single
		}
		out[i] = telemetry.LanePause{Kind: string(s.Kind), Tenant: tenant, Paused: s.Paused, Reason: s.Reason}
	}
	return out
}

// watch registers the metrics read at scrape time: the tenant's tokens,
// its business certificate's expiry (x5c mode) and the backlog of each
// enabled kind's consumer; and it makes the tenant the one the message
// metrics label by name.
func watch(m *telemetry.Metrics, cfg *config.Config, js jetstream.JetStream, signer *auth.Signer, tokens *auth.Cache) error {
	if m == nil {
		return nil
	}
	// The one tenant is labelled by name; any other named on a subject
	// is "unconfigured".
	m.SetTenants([]string{cfg.Tenant.Name})
	if err := m.WatchTokens(cfg.Tenant.Name, tokens); err != nil {
		return err
	}
	if notAfter, ok := signer.NotAfter(); ok {
		if err := m.WatchCertificate(cfg.Tenant.Name, notAfter); err != nil {
			return err
		}
	}
	consumers := map[string]string{}
	for _, k := range cfg.Tenant.Kinds {
		consumers[string(k)] = worker.ConsumerName(k)
	}
	return m.WatchConsumers(js, contract.StreamSubmit, consumers)
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
	if s.tenants != nil {
		wg.Go(func() {
			if pollErr = s.tenants.run(ctx); pollErr != nil {
				cancel()
			}
		})
	}
	if s.Poller != nil {
		wg.Go(func() {
			if pollErr = s.Poller.Run(ctx); pollErr != nil {
				cancel()
			}
		})
	}
	err := s.Worker.Run(ctx)
	cancel()
	wg.Wait()
	return errors.Join(err, pollErr)
}
