package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/embednats"
	"github.com/digitoll/digitoll-worker/handlers"
	"github.com/digitoll/digitoll-worker/internal/natstest"
)

// env is a real embedded server with the streams created.
type env struct {
	srv *embednats.Server
	js  jetstream.JetStream
	kv  jetstream.KeyValue
}

func newEnv(t testing.TB) *env {
	t.Helper()
	srv, js := natstest.Start(t, "")
	ctx := testCtx(t)
	if err := EnsureStreams(ctx, js, StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, StateBucket)
	if err != nil {
		t.Fatal(err)
	}
	return &env{srv: srv, js: js, kv: kv}
}

// conn is a connection of its own to e's server, closed when the test
// ends (closing it before is harmless).
func (e *env) conn(t testing.TB) *nats.Conn {
	t.Helper()
	nc, err := e.srv.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// fakeHandler records its calls and does what behaviour says.
type fakeHandler struct {
	servesAll
	behaviour func(ctx context.Context, req handlers.Request) (handlers.Outcome, error)

	mu    sync.Mutex
	calls map[string]int
	reqs  []handlers.Request
}

func (f *fakeHandler) Handle(ctx context.Context, req handlers.Request) (handlers.Outcome, error) {
	f.mu.Lock()
	if f.calls == nil {
		f.calls = map[string]int{}
	}
	f.calls[req.Submission.ID]++
	f.reqs = append(f.reqs, req)
	f.mu.Unlock()
	return f.behaviour(ctx, req)
}

func (f *fakeHandler) callsOf(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[id]
}

func (f *fakeHandler) totalCalls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.reqs)
}

func (f *fakeHandler) requests() []handlers.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]handlers.Request(nil), f.reqs...)
}

// sendingFirst is a fakeHandler that, like the real handlers, records
// Sending before a new Toll call and makes it only if that succeeds: its
// counts are the calls that reached Toll. A first delivery does not read
// the state record (openState), so it may run the handler for a
// submission that has one; the refused Sending stops it there.
type sendingFirst struct{ fakeHandler }

func (f *sendingFirst) Handle(ctx context.Context, req handlers.Request) (handlers.Outcome, error) {
	if req.RequestID == "" {
		if err := req.Journal.Sending(ctx); err != nil {
			return handlers.Outcome{}, err
		}
	}
	return f.fakeHandler.Handle(ctx, req)
}

func accept(_ context.Context, req handlers.Request) (handlers.Outcome, error) {
	return handlers.Outcome{Status: contract.StatusAccepted, MRN: "25NO4TU2HUD59UCBT8", RequestID: "req-" + req.Submission.ID}, nil
}

// running is a worker whose Run goes on in a goroutine.
type running struct {
	w      *Worker
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	err    error
}

// wait returns Run's error once it has returned.
func (r *running) wait() error {
	r.once.Do(func() {
		select {
		case r.err = <-r.done:
		case <-time.After(60 * time.Second):
			r.err = errors.New("Run did not return within 60s of cancel")
		}
	})
	return r.err
}

// stop cancels Run's context and waits for Run to return.
func (r *running) stop() error {
	r.cancel()
	return r.wait()
}

// withTenant gives cfg, when it names no tenants, the one tenant most
// tests publish for: contract.DefaultTenant, with the kinds of its
// handlers and the whole pool, as digitoll gives the tenant of its
// environment.
func withTenant(cfg Config) Config {
	if cfg.Tenants != nil {
		return cfg
	}
	var kinds []contract.Kind
	for k := range cfg.Handlers {
		kinds = append(kinds, k)
	}
	n := cfg.Concurrency
	if n == 0 {
		n = DefaultConcurrency
	}
	cfg.Tenants = TenantList{{Name: contract.DefaultTenant, Kinds: kinds, Concurrency: n}}
	return cfg
}

// runWorker runs a worker until stopped or the test ends; without
// Tenants, for contract.DefaultTenant (withTenant).
func runWorker(t *testing.T, js jetstream.JetStream, cfg Config) *running {
	t.Helper()
	w, err := New(js, withTenant(cfg))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{w: w, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- w.Run(ctx) }()
	t.Cleanup(func() { _ = r.stop() })
	return r
}

// startWorker runs a worker and returns its stop.
func startWorker(t *testing.T, js jetstream.JetStream, cfg Config) (stop func() error) {
	t.Helper()
	return runWorker(t, js, cfg).stop
}

