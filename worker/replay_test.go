package worker

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/failure"
	"github.com/digitoll/digitoll-worker/handlers"
)

// A replay from the DLQ is decided in its first delivery: the worker
// reads the dead letter's record first, as for a redelivery, instead of
// finding it with its first write and handing the message back (cause
// recorded) to be read by a second delivery.
func TestReplayIsReadFirst(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var refuse atomic.Bool
	refuse.Store(true)
	h := &fakeHandler{behaviour: func(ctx context.Context, req handlers.Request) (handlers.Outcome, error) {
		if refuse.Load() {
			return handlers.Outcome{}, fmt.Errorf("toll answered 422: %w", failure.ErrPermanent)
		}
		return accept(ctx, req)
	}}
	obs := &fakeObserver{}
	startWorker(t, e.js, Config{
		Handlers:   map[contract.Kind]Handler{contract.KindRoad: h},
		RetryDelay: func(int) time.Duration { return 10 * time.Millisecond },
		Observer:   obs,
	})
	submit(t, e.js, roadSubject, contract.MsgID("default", "r1"), roadBody("r1"), nil)
	dead := collect(t, e.js, contract.StreamDLQ, "digitoll.dlq.>", 1, 30*time.Second)[0]
	meta, err := dead.Metadata()
	if err != nil {
		t.Fatal(err)
	}

	// The dead letter's delivery has written its record once it is
	// reported done.
	eventually(t, 10*time.Second, "the dead letter's delivery to end", func() bool {
		_, got := obs.snapshot()
		return slices.Contains(got, "done road/default create dead-lettered")
	})
	refuse.Store(false)
	submit(t, e.js, roadSubject, contract.ReplayMsgID(contract.MsgID("default", "r1"), meta.Sequence.Stream), roadBody("r1"), nil)
	collect(t, e.js, contract.StreamResults, roadResults, 2, 20*time.Second)
	want := []string{
		"dead-lettered road/default permanent-http",
		"done road/default create accepted",
		"done road/default create dead-lettered",
	}
	eventually(t, 10*time.Second, "both deliveries to be reported", func() bool {
		n, got := obs.snapshot()
		return n == 0 && len(got) >= len(want)
	})
	if _, got := obs.snapshot(); !slices.Equal(got, want) {
		t.Errorf("deliveries reported %q, want %q (the replay decided in one delivery)", got, want)
	}
}
