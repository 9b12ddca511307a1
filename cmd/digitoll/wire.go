package main

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

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/digitoll/digitoll-worker/auth"
	"github.com/digitoll/digitoll-worker/broker"
	"github.com/digitoll/digitoll-worker/config"
	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/handlers"
	"github.com/digitoll/digitoll-worker/ops"
	"github.com/digitoll/digitoll-worker/routing"
	"github.com/digitoll/digitoll-worker/toll"
	"github.com/digitoll/digitoll-worker/worker"
)

func newLogger(env *environment, c config.Log) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.Level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(env.stderr, opts))
	}
	return slog.New(slog.NewTextHandler(env.stderr, opts))
}

// natsConn is a NATS connection and, when no URL was configured, the
// embedded server behind it.
type natsConn struct {
	nc       *nats.Conn
	js       jetstream.JetStream
	embedded *broker.Server
}

// Close drains the connection (so acks and publishes in flight complete)
// and stops the embedded server, if any.
func (c *natsConn) Close() {
	if c.nc != nil {
		_ = c.nc.Drain()
		waitClosed(c.nc, 10*time.Second)
	}
	if c.embedded != nil {
		c.embedded.Shutdown()
	}
}

func waitClosed(nc *nats.Conn, limit time.Duration) {
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !nc.IsClosed() {
		select {
		case <-deadline.C:
			nc.Close()
			return
		case <-tick.C:
		}
	}
}

// connectNATS connects to the configured server, or starts the embedded
// one when no URL is set.
func connectNATS(c config.NATS, name string, logger *slog.Logger) (*natsConn, error) {
	out := &natsConn{}
	url := c.URL
	if url == "" {
		if err := os.MkdirAll(c.EmbeddedDir, 0o700); err != nil {
			return nil, fmt.Errorf("DIGITOLL_NATS_DIR: %w", err)
		}
		srv, err := broker.Start(broker.Options{
			Dir:        c.EmbeddedDir,
			Host:       c.EmbeddedHost,
			Port:       c.EmbeddedPort,
			SyncAlways: c.SyncAlways,
			Logger:     logger.With("component", "nats-server"),
		})
		if err != nil {
			return nil, fmt.Errorf("start embedded NATS: %w", err)
		}
		out.embedded = srv
		url = srv.ClientURL()
	}
	opts := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				logger.Warn("NATS disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) { logger.Info("NATS reconnected", "url", nc.ConnectedUrlRedacted()) }),
	}
	if c.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(c.CredsFile))
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		out.Close()
		return nil, fmt.Errorf("connect to NATS at %s: %w", redactURL(url), err)
	}
	out.nc = nc
	js, err := jetstream.New(nc)
	if err != nil {
		out.Close()
		return nil, fmt.Errorf("JetStream: %w", err)
	}
	out.js = js
	return out, nil
}

// redactURL drops user information from a NATS URL list before it is
// printed.
func redactURL(list string) string {
	parts := strings.Split(list, ",")
	for i, p := range parts {
		if at := strings.LastIndex(p, "@"); at >= 0 {
			if scheme := strings.Index(p, "://"); scheme >= 0 && scheme < at {
				parts[i] = p[:scheme+3] + "***" + p[at:]
			}
		}
	}
	return strings.Join(parts, ",")
}

// httpClient is the client for Toll and Maskinporten: keep-alive
// connections sized to the worker's concurrency, since nearly every
// in-flight message polls Toll.
func httpClient(c config.Worker) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = c.Concurrency + 16
	t.MaxIdleConnsPerHost = c.Concurrency + 16
	t.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	return &http.Client{Transport: t, Timeout: c.HTTPTimeout}
}

