package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/handlers"
)

// scriptedMessages is a message iterator that fails each Next with the
// next of errs and, when they are used up, waits until it is stopped.
type scriptedMessages struct {
	mu    sync.Mutex
	errs  []error
	calls int
	stop  chan struct{}
	once  sync.Once
	// waiting is signalled when Next starts waiting.
	waiting chan struct{}
}

func (s *scriptedMessages) Next(...jetstream.NextOpt) (jetstream.Msg, error) {
	s.mu.Lock()
	s.calls++
	if len(s.errs) > 0 {
		err := s.errs[0]
		s.errs = s.errs[1:]
		s.mu.Unlock()
		return nil, err
	}
	s.mu.Unlock()
	s.waiting <- struct{}{}
	<-s.stop
	return nil, jetstream.ErrMsgIteratorClosed
}

func (s *scriptedMessages) Stop()  { s.once.Do(func() { close(s.stop) }) }
func (s *scriptedMessages) Drain() { s.Stop() }

// A missed heartbeat means the library forgot its pull requests: the
// loop pulls again on the same iterator rather than ending (which
// re-creates the consumer after a pause); a second one right after the
// first (no heartbeat in between) ends it.
func TestConsumePullsAnewAfterAMissedHeartbeat(t *testing.T) {
	w := &Worker{log: slog.New(slog.DiscardHandler), cfg: Config{AckWait: time.Minute}, pullHeartbeat: pullHeartbeat}
	l := lane{kind: contract.KindRoad}

	it := &scriptedMessages{errs: []error{jetstream.ErrNoHeartbeat}, stop: make(chan struct{}), waiting: make(chan struct{}, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.consume(ctx, &run{}, l, it, 0) }()
	select {
	case <-it.waiting:
	case err := <-done:
		t.Fatalf("consume ended after a missed heartbeat: %v, want it to pull again", err)
	case <-time.After(10 * time.Second):
		t.Fatal("consume neither pulled again nor ended")
	}
	cancel()
	it.Stop()
	if err := <-done; err != nil {
		t.Fatalf("consume after cancel: %v", err)
	}

	it = &scriptedMessages{errs: []error{jetstream.ErrNoHeartbeat, jetstream.ErrNoHeartbeat}, stop: make(chan struct{}), waiting: make(chan struct{}, 1)}
	if err := w.consume(context.Background(), &run{}, l, it, 0); !errors.Is(err, jetstream.ErrNoHeartbeat) {
		t.Fatalf("two missed heartbeats in a row: %v, want ErrNoHeartbeat to re-create the consumer", err)
	}
}

// The stall of nats.go issue #1622, reproduced: while every slot is busy
// the lane's pull loop does not read, the library's buffer fills with the
// server's heartbeats and the answer that ends the waiting pull request is
// dropped ("slow consumer, messages dropped"), so the library believes a
// message is still coming and asks for none. Once the slots free, a new
// message must still arrive within the heartbeat check (2×heartbeat), not
// after the library's default 30 s, and without re-creating the consumer.
// Requests of 2.5 heartbeats make the server send one heartbeat more than
// the buffer of 2 messages has room for, which makes the loss certain.
func TestLostPullAnswersStallTheLaneOnlyBriefly(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const concurrency = 8 // a buffer of 2 messages: bufferSize(8)
	release := make(chan struct{})
	var inFlight atomic.Int32
	h := &fakeHandler{behaviour: func(ctx context.Context, req handlers.Request) (handlers.Outcome, error) {
		if req.Submission.ID != "late" {
			inFlight.Add(1)
			select {
			case <-release:
			case <-ctx.Done():
				return handlers.Outcome{}, ctx.Err()
			}
		}
		return accept(ctx, req)
	}}
	// Every slot taken, one message held by the pull loop waiting for a
	// slot, and the pull request it came with still waiting for one more.
	for i := range concurrency + 1 {
		submit(t, e.js, roadSubject, "", roadBody(fmt.Sprintf("busy-%d", i)), nil)
	}
	rec := newLogRecorder()
	w, err := New(e.js, withTenant(Config{
		Handlers:    map[contract.Kind]Handler{contract.KindRoad: h},
		Concurrency: concurrency,
		Logger:      slog.New(rec),
	}))
	if err != nil {
		t.Fatal(err)
	}
	w.pullExpiry, w.pullHeartbeat = 5*time.Second, 2*time.Second
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan error, 1)
	go func() { stopped <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-stopped; err != nil {
			t.Error(err)
		}
	})
	eventually(t, 20*time.Second, "every slot to be busy", func() bool { return inFlight.Load() == concurrency })
	waiting := func() int {
		c, err := e.js.Consumer(testCtx(t), contract.StreamSubmit, LaneConsumerName(contract.KindRoad, contract.DefaultTenant))
		if err != nil {
			t.Fatal(err)
		}
		info, err := c.Info(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		return info.NumWaiting
	}
	eventually(t, 10*time.Second, "a pull request waiting on the server", func() bool { return waiting() > 0 })
	eventually(t, 4*w.pullExpiry, "the pull request to expire unread", func() bool { return waiting() == 0 })

	close(release)
	submit(t, e.js, roadSubject, "", roadBody("late"), nil)
	start := time.Now()
	collect(t, e.js, contract.StreamResults, roadResults, concurrency+2, 2*w.pullHeartbeat+5*time.Second)
	t.Logf("the last message completed %s after it was published; the lane missed its heartbeats %d time(s)",
		time.Since(start).Round(time.Millisecond), len(rec.find("no heartbeat from the server")))
	if n := len(rec.find("consuming stopped")); n != 0 {
		t.Errorf("the lane's consumer was re-created %d time(s); a missed heartbeat should only pull anew", n)
	}
}

