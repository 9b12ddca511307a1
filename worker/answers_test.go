package worker

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/failure"
	"github.com/digitoll/digitoll-worker/handlers"
)

// Messages on subjects no kind's consumer matches (an unknown kind, a
// subject with too many or too few tokens) are dead-lettered "malformed"
// within seconds in both consuming modes, and the stray lanes stop once
// their subjects are empty.
func TestStraySubjectsAreDeadLettered(t *testing.T) {
	t.Parallel()
	for _, mode := range []struct {
		name    string
		tenants TenantSource
	}{
		{"one consumer per kind", nil},
		{"lanes", &tenantList{tenants: []Tenant{roadTenant(contract.DefaultTenant, 0)}}},
	} {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			h := &fakeHandler{behaviour: accept}
			rec := newLogRecorder()
			// One stray waits before the worker starts, the others arrive
			// while it runs.
			submit(t, e.js, "digitoll.submit.ship.default", "", roadBody("s1"), nil)
			w := runWorker(t, e.js, Config{
				Handlers: map[contract.Kind]Handler{contract.KindRoad: h},
				Tenants:  mode.tenants,
				LaneSync: 50 * time.Millisecond,
				Logger:   slog.New(rec),
			}).w
			submit(t, e.js, "digitoll.submit.road.default.extra", "", roadBody("s2"), nil)
			submit(t, e.js, "digitoll.submit.road", "", roadBody("s3"), nil)
			submit(t, e.js, roadSubject, "", roadBody("ok"), nil)

			collect(t, e.js, contract.StreamResults, roadResults, 1, 30*time.Second)
			dead := collect(t, e.js, contract.StreamDLQ, "digitoll.dlq.>", 3, 30*time.Second)
			subjects := map[string]bool{}
			for _, m := range dead {
				if m.Subject() != contract.DLQSubject(contract.InvalidKind, contract.InvalidTenant) {
					t.Errorf("dead letter on %s, want %s", m.Subject(), contract.DLQSubject(contract.InvalidKind, contract.InvalidTenant))
				}
				if got := m.Headers().Get(contract.HeaderDLQReason); got != reasonMalformed {
					t.Errorf("dead letter of %s: reason %q, want malformed", m.Headers().Get(contract.HeaderOriginalSubject), got)
				}
				if !strings.Contains(m.Headers().Get(contract.HeaderDLQError), "subject") {
					t.Errorf("dead letter error %q does not say what is wrong with the subject", m.Headers().Get(contract.HeaderDLQError))
				}
				subjects[m.Headers().Get(contract.HeaderOriginalSubject)] = true
			}
			for _, s := range []string{"digitoll.submit.ship.default", "digitoll.submit.road.default.extra", "digitoll.submit.road"} {
				if !subjects[s] {
					t.Errorf("no dead letter from %s (got %v)", s, subjects)
				}
			}
			if n := h.totalCalls(); n != 1 {
				t.Errorf("handler called %d times, want once: strays never reach it", n)
			}
			eventually(t, 30*time.Second, "the submit stream to be empty", func() bool {
				return count(t, e.js, contract.StreamSubmit, contract.SubjectsSubmit) == 0
			})
			eventually(t, 30*time.Second, "the stray lanes to stop", func() bool {
				return len(rec.find("stopped consuming stray subject")) == 3
			})
			if st := w.Status(); len(st) != 1 || st[0].Kind != contract.KindRoad {
				t.Errorf("status %+v, want the road lane alone: stray lanes have no health", st)
			}
		})
	}
}

// resultsByID collects want results of subject and keys them by id,
// failing on a second result for one id.
func resultsByID(t *testing.T, e *env, subject string, want int) map[string]contract.Result {
	t.Helper()
	out := map[string]contract.Result{}
	for _, m := range collect(t, e.js, contract.StreamResults, subject, want, 30*time.Second) {
		r := decodeResult(t, m)
		if prev, ok := out[r.ID]; ok {
			t.Errorf("two results for %s: %s, then %s", r.ID, prev.Status, r.Status)
		}
		out[r.ID] = r
	}
	return out
}

