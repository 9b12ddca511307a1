package worker

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// beatCounter is a message that counts its in-progress acks.
type beatCounter struct {
	jetstream.Msg
	n    atomic.Int32
	fail bool
}

func (m *beatCounter) InProgress() error {
	m.n.Add(1)
	if m.fail {
		return errors.New("no connection")
	}
	return nil
}

// One goroutine beats for every message in flight, each at its own
// interval, from the start until its stop; nothing beats after stop
// returns, and failures are counted for the job to log.
func TestHeartbeatsShareOneLoop(t *testing.T) {
	var hs heartbeats
	t.Cleanup(hs.close)
	fast, slow, failing := &beatCounter{}, &beatCounter{}, &beatCounter{fail: true}
	hbSlow := hs.start(slow, time.Time{}, time.Hour)
	hbFast := hs.start(fast, time.Time{}, 5*time.Millisecond)
	hbFailing := hs.start(failing, time.Time{}, 5*time.Millisecond)
	if slow.n.Load() != 1 || fast.n.Load() != 1 {
		t.Fatalf("beats at start: slow %d, fast %d; want one each at once", slow.n.Load(), fast.n.Load())
	}
	eventually(t, 10*time.Second, "three beats of the fast heartbeat", func() bool { return fast.n.Load() >= 3 })
	n, err := hbFailing.stop()
	if n == 0 || err == nil {
		t.Errorf("failing heartbeat: %d failures, last %v; want them counted", n, err)
	}
	stoppedAt := failing.n.Load()
	if again, _ := hbFailing.stop(); again != n {
		t.Errorf("a second stop reports %d failures, want %d", again, n)
	}
	base := fast.n.Load()
	eventually(t, 10*time.Second, "more beats of the fast heartbeat", func() bool { return fast.n.Load() >= base+3 })
	if got := failing.n.Load(); got != stoppedAt {
		t.Errorf("a stopped heartbeat beat %d more times", got-stoppedAt)
	}
	if got := slow.n.Load(); got != 1 {
		t.Errorf("the hourly heartbeat beat %d times, want only the first", got)
	}
	hbFast.stop()
	hbSlow.stop()

	hs.close()
	late := &beatCounter{}
	hs.start(late, time.Time{}, time.Millisecond).stop()
	if got := late.n.Load(); got != 1 {
		t.Errorf("a heartbeat started after close beat %d times, want once", got)
	}
}

// A message taken soon after it was stored has its first in-progress ack
// one interval after the store, not at once: the server's AckWait started
// with the delivery, after the store, so the margin is that of the later
// beats, and a message done sooner costs no ack. One that may have waited
// longer, or whose store time is unknown or ahead of this clock, beats at
// once.
func TestFirstBeat(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	const every = 20 * time.Second
	for _, tc := range []struct {
		name   string
		stored time.Time
		want   time.Time
	}{
		{"just stored", now, now.Add(every)},
		{"stored a little while ago", now.Add(-5 * time.Second), now.Add(15 * time.Second)},
		{"stored almost an interval ago", now.Add(-every + time.Millisecond), now.Add(time.Millisecond)},
		{"stored an interval ago", now.Add(-every), now},
		{"a backlog or redelivery", now.Add(-time.Hour), now},
		{"store time unknown", time.Time{}, now},
		{"store time ahead of this clock", now.Add(time.Second), now},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := firstBeat(tc.stored, now, every); !got.Equal(tc.want) {
				t.Errorf("firstBeat(now%+v) = now%+v, want now%+v", tc.stored.Sub(now), got.Sub(now), tc.want.Sub(now))
			}
		})
	}
}

// A heartbeat started for a message just stored waits for its first beat,
// and then beats on its interval.
func TestHeartbeatOfAFreshMessageWaits(t *testing.T) {
	var hs heartbeats
	t.Cleanup(hs.close)
	every := 500 * time.Millisecond
	fresh, stale := &beatCounter{}, &beatCounter{}
	freshStored := time.Now()
	hbFresh := hs.start(fresh, freshStored, every)
	hbStale := hs.start(stale, freshStored.Add(-time.Hour), time.Hour)
	t.Cleanup(func() { hbFresh.stop(); hbStale.stop() })
	if got := stale.n.Load(); got != 1 {
		t.Errorf("a message stored an hour ago beat %d times at start, want once", got)
	}
	// The test cannot see "not yet" as a moment; it checks that the beat
	// at start was left out, which nothing else could have done this soon.
	if got := fresh.n.Load(); got != 0 && time.Since(freshStored) < every {
		t.Errorf("a message just stored beat %d times at start, want none", got)
	}
	eventually(t, 10*time.Second, "two beats of the fresh message", func() bool { return fresh.n.Load() >= 2 })
}
