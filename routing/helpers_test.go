package routing

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/digitoll/digitoll-worker/auth"
	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/internal/buftest"
	"github.com/digitoll/digitoll-worker/internal/natstest"
	"github.com/digitoll/digitoll-worker/simulator"
	"github.com/digitoll/digitoll-worker/toll"
	"github.com/digitoll/digitoll-worker/worker"
)

const (
	scopeEntry = "toll:movement/entry"
	scopeRoad  = "toll:movement/road/v2"
	house      = contract.FeedHouseConsignment
	transport  = contract.FeedTransport
	// pageSize is the simulator's page size in these tests, so that a
	// few signals make several pages.
	pageSize = 3
)

// env is a real embedded NATS server with the worker's streams and the
// marker bucket, and the simulator.
type env struct {
	js   jetstream.JetStream
	kv   jetstream.KeyValue
	sim  *simulator.Server
	logs *buftest.Buffer
}

func newEnv(t *testing.T) *env {
	t.Helper()
	_, js := natstest.Start(t, "")
	ctx := testCtx(t)
	if err := worker.EnsureStreams(ctx, js, worker.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	kv, err := EnsureBucket(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	sim, err := simulator.Start(simulator.Config{RoutingPageSize: pageSize}, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	return &env{js: js, kv: kv, sim: sim, logs: &buftest.Buffer{}}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// client registers an integration clientID with scopes at the simulator
// and returns a Toll client with the real token chain for it.
func (e *env) client(t *testing.T, clientID string, scopes ...string) *toll.Client {
	t.Helper()
	key, err := simulator.WriteDemoKey(t.TempDir(), clientID)
	if err != nil {
		t.Fatal(err)
	}
	e.sim.AddClient(key.Client(scopes...))
	signer, err := auth.NewKeySigner(key.Key, key.KeyID)
	if err != nil {
		t.Fatal(err)
	}
	// A client of its own, whose idle connections are closed before the
	// simulator: a request cancelled while dialling leaves a connection
	// that the simulator's shutdown would wait 5 s for.
	hc := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	t.Cleanup(hc.CloseIdleConnections)
	tokens := auth.NewCache(auth.CacheConfig{
		Maskinporten: &auth.Maskinporten{TokenURL: e.sim.TokenURL(), Issuer: e.sim.Issuer(), ClientID: clientID, Signer: signer, HTTP: hc},
		Exchanger:    &auth.Exchanger{URL: e.sim.TollBaseURL() + "/access/external/oauth/token", HTTP: hc},
	})
	t.Cleanup(tokens.Close)
	return &toll.Client{BaseURL: e.sim.TollBaseURL(), HTTP: hc, Tokens: tokens, Timeout: 5 * time.Second}
}

// poller returns a poller for tenant with short pauses.
func (e *env) poller(tenant string, c Toll, feeds ...contract.Feed) *Poller {
	return &Poller{
		JetStream:        e.js,
		Markers:          e.kv,
		Tenant:           tenant,
		Feeds:            feeds,
		Toll:             c,
		Interval:         20 * time.Millisecond,
		PageSize:         pageSize,
		RetryMin:         5 * time.Millisecond,
		RetryMax:         50 * time.Millisecond,
		ConfigRetryDelay: 50 * time.Millisecond,
		Logger:           slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
}

// running is a Run in a goroutine.
type running struct {
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	err    error
}

// start runs p until stop (or the end of the test).
func start(t *testing.T, p *Poller) *running {
	ctx, cancel := context.WithCancel(context.Background())
	return startCtx(t, ctx, cancel, p)
}

// startCtx runs p with ctx, which cancel ends, so that hooks can cancel it.
func startCtx(t *testing.T, ctx context.Context, cancel context.CancelFunc, p *Poller) *running {
	r := &running{cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- p.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop cancels the run and waits for Run to return; Run must return nil.
func (r *running) stop(t *testing.T) {
	t.Helper()
	r.once.Do(func() {
		r.cancel()
		select {
		case r.err = <-r.done:
		case <-time.After(10 * time.Second):
			r.err = errors.New("Run did not return within 10s of its context ending")
		}
	})
	if r.err != nil {
		t.Errorf("Run: %v", r.err)
	}
}

// waitDone waits for a run whose context a hook cancels.
func (r *running) waitDone(t *testing.T) {
	t.Helper()
	select {
	case r.err = <-r.done:
		r.once.Do(func() {})
		if r.err != nil {
			t.Fatalf("Run: %v", r.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return within 10s")
	}
}

// waitFor polls cond until it holds, failing the test after 20 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

// marker reads the saved marker of tenant's feed; "" if none.
func (e *env) marker(t *testing.T, tenant string, feed contract.Feed) string {
	t.Helper()
	entry, err := e.kv.Get(testCtx(t), MarkerKey(tenant, feed))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(entry.Value())
}

// messages lists the stream's messages on subject, in stream order.
func (e *env) messages(t *testing.T, subject string) []*jetstream.RawStreamMsg {
	t.Helper()
	ctx := testCtx(t)
	stream, err := e.js.Stream(ctx, contract.StreamRouting)
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && seq > 0; seq++ {
		m, err := stream.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if m.Subject == subject {
			out = append(out, m)
		}
	}
	return out
}

// addSignals appends n synthetic signals to clientID's feed.
func (e *env) addSignals(t *testing.T, clientID string, feed contract.Feed, n int) {
	t.Helper()
	if err := e.sim.AddRoutingSignals(clientID, string(feed), n); err != nil {
		t.Fatal(err)
	}
}

// feedSignals reads the whole of feed through c, page by page.
func feedSignals(t *testing.T, c *toll.Client, feed contract.Feed) []toll.RoutingSignal {
	t.Helper()
	var all []toll.RoutingSignal
	marker := ""
	for range 1000 {
		page, err := c.Routing(testCtx(t), feed, marker)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			return all
		}
		all = append(all, page...)
		marker = page[len(page)-1].ID
	}
	t.Fatal("feed did not end within 1000 pages")
	return nil
}

// checkExactlyOnce checks that msgs are want, in order, each once, with
// the body unchanged and the headers of the contract.
func checkExactlyOnce(t *testing.T, tenant string, msgs []*jetstream.RawStreamMsg, want []toll.RoutingSignal) {
	t.Helper()
	got := make([]string, len(msgs))
	for i, m := range msgs {
		got[i] = m.Header.Get(HeaderRoutingID)
	}
	wantIDs := make([]string, len(want))
	for i, s := range want {
		wantIDs[i] = s.ID
	}
	if strings.Join(got, " ") != strings.Join(wantIDs, " ") {
		t.Fatalf("stream holds signals\n%v\nwant each once, in feed order\n%v", got, wantIDs)
	}
	for i, m := range msgs {
		s := want[i]
		if !bytes.Equal(m.Data, s.Raw) {
			t.Errorf("message %d body %s, want the signal unchanged %s", i, m.Data, s.Raw)
		}
		for h, v := range map[string]string{
			"Nats-Msg-Id":               contract.MsgID(tenant, s.ID),
			HeaderRouting:               s.Routing,
			contract.HeaderResultTenant: tenant,
		} {
			if m.Header.Get(h) != v {
				t.Errorf("message %d header %s = %q, want %q", i, h, m.Header.Get(h), v)
			}
		}
	}
}
