package worker

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/failure"
	"github.com/digitoll/digitoll-worker/handlers"
)

type retryAfterErr struct{ d time.Duration }

func (e retryAfterErr) Error() string             { return "429 too many requests" }
func (e retryAfterErr) RetryAfter() time.Duration { return e.d }
func (e retryAfterErr) Unwrap() error             { return failure.ErrTransient }

func TestDecideFailure(t *testing.T) {
	now := time.Date(2025, 1, 15, 8, 0, 0, 0, time.UTC)
	later := now.Add(time.Hour)
	p := policy{retryDelay: Backoff(5*time.Second, 5*time.Minute), configRetryDelay: time.Minute}
	transient := fmt.Errorf("toll 503: %w", failure.ErrTransient)
	cases := []struct {
		name string
		a    attempt
		want action
	}{
		{"poison", attempt{err: failure.ErrPoison, now: now, deadline: later}, action{verb: deadLetter, reason: reasonMalformed}},
		{"permanent", attempt{err: failure.ErrPermanent, now: now, deadline: later}, action{verb: deadLetter, reason: reasonPermanentHTTP}},
		{"poison with its own reason", attempt{err: failure.WithReason(errors.New("11 MB"), failure.Poison, "too-large"), now: now, deadline: later}, action{verb: deadLetter, reason: "too-large"}},
		{"permanent with its own reason", attempt{err: failure.WithReason(errors.New(".exe"), failure.Permanent, "unsupported"), now: now, deadline: later}, action{verb: deadLetter, reason: "unsupported"}},
		{"permanent even when shutting down", attempt{err: failure.ErrPermanent, now: now, deadline: later, shuttingDown: true}, action{verb: deadLetter, reason: reasonPermanentHTTP}},
		{"config", attempt{err: failure.ErrConfig, delivery: 7, now: now, deadline: later}, action{verb: nak, delay: time.Minute, configFault: true}},
		{"config past deadline is still kept", attempt{err: failure.ErrConfig, now: later, deadline: now}, action{verb: nak, delay: time.Minute, configFault: true}},
		{"transient first delivery", attempt{err: transient, delivery: 1, now: now, deadline: later}, action{verb: nak, delay: 5 * time.Second}},
		{"transient third delivery", attempt{err: transient, delivery: 3, now: now, deadline: later}, action{verb: nak, delay: 20 * time.Second}},
		{"unmarked is transient", attempt{err: errors.New("connection reset"), delivery: 1, now: now, deadline: later}, action{verb: nak, delay: 5 * time.Second}},
		{"retry-after wins when longer", attempt{err: retryAfterErr{90 * time.Second}, delivery: 1, now: now, deadline: later}, action{verb: nak, delay: 90 * time.Second}},
		{"retry-after shorter than backoff", attempt{err: retryAfterErr{time.Second}, delivery: 1, now: now, deadline: later}, action{verb: nak, delay: 5 * time.Second}},
		{"delay capped at deadline", attempt{err: transient, delivery: 20, now: now, deadline: now.Add(time.Minute)}, action{verb: nak, delay: time.Minute}},
		{"past deadline", attempt{err: transient, delivery: 1, now: later, deadline: now}, action{verb: deadLetter, reason: reasonDeadline}},
		{"at deadline", attempt{err: transient, delivery: 1, now: now, deadline: now}, action{verb: deadLetter, reason: reasonDeadline}},
		{"shutdown costs nothing", attempt{err: context.Canceled, delivery: 1, now: later, deadline: now, shuttingDown: true}, action{verb: nak, delay: shutdownNakDelay, shutdown: true}},
		{"attempts left", attempt{err: transient, delivery: 2, maxAttempts: 3, now: now, deadline: later}, action{verb: nak, delay: 10 * time.Second}},
		{"attempts exhausted", attempt{err: transient, delivery: 3, maxAttempts: 3, now: now, deadline: later}, action{verb: deadLetter, reason: reasonRetriesExhausted}},
		{"deadline before attempts", attempt{err: transient, delivery: 3, maxAttempts: 3, now: later, deadline: now}, action{verb: deadLetter, reason: reasonDeadline}},
		{"superseded journal is transient", attempt{err: errSuperseded, delivery: 1, now: now, deadline: later}, action{verb: nak, delay: 5 * time.Second}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := p.decideFailure(tc.a); got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestDecideState(t *testing.T) {
	result := &contract.Result{ID: "x"}
	cases := []struct {
		name     string
		st       *state
		seq      uint64
		delivery int
		want     stateAction
	}{
		{"no record", nil, 5, 1, startFresh},
		{"done", &state{Phase: phaseDone, Result: result, Seq: 5, Delivery: 9}, 5, 1, republishResult},
		{"done from an earlier message", &state{Phase: phaseDone, Result: result, Seq: 2}, 5, 1, republishResult},
		{"sent by earlier delivery", &state{Phase: phaseSent, RequestID: "r", Seq: 5, Delivery: 1}, 5, 2, resumeRequest},
		{"sent by later delivery: stale", &state{Phase: phaseSent, RequestID: "r", Seq: 5, Delivery: 3}, 5, 2, leaveToOwner},
		{"sending by later delivery: stale", &state{Phase: phaseSending, Seq: 5, Delivery: 2}, 5, 1, leaveToOwner},
		{"sending by earlier delivery: it crashed", &state{Phase: phaseSending, Seq: 5, Delivery: 1}, 5, 2, startAfterCrash},
		{"sending with an earlier requestId", &state{Phase: phaseSending, RequestID: "r", Seq: 5, Delivery: 1}, 5, 2, resumeRequest},
		{"this message dead-lettered, ack lost", &state{Phase: phaseDeadLettered, Seq: 5, Delivery: 4}, 5, 5, ackOnly},
		{"replay of a dead letter", &state{Phase: phaseDeadLettered, Seq: 2, Delivery: 4}, 5, 1, startFresh},
		{"replay of a dead letter with requestId", &state{Phase: phaseDeadLettered, RequestID: "r", Seq: 2, Delivery: 4}, 5, 1, resumeRequest},
		{"replay while an old message was sending", &state{Phase: phaseSending, Seq: 2, Delivery: 9}, 5, 1, startAfterCrash},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := decideState(tc.st, tc.seq, tc.delivery); got != tc.want {
				t.Fatalf("got %s, want %s", got, tc.want)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	b := Backoff(5*time.Second, 5*time.Minute)
	for _, tc := range []struct {
		delivery int
		want     time.Duration
	}{
		{0, 5 * time.Second}, {1, 5 * time.Second}, {2, 10 * time.Second}, {3, 20 * time.Second},
		{6, 160 * time.Second}, {7, 5 * time.Minute}, {1000, 5 * time.Minute},
	} {
		if got := b(tc.delivery); got != tc.want {
			t.Errorf("delivery %d: %s, want %s", tc.delivery, got, tc.want)
		}
	}
	if got := Backoff(0, time.Minute)(3); got != 0 {
		t.Errorf("zero minimum gives %s", got)
	}
}

func TestStateKey(t *testing.T) {
	for _, id := range []string{"a", "acme:2025-01-15:HWB.0001", strings.Repeat("Z", 128), "x_y-z.1"} {
		k := stateKey("acme", contract.KindAir, id)
		if !strings.HasPrefix(k, "acme.air.") || strings.ContainsAny(k, ":=") {
			t.Fatalf("key %q", k)
		}
		dec, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(k, "acme.air."))
		if err != nil || string(dec) != id {
			t.Fatalf("key %q does not decode to %q", k, id)
		}
	}
}

func TestCarriedToResult(t *testing.T) {
	for name, want := range map[string]bool{
		"traceparent":               false, // continued, not copied
		"Traceparent":               false,
		"tracestate":                false,
		"Digitoll-Shipper":          true,
		"digitoll-lowercase":        true,
		"X-Other":                   false,
		"Nats-Msg-Id":               false,
		"Digitoll-Dlq-Reason":       false,
		"Digitoll-Dlq-Anything":     false,
		"Digitoll-Result-Status":    false,
		"Digitoll-Attempts":         false,
		"Digitoll-Original-Subject": false,
	} {
		if got := carriedToResult(name); got != want {
			t.Errorf("%s: %v, want %v", name, got, want)
		}
	}
}

func TestErrorHeader(t *testing.T) {
	long := strings.Repeat("é", 400) // 800 bytes
	for _, tc := range []struct {
		name string
		err  error
		want func(string) bool
	}{
		{"nil", nil, func(s string) bool { return s == "" }},
		{"one line", errors.New("toll answered 409:\n  conflict\tnow"), func(s string) bool { return s == "toll answered 409: conflict now" }},
		{"truncated on a rune", errors.New(long), func(s string) bool {
			return len(s) <= maxErrorHeader+len("…") && strings.HasSuffix(s, "…") && !strings.ContainsRune(s, '\uFFFD') && strings.HasPrefix(s, "éé")
		}},
	} {
		if got := errorHeader(tc.err); !tc.want(got) {
			t.Errorf("%s: %q", tc.name, got)
		}
	}
}

func TestDeadLetterMsg(t *testing.T) {
	failedAt := time.Date(2025, 1, 15, 8, 5, 0, 0, time.FixedZone("CET", 3600))
	h := nats.Header{
		"Nats-Msg-Id":          {"default/x"},
		"Nats-Expected-Stream": {"DIGITOLL_SUBMIT"},
		"X-Custom":             {"1", "2"},
		"Digitoll-Shipper":     {"acme"},
	}
	body := []byte(`{"id":"x"`)
	for _, tc := range []struct {
		name            string
		d               delivered
		subject, wantID string
	}{
		{"known", delivered{kind: contract.KindAir, tenant: "acme", id: "x", subject: "digitoll.submit.air.acme", seq: 42, delivery: 3},
			"digitoll.dlq.air.acme", "acme/x/dlq/42"},
		{"no id", delivered{kind: contract.KindAir, tenant: "acme", subject: "digitoll.submit.air.acme", seq: 42, delivery: 3},
			"digitoll.dlq.air.acme", "acme/dlq/42"},
		{"no tenant", delivered{kind: contract.KindAir, tenant: contract.InvalidTenant, subject: "digitoll.submit.air.BAD", seq: 42, delivery: 3},
			"digitoll.dlq.air._invalid", "_invalid/dlq/42"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := deadLetterMsg(tc.d, body, h, reasonDeadline, "late", failedAt)
			if m.Subject != tc.subject || string(m.Data) != string(body) {
				t.Fatalf("subject %s body %q", m.Subject, m.Data)
			}
			if m.Header.Get("Nats-Msg-Id") != "" || m.Header.Get("Nats-Expected-Stream") != "" {
				t.Fatalf("JetStream directives copied: %v", m.Header)
			}
			if len(m.Header.Values("X-Custom")) != 2 || m.Header.Get("Digitoll-Shipper") != "acme" {
				t.Fatalf("producer headers lost: %v", m.Header)
			}
			for k, want := range map[string]string{
				contract.HeaderDLQReason:         reasonDeadline,
				contract.HeaderDLQError:          "late",
				contract.HeaderAttempts:          "3",
				contract.HeaderOriginalSubject:   tc.d.subject,
				contract.HeaderFailedAt:          "2025-01-15T07:05:00Z",
				contract.HeaderOriginalStreamSeq: "42",
			} {
				if got := m.Header.Get(k); got != want {
					t.Fatalf("%s = %q, want %q", k, got, want)
				}
			}
			if got := dlqMsgID(tc.d); got != tc.wantID {
				t.Fatalf("dlq msg id %q, want %q", got, tc.wantID)
			}
		})
	}
	if len(h) != 4 {
		t.Fatal("deadLetterMsg changed the submission's headers")
	}
}

func TestResultMsg(t *testing.T) {
	d := delivered{kind: contract.KindRoad, tenant: "acme", id: "x", delivery: 2,
		sub:        &contract.Submission{ID: "x", Operation: contract.OpCreate, Level: contract.LevelTransport, Metadata: map[string]string{"k": "v"}},
		receivedAt: time.Unix(100, 0)}
	r := outcomeResult(d, handlers.Outcome{Status: contract.StatusRejected, Errors: []contract.FieldError{{Path: "p", Message: "m"}}}, "from-journal", time.Unix(200, 0))
	if r.RequestID != "from-journal" || r.Attempts != 2 || r.Operation != contract.OpCreate || r.Metadata["k"] != "v" ||
		r.IncompleteDocumentation == nil || !r.CompletedAt.Equal(time.Unix(200, 0)) || !r.ReceivedAt.Equal(time.Unix(100, 0)) {
		t.Fatalf("result %+v", r)
	}
	m, err := resultMsg(context.Background(), r, nats.Header{"Digitoll-Result-Status": {"forged"}, "Digitoll-X": {"1"}, "Nats-Msg-Id": {"n"}, "Traceparent": {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}})
	if err != nil {
		t.Fatal(err)
	}
	if m.Subject != "digitoll.result.road.acme" || m.Header.Get(contract.HeaderResultStatus) != "rejected" ||
		m.Header.Get("Digitoll-X") != "1" || m.Header.Get("Nats-Msg-Id") != "" ||
		m.Header.Get(contract.HeaderResultSubmissionID) != "x" || m.Header.Get(contract.HeaderResultTenant) != "acme" {
		t.Fatalf("result message %s %v", m.Subject, m.Header)
	}
	// Without a span in the context the result has no trace context: the
	// producer's is continued by the delivery's span, not copied.
	if len(m.Header.Values("Traceparent"))+len(m.Header.Values("traceparent")) != 0 {
		t.Fatalf("trace context copied without a span: %v", m.Header)
	}
	dl := deadLetterResult(d, reasonDeadline, "late", "", time.Unix(200, 0))
	if dl.Status != contract.StatusDeadLettered || dl.Note != "deadline: late" || dl.Errors == nil {
		t.Fatalf("dead-lettered result %+v", dl)
	}
}

func TestLenientID(t *testing.T) {
	for body, want := range map[string]string{
		`{"id":"ok-1","extra":true}`: "ok-1",
		`{"id":"bad id"}`:            "",
		`{"id":5}`:                   "",
		`not json`:                   "",
		`{"operation":"create"}`:     "",
	} {
		if got := lenientID([]byte(body)); got != want {
			t.Errorf("%s: %q, want %q", body, got, want)
		}
	}
}

func TestNewValidatesConfig(t *testing.T) {
	h := map[contract.Kind]Handler{contract.KindRoad: &fakeHandler{behaviour: accept}}
	// New contacts nothing, so a JetStream over a connection never
	// opened is enough.
	js, err := jetstream.New(&nats.Conn{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"defaults", Config{Handlers: h}, true},
		{"no handlers", Config{}, false},
		{"unknown kind", Config{Handlers: map[contract.Kind]Handler{"boat": &fakeHandler{}}}, false},
		{"nil handler", Config{Handlers: map[contract.Kind]Handler{contract.KindAir: nil}}, false},
		{"negative concurrency", Config{Handlers: h, Concurrency: -1}, false},
		{"ack wait too short", Config{Handlers: h, AckWait: time.Millisecond}, false},
		{"max ack pending below concurrency", Config{Handlers: h, Concurrency: 10, MaxAckPending: 5}, false},
		{"large concurrency raises default max ack pending", Config{Handlers: h, Concurrency: 2000}, true},
		{"negative attempts", Config{Handlers: h, MaxAttempts: -1}, false},
		{"negative grace", Config{Handlers: h, ShutdownGrace: -time.Second}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, err := New(js, withTenant(tc.cfg))
			if tc.ok != (err == nil) {
				t.Fatalf("err %v, want ok=%v", err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("error %v does not wrap ErrInvalidConfig", err)
			}
			if err == nil && (w.cfg.Concurrency < 1 || w.cfg.MaxAckPending < w.cfg.Concurrency || w.cfg.Now == nil || w.cfg.RetryDelay == nil) {
				t.Fatalf("defaults not applied: %+v", w.cfg)
			}
		})
	}
	if _, err := New(js, Config{Handlers: h}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("New without Tenants: err %v, want ErrInvalidConfig", err)
	}
	if _, err := New(nil, withTenant(Config{Handlers: h})); err == nil {
		t.Fatal("New accepted a nil JetStream")
	}
}

func TestBufferSize(t *testing.T) {
	for conc, want := range map[int]int{1: 1, 3: 1, 16: 4, 64: 16, 256: 64, 10000: 64} {
		if got := bufferSize(conc); got != want {
			t.Errorf("concurrency %d: buffer %d, want %d", conc, got, want)
		}
	}
}

func TestJournalRaceHasOneWinner(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	key := stateKey("default", contract.KindRoad, "race")
	now := time.Now
	a := newJournal(e.kv, key, nil, 0, 7, 1, now)
	b := newJournal(e.kv, key, nil, 0, 7, 2, now)
	if err := a.Sending(ctx); err != nil {
		t.Fatal(err)
	}
	err := b.Sending(ctx)
	if !errors.Is(err, errSuperseded) || failure.Classify(err) != failure.Transient || !b.Superseded() {
		t.Fatalf("second claim: %v (superseded %v)", err, b.Superseded())
	}
	if err := b.Sent(ctx, "r"); !errors.Is(err, errSuperseded) {
		t.Fatalf("a superseded journal wrote again: %v", err)
	}
	// Revision compare-and-set, not only create, keeps them apart.
	st, rev, err := loadState(ctx, e.kv, key)
	if err != nil {
		t.Fatal(err)
	}
	c := newJournal(e.kv, key, st, rev, 7, 3, now)
	if err := c.Sent(ctx, "r-c"); err != nil {
		t.Fatal(err)
	}
	if err := a.Sent(ctx, "r-a"); !errors.Is(err, errSuperseded) {
		t.Fatalf("update on a stale revision: %v", err)
	}
	st, _, err = loadState(ctx, e.kv, key)
	if err != nil || st.Phase != phaseSent || st.RequestID != "r-c" || st.Delivery != 3 || st.Seq != 7 {
		t.Fatalf("state %+v %v", st, err)
	}
	if err := c.Sending(ctx); err != nil {
		t.Fatal(err)
	}
	st, _, _ = loadState(ctx, e.kv, key)
	if st.RequestID != "r-c" {
		t.Fatalf("a new Sending forgot the requestId: %+v", st)
	}
	if err := c.Sent(ctx, ""); failure.Classify(err) != failure.Permanent {
		t.Fatalf("Sent without requestId: %v", err)
	}
}