// A submission whose after names one that was dead-lettered (refused for
// good, or unreadable) or rejected is answered at once with a rejection on
// after that names the predecessor and how it ended, whether it needs the
// predecessor's MRN or not; it never reaches Toll. Without the answer it
// would wait for the message deadline, here a day.
func TestAfterAFailedPredecessorAnswersAtOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	h := &fakeHandler{behaviour: func(ctx context.Context, req handlers.Request) (handlers.Outcome, error) {
		switch req.Submission.ID {
		case "refused":
			return handlers.Outcome{}, fmt.Errorf("toll answered 409 conflict: %w", failure.ErrPermanent)
		case "rejected":
			return handlers.Outcome{Status: contract.StatusRejected, Errors: []contract.FieldError{{Path: "x", Message: "bad"}}}, nil
		}
		return accept(ctx, req)
	}}
	startWorker(t, e.js, Config{Handlers: map[contract.Kind]Handler{contract.KindRoad: h}, MessageDeadline: 24 * time.Hour})
	submit(t, e.js, roadSubject, "", movement("refused", "create", "transport", ""), nil)
	submit(t, e.js, roadSubject, "", movement("rejected", "create", "transport", ""), nil)
	// Unreadable (no level), with a readable id.
	submit(t, e.js, roadSubject, "", []byte(`{"id":"unreadable","operation":"create","declaration":{"n":1}}`), nil)
	eventually(t, 30*time.Second, "the predecessors' results", func() bool {
		return count(t, e.js, contract.StreamResults, roadResults) == 3
	})
	cases := map[string]string{
		"u-refused":    "was dead-lettered",
		"c-refused":    "was dead-lettered",
		"u-unreadable": "was dead-lettered",
		"c-rejected":   "ended rejected",
		"u-rejected":   "ended rejected",
	}
	for id := range cases {
		op, after := "update", id[2:]
		if id[0] == 'c' {
			op = "create"
		}
		submit(t, e.js, roadSubject, "", movement(id, op, "master-consignment", after), nil)
	}
	got := resultsByID(t, e, roadResults, 3+len(cases))
	for id, says := range cases {
		r := got[id]
		if r.Status != contract.StatusRejected || len(r.Errors) != 1 || r.Errors[0].Path != "after" ||
			!strings.Contains(r.Errors[0].Message, id[2:]) || !strings.Contains(r.Errors[0].Message, says) {
			t.Errorf("%s: %+v, want a rejection on after saying %s %s", id, r, id[2:], says)
		}
		if n := h.callsOf(id); n != 0 {
			t.Errorf("%s reached Toll %d times", id, n)
		}
	}
}

// A second submission under an id already used, with another body, is
// dead-lettered "malformed" with an error saying so, and gets no result:
// the id's one result stays the first submission's. Repeats of the first
// (the same body, or the same body spaced otherwise) stay silent: no
// dead letter, no second result, no second Toll call.
func TestReusedIDWithAnotherBodyIsDeadLettered(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	h := &sendingFirst{fakeHandler{behaviour: accept}}
	startWorker(t, e.js, Config{Handlers: map[contract.Kind]Handler{contract.KindRoad: h}})
	first := []byte(`{"id":"x1","operation":"create","level":"transport","declaration":{"n":1}}`)
	submit(t, e.js, roadSubject, "default/x1", first, nil)
	if r := resultsByID(t, e, roadResults, 1)["x1"]; r.Status != contract.StatusAccepted {
		t.Fatalf("first submission: %+v", r)
	}
	// Each with its own Nats-Msg-Id, so the stream keeps them all.
	submit(t, e.js, roadSubject, "repeat-1", first, nil)
	submit(t, e.js, roadSubject, "repeat-2", []byte(`{ "id": "x1", "operation": "create",
		"level": "transport", "declaration": { "n": 1 } }`), nil)
	submit(t, e.js, roadSubject, "other", []byte(`{"id":"x1","operation":"create","level":"transport","declaration":{"n":2}}`), nil)
	submit(t, e.js, roadSubject, "unreadable", []byte(`{"id":"x1","operation":"create"}`), nil)

	dead := collect(t, e.js, contract.StreamDLQ, "digitoll.dlq.>", 2, 30*time.Second)
	for _, m := range dead {
		if got := m.Headers().Get(contract.HeaderDLQReason); got != reasonMalformed {
			t.Errorf("dead letter %s: reason %q, want malformed", m.Data(), got)
		}
	}
	for _, m := range dead {
		if !strings.Contains(string(m.Data()), `"n":2`) {
			continue
		}
		if msg := m.Headers().Get(contract.HeaderDLQError); !strings.Contains(msg, `id "x1" was already used`) || !strings.Contains(msg, "new id") {
			t.Errorf("dead letter of the other body: error %q, want it to say the id was used for another submission", msg)
		}
	}
	eventually(t, 30*time.Second, "the submit stream to be empty", func() bool {
		return count(t, e.js, contract.StreamSubmit, contract.SubjectsSubmit) == 0
	})
	if n := count(t, e.js, contract.StreamResults, roadResults); n != 1 {
		t.Errorf("%d results for x1, want the first one only", n)
	}
	if n := count(t, e.js, contract.StreamDLQ, "digitoll.dlq.>"); n != 2 {
		t.Errorf("%d dead letters, want 2: the repeats are silent", n)
	}
	if n := h.callsOf("x1"); n != 1 {
		t.Errorf("x1 reached Toll %d times, want once", n)
	}
}

