package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/digitoll/digitoll-worker/config"
	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/health"
	"github.com/digitoll/digitoll-worker/natsconn"
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

// readinessChecks are the conditions of /readyz: NATS connected, the
// contract's streams present, no kind paused, and no routing feed paused.
func readinessChecks(conn *natsconn.Conn, w *worker.Worker, routingHealth func() error) []health.NamedCheck {
	checks := []health.NamedCheck{
		{Name: "nats", Check: func(context.Context) error {
			if !conn.NC.IsConnected() {
				return fmt.Errorf("not connected (%s)", conn.NC.Status())
			}
			return nil
		}},
		{Name: "streams", Check: func(ctx context.Context) error {
			if !conn.NC.IsConnected() {
				// Asking would only wait out the check's timeout.
				return errors.New("unknown while NATS is not connected")
			}
			for _, s := range []string{contract.StreamSubmit, contract.StreamResults, contract.StreamDLQ, contract.StreamRouting} {
				if _, err := conn.JS.Stream(ctx, s); err != nil {
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
