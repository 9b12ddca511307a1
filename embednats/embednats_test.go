package embednats

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// recorder is a slog.Handler that keeps every record, for checking that
// the server's log lines arrive.
type recorder struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs = append(r.recs, rec)
	return nil
}
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *recorder) WithGroup(string) slog.Handler      { return r }

func (r *recorder) contains(level slog.Level, sub string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rec := range r.recs {
		if rec.Level == level && strings.Contains(rec.Message, sub) {
			return true
		}
	}
	return false
}

func TestStartPublishConsume(t *testing.T) {
	rec := &recorder{}
	s, err := Start(Options{Dir: t.TempDir(), Port: RandomPort, ServerName: "solo", Logger: slog.New(rec)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	if !strings.HasPrefix(s.ClientURL(), "nats://127.0.0.1:") || strings.HasSuffix(s.ClientURL(), ":4222") {
		t.Fatalf("ClientURL = %q, want a random loopback port", s.ClientURL())
	}
	if s.Name() != "solo" {
		t.Fatalf("Name = %q", s.Name())
	}
	if !rec.contains(slog.LevelDebug, "Server is ready") {
		t.Fatal("the server's notices did not reach the slog logger at debug")
	}

	nc, err := s.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "t.1", []byte("hello")); err != nil {
		t.Fatal(err)
	}
	m, err := lastMsg(ctx, js, "T", "t.1")
	if err != nil {
		t.Fatal(err)
	}
	if string(m.Data) != "hello" {
		t.Fatalf("stored %q", m.Data)
	}

	s.Shutdown()
	if s.Running() {
		t.Fatal("server still running after Shutdown")
	}
	s.Shutdown() // a second call is a no-op
}

func TestRestartKeepsMessages(t *testing.T) {
	dir := t.TempDir()
	for round := range 2 {
		s, err := Start(Options{Dir: dir, Port: RandomPort, SyncAlways: true})
		if err != nil {
			t.Fatal(err)
		}
		nc, err := s.Connect()
		if err != nil {
			s.Shutdown()
			t.Fatal(err)
		}
		js, _ := jetstream.New(nc)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if round == 0 {
			_, err = js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t"}})
			if err == nil {
				_, err = js.Publish(ctx, "t", []byte("kept"))
			}
		} else {
			var m *jetstream.RawStreamMsg
			m, err = lastMsg(ctx, js, "T", "t")
			if err == nil && string(m.Data) != "kept" {
				err = fmt.Errorf("after restart the message is %q", m.Data)
			}
		}
		cancel()
		nc.Close()
		s.Shutdown()
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
	}
}

func TestStartRejectsBadOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
	}{
		{"no dir", Options{Port: RandomPort}},
		{"bad port", Options{Dir: t.TempDir(), Port: -2}},
		{"negative payload", Options{Dir: t.TempDir(), Port: RandomPort, MaxPayload: -1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Start(tc.opts)
			if err == nil {
				s.Shutdown()
				t.Fatal("Start accepted bad options")
			}
		})
	}
}

func lastMsg(ctx context.Context, js jetstream.JetStream, stream, subject string) (*jetstream.RawStreamMsg, error) {
	st, err := js.Stream(ctx, stream)
	if err != nil {
		return nil, err
	}
	return st.GetLastMsgForSubject(ctx, subject)
}

// Two servers on one store would corrupt it: the second is refused at once,
// naming the process that holds it, and the store is free again once the
// first has shut down.
func TestStartRefusesAStoreInUse(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	first, err := Start(Options{Dir: dir, Port: RandomPort})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(first.Shutdown)

	second, err := Start(Options{Dir: dir, Port: RandomPort})
	var inUse *StoreInUseError
	if !errors.As(err, &inUse) {
		if second != nil {
			second.Shutdown()
		}
		t.Fatalf("second Start on %s: %v, want a StoreInUseError", dir, err)
	}
	if inUse.Dir != dir || inUse.PID != os.Getpid() {
		t.Errorf("refused with %+v, want dir %s pid %d", inUse, dir, os.Getpid())
	}
	if !strings.Contains(err.Error(), fmt.Sprintf("(pid %d)", os.Getpid())) {
		t.Errorf("error %q does not name the pid", err)
	}
	if !first.Running() {
		t.Error("the refused Start stopped the running server")
	}

	first.Shutdown()
	again, err := Start(Options{Dir: dir, Port: RandomPort})
	if err != nil {
		t.Fatalf("Start after the first shut down: %v", err)
	}
	again.Shutdown()
}

// A port another process listens on is refused at once, naming the port,
// rather than after the wait for a server that cannot become ready; the
// store's lock is released for the next try.
func TestStartRefusesAPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	port := ln.Addr().(*net.TCPAddr).Port
	dir := t.TempDir()

	srv, err := Start(Options{Dir: dir, Port: port})
	if !errors.Is(err, ErrPortInUse) {
		if srv != nil {
			srv.Shutdown()
		}
		t.Fatalf("Start on taken port %d: %v, want ErrPortInUse", port, err)
	}
	if !strings.Contains(err.Error(), fmt.Sprintf("127.0.0.1:%d", port)) {
		t.Errorf("error %q does not name the address", err)
	}

	ln.Close()
	srv, err = Start(Options{Dir: dir, Port: port})
	if err != nil {
		t.Fatalf("Start once the port is free: %v", err)
	}
	srv.Shutdown()
}

// Traffic counts each message once where the server takes it in and
// once per subscriber it hands it to; a request with its reply is one of
// each way more.
func TestTrafficCountsMessagesBothWays(t *testing.T) {
	s, err := Start(Options{Dir: t.TempDir(), Port: RandomPort})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	nc, err := s.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	const subscribers, msgs = 2, 5
	for range subscribers {
		if _, err := nc.SubscribeSync("traffic.>"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := nc.Subscribe("echo", func(m *nats.Msg) { _ = m.Respond(m.Data) }); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	in0, out0, err := s.Traffic()
	if err != nil {
		t.Fatal(err)
	}
	for i := range msgs {
		if err := nc.Publish(fmt.Sprintf("traffic.%d", i), []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := nc.Request("echo", []byte("ping"), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	// The request's reply came back through the server after every
	// publish before it had been taken in and handed on.
	in1, out1, err := s.Traffic()
	if err != nil {
		t.Fatal(err)
	}
	if in, want := in1-in0, int64(msgs+2); in != want {
		t.Errorf("in %d messages, want %d (%d publishes, a request and its reply)", in, want, msgs)
	}
	if out, want := out1-out0, int64(msgs*subscribers+2); out != want {
		t.Errorf("out %d messages, want %d (%d publishes to %d subscribers, a request and its reply)", out, want, msgs, subscribers)
	}
}
