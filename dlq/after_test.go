package dlq

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/handlers"
	"github.com/digitoll/digitoll-worker/worker"
)

// A submission whose after names a dead-lettered one is rejected at once,
// and replaying the dead-lettered predecessor still gets it processed and
// accepted; the successor keeps its rejection (upstream sends it again
// under a new id), which the replay does not disturb.
func TestReplayAfterASuccessorWasRejected(t *testing.T) {
	t.Parallel()
	js := newJS(t)
	h := &refuseFirst{}
	w, err := worker.New(js, worker.Config{Handlers: map[contract.Kind]handlers.Handler{contract.KindRoad: h}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			t.Error("worker did not stop within 60s")
		}
	})

	const subject = "digitoll.submit.road.acme"
	publish := func(id string, body []byte) {
		t.Helper()
		if _, err := js.PublishMsg(testCtx(t), &nats.Msg{Subject: subject, Data: body}, jetstream.WithMsgID("acme/"+id)); err != nil {
			t.Fatal(err)
		}
	}
	publish("p1", roadBody("p1"))
	var entry Entry
	eventually(t, 20*time.Second, "p1's dead letter", func() bool {
		n := 0
		if err := List(testCtx(t), js, Filter{}, func(e Entry) bool {
			entry = e
			n++
			return true
		}); err != nil {
			t.Fatal(err)
		}
		return n == 1
	})
	publish("s1", []byte(`{"id":"s1","operation":"update","level":"house-consignment","after":"p1","declaration":{"n":2}}`))
	s1 := waitResult(t, js, "digitoll.result.road.acme", contract.StatusRejected)
	if s1.ID != "s1" || len(s1.Errors) != 1 || s1.Errors[0].Path != "after" || !strings.Contains(s1.Errors[0].Message, "dead-lettered") {
		t.Fatalf("successor %+v, want a rejection on after naming the dead-lettered p1", s1)
	}

	if _, err := Replay(testCtx(t), js, entry.Seq); err != nil {
		t.Fatal(err)
	}
	p1 := waitResult(t, js, "digitoll.result.road.acme", contract.StatusAccepted)
	if p1.ID != "p1" {
		t.Fatalf("result after the replay %+v, want p1 accepted", p1)
	}
	if n := h.calls.Load(); n != 2 {
		t.Fatalf("%d Toll calls, want 2: p1 refused, p1 replayed; s1 never", n)
	}
}
