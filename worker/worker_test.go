package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/failure"
	"github.com/digitoll/digitoll-worker/handlers"
	"github.com/digitoll/digitoll-worker/internal/clocktest"
)

var roadSubject = contract.SubmitSubject(contract.KindRoad, contract.DefaultTenant)

const roadResults = "digitoll.result.road.default"

func TestManyMessagesGetOneResultEach(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const n = 200
	rec := newLogRecorder()
	h := &fakeHandler{behaviour: accept}
	stop := startWorker(t, e.js, Config{
		Handlers:    map[contract.Kind]Handler{contract.KindRoad: h},
		Concurrency: 16,
		Logger:      slog.New(rec),
	})
	for i := range n {
		id := fmt.Sprintf("acme:%03d", i) // ':' is valid in ids, not in KV keys
		submit(t, e.js, roadSubject, contract.MsgID("default", id), roadBody(id), nats.Header{
			"traceparent":      {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
			"tracestate":       {"vendor=x"},
			"Digitoll-Shipper": {"acme"},
			"X-Not-Carried":    {"no"},
		})
	}

	msgs := collect(t, e.js, contract.StreamResults, roadResults, n, 60*time.Second)
	eventually(t, 10*time.Second, "the submit stream to empty", func() bool {
		return count(t, e.js, contract.StreamSubmit, contract.SubjectsSubmit) == 0
	})
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got := count(t, e.js, contract.StreamResults, roadResults); got != n {
		t.Fatalf("results stream holds %d results, want %d", got, n)
	}

	seen := map[string]bool{}
	for _, m := range msgs {
		r := decodeResult(t, m)
		if seen[r.ID] {
			t.Fatalf("second result for %s", r.ID)
		}
		seen[r.ID] = true
		if r.Status != contract.StatusAccepted || r.Tenant != "default" || r.Kind != contract.KindRoad ||
			r.Operation != contract.OpCreate || r.Level != contract.LevelHouseConsignment ||
			r.MRN != "25NO4TU2HUD59UCBT8" || r.RequestID != "req-"+r.ID || r.Attempts != 1 ||
			r.Metadata["ref"] != "ref-"+r.ID {
			t.Fatalf("result %+v", r)
		}
		if r.ReceivedAt.IsZero() || r.CompletedAt.Before(r.ReceivedAt) {
			t.Fatalf("result times received %s completed %s", r.ReceivedAt, r.CompletedAt)
		}
		if !bytes.Contains(m.Data(), []byte(`"errors":[]`)) || !bytes.Contains(m.Data(), []byte(`"incompleteDocumentation":[]`)) {
			t.Fatalf("lists must be [] not null: %s", m.Data())
		}
		hd := m.Headers()
		for k, want := range map[string]string{
			contract.HeaderMsgID:        contract.MsgID("default", r.ID),
			"traceparent":               "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
			"tracestate":                "vendor=x",
			"Digitoll-Shipper":          "acme",
			contract.HeaderResultStatus: "accepted",
		} {
			if got := hd.Get(k); got != want {
				t.Fatalf("result header %s = %q, want %q", k, got, want)
			}
		}
		if hd.Get("X-Not-Carried") != "" {
			t.Fatal("a non-Digitoll header was carried to the result")
		}
	}
	if len(seen) != n {
		t.Fatalf("%d distinct ids, want %d", len(seen), n)
	}
	if h.totalCalls() != n {
		t.Fatalf("handler called %d times for %d messages", h.totalCalls(), n)
	}
	lines := rec.find("result published")
	if len(lines) != n {
		t.Fatalf("%d 'result published' log lines, want %d", len(lines), n)
	}
	for _, l := range lines[:1] {
		for _, k := range []string{"id", "kind", "tenant", "operation", "declarationLevel", "requestId", "mrn"} {
			if l[k] == "" {
				t.Fatalf("log line %v lacks %s", l, k)
			}
		}
	}
}

func TestHandlersRunConcurrently(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const n = 8
	var inFlight atomic.Int32
	allIn := make(chan struct{})
	var once sync.Once
	h := &fakeHandler{behaviour: func(ctx context.Context, req handlers.Request) (handlers.Outcome, error) {
		if inFlight.Add(1) == n {
			once.Do(func() { close(allIn) })
		}
		select {
		case <-allIn:
			return accept(ctx, req)
		case <-ctx.Done():
			return handlers.Outcome{}, ctx.Err()
		}
	}}
	startWorker(t, e.js, Config{
		Handlers:    map[contract.Kind]Handler{contract.KindRoad: h},
		Concurrency: n,
	})
	for i := range n {
		submit(t, e.js, roadSubject, "", roadBody("c"+strconv.Itoa(i)), nil)
	}
	select {
	case <-allIn:
	case <-time.After(30 * time.Second):
		t.Fatalf("only %d handlers were ever in flight at once, want %d", inFlight.Load(), n)
	}
	for _, m := range collect(t, e.js, contract.StreamResults, roadResults, n, 30*time.Second) {
		if r := decodeResult(t, m); r.Status != contract.StatusAccepted || r.Attempts != 1 {
			t.Fatalf("result %+v", r)
		}
	}
}

func TestUnreadableMessagesAreDeadLettered(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	h := &fakeHandler{behaviour: accept}
	startWorker(t, e.js, Config{Handlers: map[contract.Kind]Handler{contract.KindRoad: h}})

	hdr := nats.Header{"Digitoll-Shipper": {"acme"}, "X-Custom": {"a", "b"}, "traceparent": {"00-aa-bb-01"}}
	cases := []struct {
		name, subject, id, dlqSubject string
		body                          []byte
		wantResult                    bool
	}{
		{"not json", roadSubject, "", "digitoll.dlq.road.default", []byte("{not json"), false},
		{"unknown field", roadSubject, "u1", "digitoll.dlq.road.default",
			[]byte(`{"id":"u1","operation":"create","level":"transport","declaration":{},"colour":"red"}`), true},
		{"no level", roadSubject, "u2", "digitoll.dlq.road.default",
			[]byte(`{"id":"u2","operation":"create","declaration":{}}`), true},
		{"bad tenant", "digitoll.submit.road.NOT_A_TENANT", "", "digitoll.dlq.road." + contract.InvalidTenant, roadBody("u3"), false},
	}
	for _, tc := range cases {
		submit(t, e.js, tc.subject, "orig/"+tc.name, tc.body, hdr)
	}
	dead := map[string]jetstream.Msg{} // by original stream sequence
	for _, m := range collect(t, e.js, contract.StreamDLQ, contract.SubjectsDLQ, len(cases), 20*time.Second) {
		dead[m.Headers().Get(contract.HeaderOriginalStreamSeq)] = m
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := dead[strconv.Itoa(i+1)]
			if m == nil {
				t.Fatalf("no dead letter for stream sequence %d", i+1)
			}
			if m.Subject() != tc.dlqSubject {
				t.Fatalf("DLQ subject %s, want %s", m.Subject(), tc.dlqSubject)
			}
			if !bytes.Equal(m.Data(), tc.body) {
				t.Fatalf("DLQ body %q, want %q", m.Data(), tc.body)
			}
			hd := m.Headers()
			if !slices.Equal(hd.Values("X-Custom"), []string{"a", "b"}) || hd.Get("Digitoll-Shipper") != "acme" || hd.Get("traceparent") != "00-aa-bb-01" {
				t.Fatalf("original headers not kept: %v", hd)
			}
			if got := hd.Get(contract.HeaderMsgID); got == "orig/"+tc.name || got == "" {
				t.Fatalf("DLQ Nats-Msg-Id %q: want the dead letter's own", got)
			}
			if hd.Get(contract.HeaderDLQReason) != reasonMalformed || hd.Get(contract.HeaderDLQError) == "" ||
				hd.Get(contract.HeaderAttempts) != "1" || hd.Get(contract.HeaderOriginalSubject) != tc.subject ||
				hd.Get(contract.HeaderOriginalStreamSeq) != strconv.Itoa(i+1) {
				t.Fatalf("DLQ headers %v", hd)
			}
			if _, err := time.Parse(time.RFC3339, hd.Get(contract.HeaderFailedAt)); err != nil {
				t.Fatalf("Failed-At: %v", err)
			}
		})
	}
	ids := map[string]bool{}
	for _, m := range collect(t, e.js, contract.StreamResults, roadResults, 2, 10*time.Second) {
		r := decodeResult(t, m)
		ids[r.ID] = true
		if r.Status != contract.StatusDeadLettered || !strings.HasPrefix(r.Note, reasonMalformed+": ") || r.Attempts != 1 {
			t.Fatalf("dead-lettered result %+v", r)
		}
		if m.Headers().Get("Digitoll-Shipper") != "acme" {
			t.Fatal("Digitoll-* header not carried to the dead-lettered result")
		}
	}
	if !ids["u1"] || !ids["u2"] {
		t.Fatalf("dead-lettered results for %v, want u1 and u2", ids)
	}
	eventually(t, 10*time.Second, "the submit stream to empty", func() bool {
		return count(t, e.js, contract.StreamSubmit, contract.SubjectsSubmit) == 0
	})
	if got := count(t, e.js, contract.StreamResults, contract.SubjectsResults); got != 2 {
		t.Fatalf("%d results, want 2 (a message without tenant or id gets none)", got)
	}
	if h.totalCalls() != 0 {
		t.Fatalf("handler called %d times for unreadable messages", h.totalCalls())
	}
}