func roadBody(id string) []byte {
	return fmt.Appendf(nil, `{"id":%q,"operation":"create","level":"house-consignment","declaration":{"n":1},"metadata":{"ref":%q}}`, id, "ref-"+id)
}

func submit(t *testing.T, js jetstream.JetStream, subject, msgID string, body []byte, h nats.Header) {
	t.Helper()
	m := &nats.Msg{Subject: subject, Data: body, Header: nats.Header{}}
	for k, v := range h {
		m.Header[k] = v
	}
	opts := []jetstream.PublishOpt{}
	if msgID != "" {
		opts = append(opts, jetstream.WithMsgID(msgID))
	}
	if _, err := js.PublishMsg(testCtx(t), m, opts...); err != nil {
		t.Fatal(err)
	}
}

// collect reads want messages of subject filter from stream with an
// ordered consumer, failing the test if they do not arrive in time.
func collect(t *testing.T, js jetstream.JetStream, stream, filter string, want int, timeout time.Duration) []jetstream.Msg {
	t.Helper()
	ctx := testCtx(t)
	c, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}})
	if err != nil {
		t.Fatal(err)
	}
	it, err := c.Messages()
	if err != nil {
		t.Fatal(err)
	}
	defer it.Stop()
	deadline := time.Now().Add(timeout)
	var got []jetstream.Msg
	for len(got) < want {
		left := time.Until(deadline)
		if left <= 0 {
			t.Fatalf("got %d of %d messages on %s within %s", len(got), want, filter, timeout)
		}
		m, err := it.Next(jetstream.NextMaxWait(left))
		if err != nil {
			t.Fatalf("got %d of %d messages on %s: %v", len(got), want, filter, err)
		}
		got = append(got, m)
	}
	return got
}

// count is how many messages stream holds on subjects matching filter.
func count(t *testing.T, js jetstream.JetStream, stream, filter string) int {
	t.Helper()
	ctx := testCtx(t)
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(filter))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range info.State.Subjects {
		n += int(c)
	}
	return n
}

// eventually polls cond until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		<-tick.C
	}
}

func decodeResult(t *testing.T, m jetstream.Msg) contract.Result {
	t.Helper()
	var r contract.Result
	if err := json.Unmarshal(m.Data(), &r); err != nil {
		t.Fatalf("result %q: %v", m.Data(), err)
	}
	return r
}

// logRecorder is a slog handler that keeps records with their attributes.
type logRecorder struct {
	mu    *sync.Mutex
	lines *[]map[string]string
	attrs []slog.Attr
}

func newLogRecorder() *logRecorder {
	return &logRecorder{mu: &sync.Mutex{}, lines: &[]map[string]string{}}
}

func (r *logRecorder) Enabled(context.Context, slog.Level) bool { return true }

func (r *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	line := map[string]string{"msg": rec.Message, "level": rec.Level.String()}
	for _, a := range r.attrs {
		line[a.Key] = a.Value.String()
	}
	rec.Attrs(func(a slog.Attr) bool {
		line[a.Key] = a.Value.String()
		return true
	})
	r.mu.Lock()
	defer r.mu.Unlock()
	*r.lines = append(*r.lines, line)
	return nil
}

func (r *logRecorder) WithAttrs(as []slog.Attr) slog.Handler {
	return &logRecorder{mu: r.mu, lines: r.lines, attrs: append(append([]slog.Attr(nil), r.attrs...), as...)}
}

func (r *logRecorder) WithGroup(string) slog.Handler { return r }

func (r *logRecorder) find(msgContains string) []map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []map[string]string
	for _, l := range *r.lines {
		if strings.Contains(l["msg"], msgContains) {
			out = append(out, l)
		}
	}
	return out
}

// servesAll gives a test handler the Handler methods of one that admits
// every tenant and whose probes pass.
type servesAll struct{}

func (servesAll) Admit(string) error                        { return nil }
func (servesAll) ProbeTenant(context.Context, string) error { return nil }

// ownProbe is a handler of package handlers, which probes its kind
// without a tenant: the handler it has for one tenant.
type ownProbe interface {
	handlers.Handler
	Probe(ctx context.Context) error
}

// probedBy makes h a Handler that serves every tenant with h and probes
// each with h's own probe.
func probedBy(h ownProbe) Handler { return probing{h} }

type probing struct{ ownProbe }

func (probing) Admit(string) error { return nil }

func (p probing) ProbeTenant(ctx context.Context, _ string) error { return p.Probe(ctx) }
