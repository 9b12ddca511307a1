// Package natstest starts real embedded NATS servers with JetStream for
// tests: never a mock of NATS.
package natstest

import (
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/digitoll/digitoll-worker/embednats"
)

// Start starts an embedded server with JetStream on a random loopback
// port, storing in dir (a new temporary directory when dir is ""), and
// returns it with a JetStream context on a connection of its own. The
// connection closes and the server shuts down when the test ends.
func Start(t testing.TB, dir string) (*embednats.Server, jetstream.JetStream) {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	srv, err := embednats.Start(embednats.Options{Dir: dir, Port: embednats.RandomPort})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	return srv, Connect(t, srv)
}

// Connect returns a JetStream context on a new connection to srv, closed
// when the test ends.
func Connect(t testing.TB, srv *embednats.Server) jetstream.JetStream {
	t.Helper()
	nc, err := srv.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}
