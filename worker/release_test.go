package worker

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/failure"
	"github.com/digitoll/digitoll-worker/handlers"
)

// Release ends a sending record: idle, with MaybeSent kept from every
// earlier unanswered call, so that the next delivery starts at once.
func TestJournalRelease(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	key := stateKey("default", contract.KindRoad, "release")
	j := newJournal(e.kv, key, nil, 0, 3, 1, time.Now)
	load := func() *state {
		t.Helper()
		st, _, err := loadState(ctx, e.kv, key)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	if err := j.Sending(ctx); err != nil {
		t.Fatal(err)
	}
	if err := j.Release(ctx, false); err != nil {
		t.Fatal(err)
	}
	if st := load(); st.Phase != phaseIdle || st.MaybeSent || decideState(st, 3, 2) != startFresh {
		t.Fatalf("after a refused call: %+v (%s), want idle, nothing maybe sent, a fresh start", st, decideState(st, 3, 2))
	}
	if err := j.Sending(ctx); err != nil {
		t.Fatal(err)
	}
	if err := j.Release(ctx, true); err != nil {
		t.Fatal(err)
	}
	if err := j.Sending(ctx); err != nil {
		t.Fatal(err)
	}
	if st := load(); st.Phase != phaseSending || !st.MaybeSent {
		t.Fatalf("sending after an unanswered call: %+v, want MaybeSent kept", st)
	}
	if err := j.Release(ctx, false); err != nil {
		t.Fatal(err)
	}
	st := load()
	if st.Phase != phaseIdle || !st.MaybeSent || decideState(st, 3, 2) != startFresh {
		t.Fatalf("a refused call after an unanswered one: %+v, want idle with MaybeSent kept", st)
	}
	// A later delivery's journal starts from the record.
	if k := newJournal(e.kv, key, st, 1, 3, 2, time.Now); !k.MaybeSent() {
		t.Fatal("a later delivery forgot MaybeSent")
	}
	// A sending record found by a delivery is an unanswered call.
	if k := newJournal(e.kv, key, &state{Phase: phaseSending}, 1, 3, 2, time.Now); !k.MaybeSent() {
		t.Fatal("a sending record found at the start did not count as maybe sent")
	}
}

// A delivery whose call was refused before Toll processed it releases its
// record, and the next delivery goes on at once: no lease wait, no "died
// during its Toll call", not unresolved. One whose answer was lost does
// not wait the lease either, but the next delivery knows Toll may hold it.
func TestReleasedRecordIsNotWaitedFor(t *testing.T) {
	for _, tc := range []struct {
		name           string
		maybeSent      bool
		wantUnresolved bool
	}{
		{"refused before processing", false, false},
		{"answer lost", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			rec := newLogRecorder()
			var n atomic.Int32
			h := &fakeHandler{behaviour: func(ctx context.Context, req handlers.Request) (handlers.Outcome, error) {
				if n.Add(1) == 1 {
					if err := req.Journal.Sending(ctx); err != nil {
						return handlers.Outcome{}, err
					}
					if err := req.Journal.Release(ctx, tc.maybeSent); err != nil {
						return handlers.Outcome{}, err
					}
					return handlers.Outcome{}, fmt.Errorf("toll answered 503: %w", failure.ErrTransient)
				}
				return accept(ctx, req)
			}}
			startWorker(t, e.js, Config{
				Handlers:   map[contract.Kind]Handler{contract.KindRoad: h},
				RetryDelay: func(int) time.Duration { return 10 * time.Millisecond },
				// A lease the test would notice: the second delivery
				// comes long before it lapses.
				SendLease: time.Hour,
				Logger:    slog.New(rec),
			})
			submit(t, e.js, roadSubject, "", roadBody("rel"), nil)
			r := decodeResult(t, collect(t, e.js, contract.StreamResults, roadResults, 1, 20*time.Second)[0])
			if r.Status != contract.StatusAccepted || r.Attempts != 2 {
				t.Fatalf("result %+v, want accepted on the second delivery", r)
			}
			reqs := h.requests()
			var unresolved []bool
			for _, q := range reqs {
				unresolved = append(unresolved, q.Unresolved)
			}
			if !slices.Equal(unresolved, []bool{false, tc.wantUnresolved}) {
				t.Errorf("Unresolved per delivery %v, want [false %v]", unresolved, tc.wantUnresolved)
			}
			for _, msg := range []string{"waiting for its lease", "died during its Toll call"} {
				if got := rec.find(msg); len(got) > 0 {
					t.Errorf("logged %q %d times after the record was released", msg, len(got))
				}
			}
		})
	}
}

