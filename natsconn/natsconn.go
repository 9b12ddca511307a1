// Package natsconn connects digitoll's commands to NATS as config.NATS
// says: to a server elsewhere with its URL, TLS, credentials or NKey, and
// reconnecting for ever; or, with no URL, to an embedded server it starts
// and secures with the same settings.
package natsconn

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/digitoll/digitoll-worker/config"
	"github.com/digitoll/digitoll-worker/embednats"
)

// Conn is a NATS connection and, when no URL was configured, the
// embedded server behind it.
type Conn struct {
	// NC is the client connection.
	NC *nats.Conn
	// JS is JetStream on NC.
	JS jetstream.JetStream
	// Embedded is the server this process started, or nil when the
	// connection goes to a server elsewhere.
	Embedded *embednats.Server
}

// Close drains the connection (so acks and publishes in flight complete)
// and stops the embedded server, if any.
func (c *Conn) Close() {
	if c.NC != nil {
		_ = c.NC.Drain()
		waitClosed(c.NC, 10*time.Second)
	}
	if c.Embedded != nil {
		c.Embedded.Shutdown()
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

// Connect connects to the configured server, or starts the embedded
// one when no URL is set.
func Connect(c config.NATS, name string, logger *slog.Logger) (*Conn, error) {
	out := &Conn{}
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
		out.Embedded = srv
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
	security, err := security(c, out.Embedded)
	if err != nil {
		out.Close()
		return nil, err
	}
	nc, err := nats.Connect(url, append(opts, security...)...)
	if err != nil {
		out.Close()
		return nil, fmt.Errorf("connect to NATS at %s: %w%s", RedactURL(url), err, hint(err))
	}
	out.NC = nc
	js, err := jetstream.New(nc)
	if err != nil {
		out.Close()
		return nil, fmt.Errorf("JetStream: %w", err)
	}
	out.JS = js
	return out, nil
}

// RedactURL drops user information from a NATS URL list before it is
// printed.
func RedactURL(list string) string {
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