// At high concurrency, with bursts and handlers of varying length, the
// lanes never go quiet while messages wait: no gap between two
// completions is longer than the heartbeat check (2×pullHeartbeat) plus a
// margin for a loaded machine, where a stall took 30 s.
func TestHighConcurrencyNeverStalls(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const (
		concurrency = 512
		bursts      = 4
		perBurst    = 400
		n           = bursts * perBurst
		maxGap      = 2*pullHeartbeat + 4*time.Second
	)
	var (
		mu   sync.Mutex
		last = time.Now()
		gap  time.Duration
		done int
	)
	h := &fakeHandler{behaviour: func(ctx context.Context, req handlers.Request) (handlers.Outcome, error) {
		t := time.NewTimer(time.Duration(rand.IntN(300)) * time.Millisecond)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return handlers.Outcome{}, ctx.Err()
		}
		out, err := accept(ctx, req)
		mu.Lock()
		now := time.Now()
		gap = max(gap, now.Sub(last))
		last = now
		done++
		mu.Unlock()
		return out, err
	}}
	startWorker(t, e.js, Config{
		Handlers:    map[contract.Kind]Handler{contract.KindRoad: h, contract.KindAir: h},
		Concurrency: concurrency,
	})
	airSubject := contract.SubmitSubject(contract.KindAir, contract.DefaultTenant)
	for b := range bursts {
		mu.Lock()
		last = time.Now() // the gap counts while messages wait
		mu.Unlock()
		for i := range perBurst {
			subject := roadSubject
			if i%2 == 1 {
				subject = airSubject
			}
			submit(t, e.js, subject, "", roadBody(fmt.Sprintf("b%d-%d", b, i)), nil)
		}
		want := (b + 1) * perBurst
		deadline := time.Now().Add(time.Minute)
		for {
			mu.Lock()
			d, g, since := done, gap, time.Since(last)
			mu.Unlock()
			if g > maxGap || since > maxGap {
				t.Fatalf("burst %d: no message completed for %s (%d of %d done): the lanes stalled", b, max(g, since).Round(time.Millisecond), d, want)
			}
			if d >= want {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("burst %d: %d of %d done after a minute", b, d, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d messages at concurrency %d: longest gap between completions %s", n, concurrency, gap.Round(time.Millisecond))
}
