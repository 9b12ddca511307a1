package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/digitoll/digitoll-worker/config"
	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/embednats"
	"github.com/digitoll/digitoll-worker/health"
	"github.com/digitoll/digitoll-worker/telemetry"
	"github.com/digitoll/digitoll-worker/worker"
)

// newLogger is the logger of c; lines logged with the context of a traced
// message carry its traceId and spanId.
func newLogger(env *environment, c config.Log) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.Level}
	if c.Format == "json" {
		return slog.New(telemetry.LogHandler(slog.NewJSONHandler(env.stderr, opts)))
	}
	return slog.New(telemetry.LogHandler(slog.NewTextHandler(env.stderr, opts)))
}

// natsConn is a NATS connection and, when no URL was configured, the
// embedded server behind it.
type natsConn struct {
	nc       *nats.Conn
	js       jetstream.JetStream
	embedded *embednats.Server
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
		bopts, err := embeddedOptions(c, logger)
		if err != nil {
			return nil, err
		}
		srv, err := embednats.Start(bopts)
		var inUse *embednats.StoreInUseError
		if errors.As(err, &inUse) {
			by := "another digitoll process"
			if inUse.PID != 0 {
				by += fmt.Sprintf(" (pid %d)", inUse.PID)
			}
			return nil, fmt.Errorf("DIGITOLL_NATS_DIR %s is in use by %s: stop it, give this one a DIGITOLL_NATS_DIR of its own, or set DIGITOLL_NATS_URL to connect to the server it runs",
				inUse.Dir, by)
		}
		if errors.Is(err, embednats.ErrPortInUse) {
			return nil, fmt.Errorf("DIGITOLL_NATS_PORT: %w: another nats-server or digitoll listens there; set DIGITOLL_NATS_PORT to a free port (-1: any), or DIGITOLL_NATS_URL to connect to that server", err)
		}
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
	security, err := natsSecurity(c, out.embedded)
	if err != nil {
		out.Close()
		return nil, err
	}
	nc, err := nats.Connect(url, append(opts, security...)...)
	if err != nil {
		out.Close()
		return nil, fmt.Errorf("connect to NATS at %s: %w%s", redactURL(url), err, natsHint(err))
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

// readinessChecks are the conditions of /readyz: NATS connected, the
// contract's streams present, no kind paused, and no routing feed paused.
func readinessChecks(conn *natsConn, w *worker.Worker, routingHealth func() error) []health.NamedCheck {
	checks := []health.NamedCheck{
		{Name: "nats", Check: func(context.Context) error {
			if !conn.nc.IsConnected() {
				return fmt.Errorf("not connected (%s)", conn.nc.Status())
			}
			return nil
		}},
		{Name: "streams", Check: func(ctx context.Context) error {
			if !conn.nc.IsConnected() {
				// Asking would only wait out the check's timeout.
				return errors.New("unknown while NATS is not connected")
			}
			for _, s := range []string{contract.StreamSubmit, contract.StreamResults, contract.StreamDLQ, contract.StreamRouting} {
				if _, err := conn.js.Stream(ctx, s); err != nil {
					return fmt.Errorf("%s: %w", s, err)
				}
			}
			return nil
		}},
	}
	for _, kind := range w.Kinds() {
		checks = append(checks, health.NamedCheck{Name: string(kind), Check: func(context.Context) error {
			return w.KindHealth(kind)
		}})
	}
	// A paused routing feed loses no signal (the feed waits in Toll),
	// but no TO_CONTROL reaches anyone until an operator acts.
	checks = append(checks, health.NamedCheck{Name: "routing", Check: func(context.Context) error { return routingHealth() }})
	return checks
}