func TestSubmissionDigest(t *testing.T) {
	t.Parallel()
	base := submissionDigest([]byte(`{"id":"a","operation":"create","declaration":{"n":1},"metadata":{"ref":"r"}}`))
	if base == "" {
		t.Fatal("no digest of a readable body")
	}
	for _, tc := range []struct {
		name string
		body string
		same bool
	}{
		{"same bytes", `{"id":"a","operation":"create","declaration":{"n":1},"metadata":{"ref":"r"}}`, true},
		{"spaced otherwise", "{ \"id\": \"a\",\n \"operation\": \"create\", \"declaration\": { \"n\": 1 }, \"metadata\": {\"ref\": \"r\"} }\n", true},
		{"another value", `{"id":"a","operation":"create","declaration":{"n":2},"metadata":{"ref":"r"}}`, false},
		{"other metadata", `{"id":"a","operation":"create","declaration":{"n":1},"metadata":{"ref":"s"}}`, false},
		{"a space inside a string", `{"id":"a","operation":"create","declaration":{"n":1},"metadata":{"ref":"r "}}`, false},
		{"fields in another order", `{"operation":"create","id":"a","declaration":{"n":1},"metadata":{"ref":"r"}}`, false},
	} {
		if got := submissionDigest([]byte(tc.body)) == base; got != tc.same {
			t.Errorf("%s: same digest %v, want %v", tc.name, got, tc.same)
		}
	}
}

// admitting is a handler that serves the tenant "known" always and others
// only while open is set.
type admitting struct {
	fakeHandler
	open atomic.Bool
}

func (a *admitting) Admit(tenant string) error {
	if tenant == "known" || a.open.Load() {
		return nil
	}
	return failure.WithReason(fmt.Errorf("tenant %q is not served", tenant), failure.Permanent, reasonUnsupported)
}

// A tenant the handler does not admit is dead-lettered "unsupported" at
// once, even when its message waits for an after that will never come;
// but a submission whose result is recorded still gets that result again,
// not a second, dead-lettered one.
func TestTenantNotAdmittedIsDeadLetteredAtOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	h := &admitting{fakeHandler: fakeHandler{behaviour: accept}}
	h.open.Store(true)
	runWorker(t, e.js, Config{
		Handlers:        map[contract.Kind]Handler{contract.KindRoad: h},
		Tenants:         &tenantList{tenants: []Tenant{roadTenant("known", 0)}},
		LaneSync:        50 * time.Millisecond,
		MessageDeadline: 24 * time.Hour,
	})
	ghost := contract.SubmitSubject(contract.KindRoad, "ghost")
	ghostResults := contract.ResultSubject(contract.KindRoad, "ghost")
	submit(t, e.js, ghost, "ghost/g1", roadBody("g1"), nil)
	if r := decodeResult(t, collect(t, e.js, contract.StreamResults, ghostResults, 1, 30*time.Second)[0]); r.Status != contract.StatusAccepted {
		t.Fatalf("g1 while admitted: %+v", r)
	}
	h.open.Store(false)
	submit(t, e.js, ghost, "ghost/g1-again", roadBody("g1"), nil)
	submit(t, e.js, ghost, "ghost/g2", movement("g2", "update", "transport", "never-sent"), nil)
	dead := collect(t, e.js, contract.StreamDLQ, "digitoll.dlq.>", 1, 30*time.Second)[0]
	if reason := dead.Headers().Get(contract.HeaderDLQReason); reason != reasonUnsupported || !strings.Contains(string(dead.Data()), `"g2"`) {
		t.Errorf("dead letter %s with reason %q, want g2 unsupported", dead.Data(), reason)
	}
	eventually(t, 30*time.Second, "the submit stream to be empty", func() bool {
		return count(t, e.js, contract.StreamSubmit, contract.SubjectsSubmit) == 0
	})
	got := map[string]contract.Status{}
	for _, m := range collect(t, e.js, contract.StreamResults, ghostResults, 2, 30*time.Second) {
		r := decodeResult(t, m)
		got[r.ID] = r.Status
	}
	if got["g1"] != contract.StatusAccepted || got["g2"] != contract.StatusDeadLettered {
		t.Errorf("results %v, want g1 accepted and g2 dead-lettered", got)
	}
	if n := count(t, e.js, contract.StreamResults, ghostResults); n != 2 {
		t.Errorf("%d results for ghost, want 2: g1's repeat publishes its result again, deduplicated", n)
	}
	if n := count(t, e.js, contract.StreamDLQ, "digitoll.dlq.>"); n != 1 {
		t.Errorf("%d dead letters, want g2's only", n)
	}
	if n := h.callsOf("g2"); n != 0 {
		t.Errorf("g2 reached the handler %d times", n)
	}
}