func TestTransientFailuresAreRetried(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var n atomic.Int32
	h := &fakeHandler{behaviour: func(ctx context.Context, req handlers.Request) (handlers.Outcome, error) {
		if n.Add(1) <= 2 {
			return handlers.Outcome{}, fmt.Errorf("toll answered 503: %w", failure.ErrTransient)
		}
		return accept(ctx, req)
	}}
	startWorker(t, e.js, Config{
		Handlers:   map[contract.Kind]Handler{contract.KindRoad: h},
		RetryDelay: func(int) time.Duration { return 10 * time.Millisecond },
	})
	submit(t, e.js, roadSubject, "", roadBody("t1"), nil)
	r := decodeResult(t, collect(t, e.js, contract.StreamResults, roadResults, 1, 20*time.Second)[0])
	if r.Status != contract.StatusAccepted || r.Attempts != 3 {
		t.Fatalf("result %+v, want accepted after 3 attempts", r)
	}
	var deliveries []int
	for _, req := range h.requests() {
		deliveries = append(deliveries, req.Delivery)
	}
	if !slices.Equal(deliveries, []int{1, 2, 3}) {
		t.Fatalf("deliveries %v, want [1 2 3]", deliveries)
	}
}

func TestFailuresThatEndInTheDLQ(t *testing.T) {
	t.Parallel()
	transient := func(context.Context, handlers.Request) (handlers.Outcome, error) {
		return handlers.Outcome{}, fmt.Errorf("toll timed out: %w", failure.ErrTransient)
	}
	// The deadline case's attempt outlasts the message's deadline on a
	// clock of the test's: a deadline on the wall clock short enough for a
	// test could pass before a loaded machine delivers the message at all,
	// and the handler would never be called.
	deadlineClock := clocktest.New(time.Now())
	cases := []struct {
		name      string
		cfg       Config
		behaviour func(context.Context, handlers.Request) (handlers.Outcome, error)
		reason    string
		attempts  int // 0: any
	}{
		{"permanent", Config{}, func(context.Context, handlers.Request) (handlers.Outcome, error) {
			return handlers.Outcome{}, fmt.Errorf("toll answered 409 conflict: %w", failure.ErrPermanent)
		}, reasonPermanentHTTP, 1},
		{"poison", Config{}, func(context.Context, handlers.Request) (handlers.Outcome, error) {
			return handlers.Outcome{}, fmt.Errorf("document object missing: %w", failure.ErrPoison)
		}, reasonMalformed, 1},
		{"panic", Config{}, func(context.Context, handlers.Request) (handlers.Outcome, error) {
			panic("a handler bug this message triggers")
		}, reasonPanic, 1},
		{"deadline", Config{MessageDeadline: time.Hour, Now: deadlineClock.Now}, func(ctx context.Context, req handlers.Request) (handlers.Outcome, error) {
			deadlineClock.Advance(2 * time.Hour)
			return transient(ctx, req)
		}, reasonDeadline, 1},
		{"retries exhausted", Config{MaxAttempts: 3}, transient, reasonRetriesExhausted, 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			h := &fakeHandler{behaviour: tc.behaviour}
			cfg := tc.cfg
			cfg.Handlers = map[contract.Kind]Handler{contract.KindRoad: h}
			cfg.RetryDelay = func(int) time.Duration { return 20 * time.Millisecond }
			startWorker(t, e.js, cfg)
			body := roadBody("f1")
			submit(t, e.js, roadSubject, "", body, nil)

			m := collect(t, e.js, contract.StreamDLQ, contract.SubjectsDLQ, 1, 20*time.Second)[0]
			if got := m.Headers().Get(contract.HeaderDLQReason); got != tc.reason {
				t.Fatalf("reason %q, want %q (error %q)", got, tc.reason, m.Headers().Get(contract.HeaderDLQError))
			}
			if !bytes.Equal(m.Data(), body) {
				t.Fatal("DLQ body differs from the submission")
			}
			r := decodeResult(t, collect(t, e.js, contract.StreamResults, roadResults, 1, 10*time.Second)[0])
			if r.Status != contract.StatusDeadLettered || r.ID != "f1" || r.Note == "" {
				t.Fatalf("result %+v", r)
			}
			if tc.attempts > 0 && (r.Attempts != tc.attempts || m.Headers().Get(contract.HeaderAttempts) != strconv.Itoa(tc.attempts)) {
				t.Fatalf("attempts %d / header %s, want %d", r.Attempts, m.Headers().Get(contract.HeaderAttempts), tc.attempts)
			}
			if h.totalCalls() == 0 {
				t.Fatal("handler never called")
			}
			eventually(t, 10*time.Second, "the submit stream to empty", func() bool {
				return count(t, e.js, contract.StreamSubmit, contract.SubjectsSubmit) == 0
			})
		})
	}
}

