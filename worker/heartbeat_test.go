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
	hbSlow := hs.start(slow, time.Hour)
	hbFast := hs.start(fast, 5*time.Millisecond)
	hbFailing := hs.start(failing, 5*time.Millisecond)
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
	hs.start(late, time.Millisecond).stop()
	if got := late.n.Load(); got != 1 {
		t.Errorf("a heartbeat started after close beat %d times, want once", got)
	}
}