// A repeat sent after an attempt whose answer was lost may meet that
// attempt at Toll as a duplicate. When the repeat's requestId is recorded
// and its delivery then ends without a result (killed, or handed back),
// the delivery that follows the requestId must still know it: its FAILURE
// is to be looked into, not reported as a rejection.
func TestFollowedRepeatStaysUnresolved(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var n atomic.Int32
	h := &fakeHandler{behaviour: func(ctx context.Context, req handlers.Request) (handlers.Outcome, error) {
		switch n.Add(1) {
		case 1: // no answer: Toll may hold it
			if err := req.Journal.Sending(ctx); err != nil {
				return handlers.Outcome{}, err
			}
			if err := req.Journal.Release(ctx, true); err != nil {
				return handlers.Outcome{}, err
			}
			return handlers.Outcome{}, fmt.Errorf("no answer from toll: %w", failure.ErrTransient)
		case 2: // the repeat is answered, then its delivery ends early
			if err := req.Journal.Sending(ctx); err != nil {
				return handlers.Outcome{}, err
			}
			if err := req.Journal.Sent(ctx, "repeat-request"); err != nil {
				return handlers.Outcome{}, err
			}
			return handlers.Outcome{}, fmt.Errorf("validation status unreachable: %w", failure.ErrTransient)
		}
		return accept(ctx, req)
	}}
	startWorker(t, e.js, Config{
		Handlers:   map[contract.Kind]Handler{contract.KindRoad: h},
		RetryDelay: func(int) time.Duration { return 10 * time.Millisecond },
	})
	submit(t, e.js, roadSubject, "", roadBody("repeat"), nil)
	r := decodeResult(t, collect(t, e.js, contract.StreamResults, roadResults, 1, 20*time.Second)[0])
	if r.Status != contract.StatusAccepted || r.Attempts != 3 {
		t.Fatalf("result %+v, want accepted on the third delivery", r)
	}
	var unresolved []bool
	var ids []string
	for _, q := range h.requests() {
		unresolved = append(unresolved, q.Unresolved)
		ids = append(ids, q.RequestID)
	}
	if !slices.Equal(unresolved, []bool{false, true, true}) {
		t.Errorf("Unresolved per delivery %v, want [false true true]", unresolved)
	}
	if !slices.Equal(ids, []string{"", "", "repeat-request"}) {
		t.Errorf("RequestID per delivery %q, want the repeat's followed by the third", ids)
	}
}

// A create naming in `after` a submission that was accepted is given that
// submission's MRN as AfterMRN: the parent under which a lost answer's
// declaration is looked for. One naming an unaccepted one is given none.
func TestCreateAfterAnAcceptedParentKnowsItsMRN(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const parentMRN = "25NO4TU2HUD59UCBT8"
	putState(t, e.kv, "parent-ok", state{Phase: phaseDone, Result: &contract.Result{ID: "parent-ok", Status: contract.StatusAccepted, MRN: parentMRN}})
	putState(t, e.kv, "parent-unresolved", state{Phase: phaseDone, Result: &contract.Result{ID: "parent-unresolved", Status: contract.StatusUnresolved}})
	h := &fakeHandler{behaviour: accept}
	startWorker(t, e.js, Config{Handlers: map[contract.Kind]Handler{contract.KindRoad: h}})
	for _, tc := range []struct{ id, after string }{{"child-ok", "parent-ok"}, {"child-unresolved", "parent-unresolved"}} {
		submit(t, e.js, roadSubject, "", fmt.Appendf(nil, `{"id":%q,"operation":"create","level":"house-consignment","after":%q,"declaration":{"n":1}}`, tc.id, tc.after), nil)
	}
	collect(t, e.js, contract.StreamResults, roadResults, 2, 20*time.Second)
	got := map[string]string{}
	for _, q := range h.requests() {
		got[q.Submission.ID] = q.AfterMRN
	}
	if got["child-ok"] != parentMRN {
		t.Errorf("AfterMRN %q after an accepted parent, want %s", got["child-ok"], parentMRN)
	}
	if mrn, called := got["child-unresolved"]; called && mrn != "" {
		t.Errorf("AfterMRN %q after an unresolved parent, want none", mrn)
	}
}

// A message dead-lettered after a call that may have reached Toll (its
// deadline passed while Toll did not answer) keeps MaybeSent in its record:
// a replay from the DLQ starts fresh but unresolved, so that Toll's
// duplicate FAILURE is looked into rather than reported as a rejection.
func TestDeadLetteredRecordKeepsMaybeSent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t)
	key := stateKey("default", contract.KindRoad, "dead-maybe")
	j := newJournal(e.kv, key, nil, 0, 5, 1, time.Now)
	if err := j.Sending(ctx); err != nil {
		t.Fatal(err)
	}
	if err := j.Release(ctx, true); err != nil {
		t.Fatal(err)
	}
	if err := j.deadLettered(ctx); err != nil {
		t.Fatal(err)
	}
	st, rev, err := loadState(ctx, e.kv, key)
	if err != nil {
		t.Fatal(err)
	}
	if st.Phase != phaseDeadLettered || !st.MaybeSent {
		t.Fatalf("dead-lettered record %+v, want MaybeSent kept", st)
	}
	// The replay is another stream sequence.
	if got := decideState(st, 9, 1); got != startFresh {
		t.Fatalf("replay decides %s, want %s", got, startFresh)
	}
	if !newJournal(e.kv, key, st, rev, 9, 1, time.Now).MaybeSent() {
		t.Fatal("the replay's journal forgot that Toll may hold the declaration")
	}
}
