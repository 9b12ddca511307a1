package dlq

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/failure"
	"github.com/digitoll/digitoll-worker/handlers"
	"github.com/digitoll/digitoll-worker/worker"
)

// refuseFirst is a handler that Toll refuses for good on the first call
// and accepts afterwards: an operator fixed the cause, then replayed. Like
// the real handlers it records Sending before a call and makes none when
// that is refused (a replay's first delivery finds the dead letter's
// record and leaves the call to the next one), so calls counts the calls
// that reached Toll.
type refuseFirst struct{ calls atomic.Int32 }

func (h *refuseFirst) Handle(ctx context.Context, req handlers.Request) (handlers.Outcome, error) {
	if err := req.Journal.Sending(ctx); err != nil {
		return handlers.Outcome{}, err
	}
	if h.calls.Add(1) == 1 {
		return handlers.Outcome{}, fmt.Errorf("toll answered 409 conflict: %w", failure.ErrPermanent)
	}
	return handlers.Outcome{Status: contract.StatusAccepted, MRN: "25NO4TU2HUD59UCBT8", RequestID: "req-" + req.Submission.ID}, nil
}

// Admit serves every tenant.
func (h *refuseFirst) Admit(string) error { return nil }

// ProbeTenant passes: the handler never pauses.
func (h *refuseFirst) ProbeTenant(context.Context, string) error { return nil }

// runRefusingWorker runs a real worker with a refuseFirst road handler
// until the test ends.
func runRefusingWorker(t *testing.T, js jetstream.JetStream) *refuseFirst {
	t.Helper()
	h := &refuseFirst{}
	w, err := worker.New(js, worker.Config{
		Handlers: map[contract.Kind]worker.Handler{contract.KindRoad: h},
		Tenants:  worker.TenantList{{Name: "acme", Kinds: []contract.Kind{contract.KindRoad}}},
	})
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
	return h
}

// The real worker's dead letters are what this package reads, and a
// replay of one is processed by the worker like a new submission.
func TestDeadLettersOfTheRealWorker(t *testing.T) {
	t.Parallel()
	js := newJS(t)
	h := runRefusingWorker(t, js)

	body := roadBody("w-1")
	for _, m := range []*nats.Msg{
		{Subject: "digitoll.submit.road.acme", Header: producerHeader(), Data: body},
		{Subject: "digitoll.submit.road.NOT_A_TENANT", Data: roadBody("w-2")},
	} {
		if _, err := js.PublishMsg(testCtx(t), m, jetstream.WithMsgID("orig/"+m.Subject)); err != nil {
			t.Fatal(err)
		}
	}
	var entries []Entry
	eventually(t, 20*time.Second, "two dead letters", func() bool {
		entries = entries[:0]
		if err := List(testCtx(t), js, Filter{}, func(e Entry) bool {
			entries = append(entries, e)
			return true
		}); err != nil {
			t.Fatal(err)
		}
		return len(entries) == 2
	})
	byTenant := map[string]Entry{}
	for _, e := range entries {
		byTenant[e.Tenant] = e
	}
	refused, invalid := byTenant["acme"], byTenant[contract.InvalidTenant]
	if refused.Kind != "road" || refused.ID != "w-1" || refused.Reason != "permanent-http" || refused.Attempts != 1 ||
		refused.OriginalSubject != "digitoll.submit.road.acme" || refused.OriginalSeq == 0 || refused.FailedAt.IsZero() ||
		refused.Error == "" || !bytes.Equal(refused.Data, body) || refused.Header.Get("Digitoll-Shipment") != "S-1234" {
		t.Fatalf("dead letter of the refused submission: %+v", refused)
	}
	if invalid.Kind != "road" || invalid.ID != "w-2" || invalid.Reason != "malformed" {
		t.Fatalf("dead letter of the unparsable subject: %+v", invalid)
	}
	if got := listSeqs(t, js, Filter{Reason: "permanent-http", Tenant: "acme"}); len(got) != 1 || got[0] != refused.Seq {
		t.Fatalf("filtered list %v, want [%d]", got, refused.Seq)
	}

	if _, err := Replay(testCtx(t), js, invalid.Seq); !errors.Is(err, ErrNotReplayable) {
		t.Fatalf("replay of the unparsable subject: %v, want ErrNotReplayable", err)
	}
	r, err := Replay(testCtx(t), js, refused.Seq)
	if err != nil {
		t.Fatal(err)
	}
	res := waitResult(t, js, "digitoll.result.road.acme", contract.StatusAccepted)
	if res.ID != "w-1" {
		t.Fatalf("result after replay %+v", res)
	}
	if h.calls.Load() != 2 {
		t.Fatalf("handler called %d times, want 2 (the refusal, then the replay)", h.calls.Load())
	}
	if got := listSeqs(t, js, Filter{}); len(got) != 1 || got[0] != invalid.Seq {
		t.Fatalf("DLQ after replay holds %v, want only the unparsable entry %d (replayed %+v)", got, invalid.Seq, r)
	}
}

// waitResult waits for a result with status on subject.
func waitResult(t *testing.T, js jetstream.JetStream, subject string, status contract.Status) contract.Result {
	t.Helper()
	s, err := js.Stream(testCtx(t), contract.StreamResults)
	if err != nil {
		t.Fatal(err)
	}
	var r contract.Result
	eventually(t, 20*time.Second, "a "+string(status)+" result on "+subject, func() bool {
		m, err := s.GetLastMsgForSubject(testCtx(t), subject)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return false
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(m.Data, &r); err != nil {
			t.Fatal(err)
		}
		return r.Status == status
	})
	return r
}