func TestHeartbeatKeepsLongWorkFromRedelivery(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	h := &fakeHandler{behaviour: func(ctx context.Context, req handlers.Request) (handlers.Outcome, error) {
		// The simulated Toll call: three AckWaits long.
		select {
		case <-time.After(3 * time.Second):
			return accept(ctx, req)
		case <-ctx.Done():
			return handlers.Outcome{}, ctx.Err()
		}
	}}
	stop := startWorker(t, e.js, Config{
		Handlers:    map[contract.Kind]Handler{contract.KindRoad: h},
		AckWait:     time.Second,
		Concurrency: 4,
	})
	submit(t, e.js, roadSubject, "", roadBody("slow"), nil)
	r := decodeResult(t, collect(t, e.js, contract.StreamResults, roadResults, 1, 20*time.Second)[0])
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if r.Attempts != 1 || h.callsOf("slow") != 1 {
		t.Fatalf("attempts %d, handler calls %d: want one delivery", r.Attempts, h.callsOf("slow"))
	}
}

// Messages consumed as they come in are acked without a single
// in-progress ack: their AckWait is far from running out. A message that
// waited in the stream longer than a heartbeat interval gets one at once.
func TestFreshMessagesCostNoInProgressAck(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	nc := e.conn(t)
	var mu sync.Mutex
	acks := map[string]int{}
	sub, err := nc.Subscribe("$JS.ACK.>", func(m *nats.Msg) {
		mu.Lock()
		acks[string(m.Data)]++
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	ackCounts := func() (acked, inProgress int) {
		mu.Lock()
		defer mu.Unlock()
		return acks["+ACK"], acks["+WPI"]
	}

	// The default AckWait: a heartbeat every 20 s, so that a slow machine
	// cannot make a message legitimately need one.
	cfg := Config{Handlers: map[contract.Kind]Handler{contract.KindRoad: &fakeHandler{behaviour: accept}}}
	const n = 20
	stop := startWorker(t, e.js, cfg)
	for i := range n {
		submit(t, e.js, roadSubject, "", roadBody(fmt.Sprintf("fresh-%d", i)), nil)
	}
	collect(t, e.js, contract.StreamResults, roadResults, n, 20*time.Second)
	eventually(t, 10*time.Second, "every message acked", func() bool { acked, _ := ackCounts(); return acked >= n })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if acked, inProgress := ackCounts(); inProgress != 0 {
		t.Errorf("%d fresh messages, acked %d times, had %d in-progress acks; want none", n, acked, inProgress)
	}

	// A message stored a heartbeat interval (333 ms of a second's AckWait)
	// before a worker takes it.
	cfg.AckWait = time.Second
	submit(t, e.js, roadSubject, "", roadBody("stale"), nil)
	stored := time.Now()
	time.Sleep(time.Until(stored.Add(time.Second / 3)))
	stop = startWorker(t, e.js, cfg)
	collect(t, e.js, contract.StreamResults, roadResults, n+1, 20*time.Second)
	eventually(t, 10*time.Second, "the stale message acked", func() bool { acked, _ := ackCounts(); return acked >= n+1 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if _, inProgress := ackCounts(); inProgress < 1 {
		t.Errorf("a message that waited a heartbeat interval in the stream had no in-progress ack")
	}
}

func putState(t *testing.T, kv jetstream.KeyValue, id string, st state) {
	t.Helper()
	data, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(testCtx(t), stateKey("default", contract.KindRoad, id), data); err != nil {
		t.Fatal(err)
	}
}

func TestStateDecidesWhatARedeliveryDoes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	stored := contract.Result{
		ID: "done:1", Tenant: "default", Kind: contract.KindRoad, Status: contract.StatusRejected,
		RequestID: "r-old", Errors: []contract.FieldError{{Path: "$.x", Message: "bad"}}, Attempts: 1,
	}
	putState(t, e.kv, "done:1", state{Phase: phaseDone, RequestID: "r-old", Result: &stored})
	putState(t, e.kv, "sent:1", state{Phase: phaseSent, RequestID: "r-sent", Seq: 999, Delivery: 1})

	h := &sendingFirst{fakeHandler{behaviour: func(ctx context.Context, req handlers.Request) (handlers.Outcome, error) {
		return handlers.Outcome{Status: contract.StatusAccepted, MRN: "25NO4TU2HUD59UCBT8"}, nil
	}}}
	startWorker(t, e.js, Config{Handlers: map[contract.Kind]Handler{contract.KindRoad: h}})
	submit(t, e.js, roadSubject, "", roadBody("done:1"), nil)
	submit(t, e.js, roadSubject, "", roadBody("sent:1"), nil)

	byID := map[string]jetstream.Msg{}
	for _, m := range collect(t, e.js, contract.StreamResults, roadResults, 2, 20*time.Second) {
		byID[decodeResult(t, m).ID] = m
	}
	done := decodeResult(t, byID["done:1"])
	if done.Status != contract.StatusRejected || done.RequestID != "r-old" || len(done.Errors) != 1 {
		t.Fatalf("re-published result %+v, want the stored one", done)
	}
	if byID["done:1"].Headers().Get(contract.HeaderMsgID) != "default/done:1" {
		t.Fatal("re-published result lacks its Nats-Msg-Id")
	}
	if h.callsOf("done:1") != 0 {
		t.Fatal("handler called for a submission already done")
	}
	reqs := h.requests()
	if len(reqs) != 1 || reqs[0].Submission.ID != "sent:1" || reqs[0].RequestID != "r-sent" {
		t.Fatalf("handler requests %+v: want sent:1 resumed with r-sent", reqs)
	}
	if sent := decodeResult(t, byID["sent:1"]); sent.RequestID != "r-sent" || sent.Status != contract.StatusAccepted {
		t.Fatalf("resumed result %+v", sent)
	}
	st, _, err := loadState(testCtx(t), e.kv, stateKey("default", contract.KindRoad, "sent:1"))
	if err != nil || st.Phase != phaseDone || st.Result == nil || st.Result.RequestID != "r-sent" {
		t.Fatalf("state after completion %+v %v", st, err)
	}
}

func TestJournalRecordsProgress(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	h := &fakeHandler{behaviour: func(ctx context.Context, req handlers.Request) (handlers.Outcome, error) {
		if err := req.Journal.Sending(ctx); err != nil {
			return handlers.Outcome{}, err
		}
		if err := req.Journal.Sent(ctx, "r-42"); err != nil {
			return handlers.Outcome{}, err
		}
		return handlers.Outcome{Status: contract.StatusAccepted, MRN: "25NO4TU2HUD59UCBT8"}, nil
	}}
	startWorker(t, e.js, Config{Handlers: map[contract.Kind]Handler{contract.KindRoad: h}})
	submit(t, e.js, roadSubject, "", roadBody("j1"), nil)
	r := decodeResult(t, collect(t, e.js, contract.StreamResults, roadResults, 1, 20*time.Second)[0])
	if r.RequestID != "r-42" {
		t.Fatalf("result requestId %q, want the journalled one", r.RequestID)
	}
	e2, err := e.kv.Get(testCtx(t), stateKey("default", contract.KindRoad, "j1"))
	if err != nil {
		t.Fatal(err)
	}
	// History 1 keeps only the last revision; sending, sent and done
	// make three writes.
	if e2.Revision() < 3 {
		t.Fatalf("state revision %d: the journal did not write each phase", e2.Revision())
	}
}

func TestGracefulShutdownHandsOverUnfinishedWork(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const n = 10
	const conc = 4
	started := make(chan string, n)
	finish := make(chan struct{})
	var cancelled atomic.Int32
	h1 := &fakeHandler{behaviour: func(ctx context.Context, req handlers.Request) (handlers.Outcome, error) {
		started <- req.Submission.ID
		idx, _ := strconv.Atoi(req.Submission.ID[1:])
		if idx%2 == 0 {
			// Finishes within the grace once shutdown has begun.
			select {
			case <-finish:
				return accept(ctx, req)
			case <-ctx.Done():
				return handlers.Outcome{}, ctx.Err()
			}
		}
		// Outlasts the grace: cancelled by the worker.
		<-ctx.Done()
		cancelled.Add(1)
		return handlers.Outcome{}, ctx.Err()
	}}
	w1 := runWorker(t, e.js, Config{
		Handlers:      map[contract.Kind]Handler{contract.KindRoad: h1},
		Concurrency:   conc,
		ShutdownGrace: time.Second,
	})
	for i := range n {
		submit(t, e.js, roadSubject, "", roadBody("s"+strconv.Itoa(i)), nil)
	}
	inFlight := map[string]bool{}
	for len(inFlight) < conc {
		select {
		case id := <-started:
			inFlight[id] = true
		case <-time.After(20 * time.Second):
			t.Fatalf("only %d handlers started", len(inFlight))
		}
	}
	// Shutdown begins before the even handlers may finish, so no slot
	// frees up for new work before it.
	w1.cancel()
	close(finish)
	if err := w1.wait(); err != nil {
		t.Fatalf("Run returned %v on shutdown", err)
	}
	finishedByFirst := 0
	for id := range inFlight {
		if idx, _ := strconv.Atoi(id[1:]); idx%2 == 0 {
			finishedByFirst++
		}
	}
	if got := count(t, e.js, contract.StreamResults, roadResults); got != finishedByFirst {
		t.Fatalf("after the first worker stopped: %d results, want %d (the in-flight ones that finished in the grace)", got, finishedByFirst)
	}
	if int(cancelled.Load()) != len(inFlight)-finishedByFirst {
		t.Fatalf("%d handlers cancelled, want %d", cancelled.Load(), len(inFlight)-finishedByFirst)
	}

	h2 := &fakeHandler{behaviour: accept}
	startWorker(t, e.js, Config{Handlers: map[contract.Kind]Handler{contract.KindRoad: h2}})
	msgs := collect(t, e.js, contract.StreamResults, roadResults, n, 30*time.Second)
	seen := map[string]int{}
	for _, m := range msgs {
		seen[decodeResult(t, m).ID]++
	}
	for i := range n {
		if id := "s" + strconv.Itoa(i); seen[id] != 1 {
			t.Fatalf("%s has %d results, want 1 (all: %v)", id, seen[id], seen)
		}
	}
	eventually(t, 10*time.Second, "the submit stream to empty", func() bool {
		return count(t, e.js, contract.StreamSubmit, contract.SubjectsSubmit) == 0
	})
	if got := count(t, e.js, contract.StreamResults, roadResults); got != n {
		t.Fatalf("%d results in the stream, want %d", got, n)
	}
}

func TestEnsureStreamsIsIdempotent(t *testing.T) {
	t.Parallel()
	e := newEnv(t) // has run EnsureStreams once
	ctx := testCtx(t)
	if err := EnsureStreams(ctx, e.js, StreamOptions{}); err != nil {
		t.Fatalf("second EnsureStreams: %v", err)
	}
	want := map[string]struct {
		retention jetstream.RetentionPolicy
		maxAge    time.Duration
	}{
		contract.StreamSubmit:  {jetstream.WorkQueuePolicy, 0},
		contract.StreamResults: {jetstream.LimitsPolicy, DefaultResultsMaxAge},
		contract.StreamDLQ:     {jetstream.LimitsPolicy, 0},
		contract.StreamRouting: {jetstream.LimitsPolicy, DefaultRoutingMaxAge},
	}
	for name, w := range want {
		s, err := e.js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		c := s.CachedInfo().Config
		if c.Retention != w.retention || c.MaxAge != w.maxAge || c.Duplicates != duplicateWindow || c.Storage != jetstream.FileStorage {
			t.Fatalf("%s config %+v", name, c)
		}
	}
	st, err := e.kv.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.History() != 1 || st.TTL() != DefaultStateTTL {
		t.Fatalf("state bucket history %d ttl %s", st.History(), st.TTL())
	}
	if _, err := e.js.ObjectStore(ctx, contract.BucketDocuments); err != nil {
		t.Fatal(err)
	}
	if err := EnsureStreams(ctx, e.js, StreamOptions{Replicas: -1}); err == nil {
		t.Fatal("negative replicas accepted")
	}
}

func TestRunFailsWithoutStateBucket(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if err := e.js.DeleteKeyValue(testCtx(t), StateBucket); err != nil {
		t.Fatal(err)
	}
	w, err := New(e.js, withTenant(Config{Handlers: map[contract.Kind]Handler{contract.KindRoad: &fakeHandler{behaviour: accept}}}))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Run(testCtx(t)); err == nil || !errors.Is(err, jetstream.ErrBucketNotFound) {
		t.Fatalf("Run without state bucket: %v", err)
	}
}

func TestConsumerIsRecreatedAfterDeletion(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	h := &fakeHandler{behaviour: accept}
	startWorker(t, e.js, Config{Handlers: map[contract.Kind]Handler{contract.KindRoad: h}})
	submit(t, e.js, roadSubject, "", roadBody("before"), nil)
	collect(t, e.js, contract.StreamResults, roadResults, 1, 20*time.Second)
	// Delete it while idle: once the first message's ack has landed.
	eventually(t, 10*time.Second, "the submit stream to empty", func() bool {
		return count(t, e.js, contract.StreamSubmit, contract.SubjectsSubmit) == 0
	})
	if err := e.js.DeleteConsumer(testCtx(t), contract.StreamSubmit, LaneConsumerName(contract.KindRoad, contract.DefaultTenant)); err != nil {
		t.Fatal(err)
	}
	submit(t, e.js, roadSubject, "", roadBody("after"), nil)
	msgs := collect(t, e.js, contract.StreamResults, roadResults, 2, 30*time.Second)
	if r := decodeResult(t, msgs[1]); r.ID != "after" {
		t.Fatalf("second result is for %s", r.ID)
	}
}

func TestRunReturnsAnErrorWhenItsConnectionCloses(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	nc := e.conn(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	h := &fakeHandler{behaviour: accept}
	r := runWorker(t, js, Config{Handlers: map[contract.Kind]Handler{contract.KindRoad: h}})
	submit(t, e.js, roadSubject, "", roadBody("c1"), nil)
	collect(t, e.js, contract.StreamResults, roadResults, 1, 20*time.Second)
	nc.Close()
	// wait gives up after a minute: Run must end by itself, nobody
	// cancels its context here.
	if err := r.wait(); err == nil || !(errors.Is(err, jetstream.ErrConnectionClosed) || errors.Is(err, nats.ErrConnectionClosed)) {
		t.Fatalf("Run returned %v, want a closed-connection error", err)
	}
}