// loadSigner reads the tenant's key and, in x5c mode, its certificate
// chain.
func loadSigner(t config.Tenant) (*auth.Signer, error) {
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

// newTollClient builds the Toll client of the configured tenant: its
// signer, its own token cache (one Toll token per scope) and hc.
func newTollClient(cfg *config.Config, hc *http.Client, logger *slog.Logger) (*toll.Client, error) {
	signer, err := loadSigner(cfg.Tenant)
	if err != nil {
		return nil, err
	}
	tokens := auth.NewCache(auth.CacheConfig{
		Maskinporten: &auth.Maskinporten{
			TokenURL: cfg.Maskinporten.TokenURL,
			Issuer:   cfg.Maskinporten.Issuer,
			ClientID: cfg.Tenant.ClientID,
			Signer:   signer,
			HTTP:     hc,
		},
		Exchanger: &auth.Exchanger{URL: strings.TrimRight(cfg.TollBaseURL, "/") + "/access/external/oauth/token", HTTP: hc},
		Logger:    logger.With("tenant", cfg.Tenant.Name),
	})
	return &toll.Client{BaseURL: cfg.TollBaseURL, HTTP: hc, Tokens: tokens, Foreign: cfg.Tenant.Foreign, Logger: logger}, nil
}

// services are what `run` and `demo` run for the tenant: the worker and,
// when enabled, the routing poller, sharing one Toll client (and so one
// token cache).
type services struct {
	worker *worker.Worker
	// poller is nil when routing is off.
	poller *routing.Poller
}

// newServices wires the services of cfg.
func newServices(ctx context.Context, cfg *config.Config, js jetstream.JetStream, logger *slog.Logger) (*services, error) {
	client, err := newTollClient(cfg, httpClient(cfg.Worker), logger)
	if err != nil {
		return nil, err
	}
	w, err := newWorker(cfg, js, client, logger)
	if err != nil {
		return nil, err
	}
	s := &services{worker: w}
	if cfg.RoutingEnabled() {
		kv, err := routing.EnsureBucket(ctx, js, cfg.NATS.Replicas)
		if err != nil {
			return nil, err
		}
		s.poller = &routing.Poller{
			JetStream: js,
			Markers:   kv,
			Tenant:    cfg.Tenant.Name,
			Toll:      client,
			Interval:  cfg.Routing.Interval,
			Logger:    logger.With("component", "routing"),
		}
	}
	return s, nil
}

// Run runs the services until ctx is done, or until one of them fails,
// which stops the other.
func (s *services) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var pollErr error
	var wg sync.WaitGroup
	if s.poller != nil {
		wg.Go(func() {
			if pollErr = s.poller.Run(ctx); pollErr != nil {
				cancel()
			}
		})
	}
	err := s.worker.Run(ctx)
	cancel()
	wg.Wait()
	return errors.Join(err, pollErr)
}

// newWorker wires a worker for cfg: one handler per enabled kind, all
// calling Toll through client.
func newWorker(cfg *config.Config, js jetstream.JetStream, client *toll.Client, logger *slog.Logger) (*worker.Worker, error) {
	kinds := map[contract.Kind]handlers.Handler{}
	for _, k := range cfg.Tenant.Kinds {
		switch k {
		case contract.KindRoad, contract.KindAir:
			api := toll.RoadV2()
			if k == contract.KindAir {
				api = toll.AirV1()
			}
			kinds[k] = &handlers.Movement{
				API:    api,
				Toll:   client,
				Poll:   handlers.PollPolicy{Timeout: cfg.Worker.ValidationTimeout},
				Logger: logger,
			}
		case contract.KindEntry:
			kinds[k] = &handlers.Entry{Toll: client, Logger: logger}
		case contract.KindDocument:
			kinds[k] = &handlers.Document{Toll: client, Files: worker.NewObjectFiles(js), Logger: logger}
		default:
			return nil, fmt.Errorf("kind %s is not supported by this version", k)
		}
	}
	return worker.New(js, worker.Config{
		Handlers:        kinds,
		Concurrency:     cfg.Worker.Concurrency,
		AckWait:         cfg.Worker.AckWait,
		MessageDeadline: cfg.Worker.MessageDeadline,
		ShutdownGrace:   cfg.Worker.ShutdownGrace,
		Logger:          logger,
	})
}

// ensureStreams creates or updates the streams and buckets of the contract.
func ensureStreams(ctx context.Context, js jetstream.JetStream, c config.NATS) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return worker.EnsureStreams(ctx, js, worker.StreamOptions{Replicas: c.Replicas})
}

// readinessChecks are the conditions of /readyz: NATS connected, the
// contract's streams present, and no kind paused.
func readinessChecks(conn *natsConn, w *worker.Worker) []ops.NamedCheck {
	checks := []ops.NamedCheck{
		{Name: "nats", Check: func(context.Context) error {
			if !conn.nc.IsConnected() {
				return fmt.Errorf("not connected (%s)", conn.nc.Status())
			}
			return nil
		}},
		{Name: "streams", Check: func(ctx context.Context) error {
			for _, s := range []string{contract.StreamSubmit, contract.StreamResults, contract.StreamDLQ, contract.StreamRouting} {
				if _, err := conn.js.Stream(ctx, s); err != nil {
					return fmt.Errorf("%s: %w", s, err)
				}
			}
			return nil
		}},
	}
	for _, st := range w.Status() {
		kind := st.Kind
		checks = append(checks, ops.NamedCheck{Name: string(kind), Check: func(context.Context) error {
			for _, s := range w.Status() {
				if s.Kind == kind && s.Paused {
					return fmt.Errorf("paused since %s (%s): %s", s.Since.UTC().Format(time.RFC3339), s.Reason, s.Error)
				}
			}
			return nil
		}})
	}
	return checks
}
