package worker

import (
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// heartbeats sends the in-progress acks of every message a run has in
// flight, from one goroutine and one timer: a goroutine and a ticker per
// message cost more than the beats (most messages finish long before
// their first beat after the one at the start). The zero value is ready;
// close ends it once no message is in flight.
type heartbeats struct {
	mu     sync.Mutex
	active map[*heartbeat]struct{}
	// timerAt is when the loop's timer fires, zero when it is stopped: a
	// heartbeat due before it wakes the loop.
	timerAt time.Time
	wake    chan struct{}
	quit    chan struct{}
	done    chan struct{}
	closed  bool
	// due is the loop's own list of heartbeats to beat now.
	due []*heartbeat
}

// heartbeat tells the server, every interval from the start of processing,
// that the message is still being worked on, so that a Toll call longer
// than AckWait is not redelivered to another worker meanwhile. Failures
// are counted, not logged as they happen: the job logs them once it knows
// which message they were about.
type heartbeat struct {
	owner *heartbeats
	msg   jetstream.Msg
	every time.Duration
	// next is when it beats again; owner.mu guards it.
	next time.Time

	// mu is held while a beat is sent, so that stop returns only once
	// none is; it guards the fields below.
	mu       sync.Mutex
	stopped  bool
	failures int
	lastErr  error
}

// start beats for msg, stored in its stream at stored (zero if unknown),
// every interval until stop, the first time as firstBeat says.
func (hs *heartbeats) start(msg jetstream.Msg, stored time.Time, every time.Duration) *heartbeat {
	hb := &heartbeat{owner: hs, msg: msg, every: every}
	now := time.Now()
	first := firstBeat(stored, now, every)
	if !first.After(now) {
		hb.beat()
		first = now.Add(every)
	}
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if hs.closed {
		return hb
	}
	if hs.active == nil {
		hs.active = map[*heartbeat]struct{}{}
		hs.wake = make(chan struct{}, 1)
		hs.quit = make(chan struct{})
		hs.done = make(chan struct{})
		go hs.loop()
	}
	hb.next = first
	hs.active[hb] = struct{}{}
	if hs.timerAt.IsZero() || hb.next.Before(hs.timerAt) {
		select {
		case hs.wake <- struct{}{}:
		default:
		}
	}
	return hb
}

// firstBeat is when a message stored in its stream at stored, and taken
// for processing at now, first beats. The server's AckWait runs from the
// delivery, which came after the store: a message stored less than every
// ago beats every after the store, which leaves the server's deadline the
// same margin as between later beats, and a message consumed as it comes
// in (nearly all of them) is done before that and costs no in-progress
// ack at all. One that may have waited longer in the stream or the
// client's buffer, a redelivery, and one whose store time is unknown or
// ahead of this machine's clock beat at once. It relies on the clocks of
// the NATS server and this machine differing by less than twice every
// (two thirds of AckWait, 40 s by default): a larger skew can let the
// server redeliver a message still in progress, which the journal's lease
// then holds off.
func firstBeat(stored, now time.Time, every time.Duration) time.Time {
	since := now.Sub(stored)
	if stored.IsZero() || since < 0 || since >= every {
		return now
	}
	return stored.Add(every)
}

// loop beats what is due and sleeps until the next is, until close.
func (hs *heartbeats) loop() {
	defer close(hs.done)
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		at := hs.takeDue(time.Now())
		for i, hb := range hs.due {
			hb.beat()
			hs.due[i] = nil
		}
		if at.IsZero() {
			t.Stop()
		} else {
			t.Reset(time.Until(at))
		}
		select {
		case <-hs.quit:
			return
		case <-hs.wake:
		case <-t.C:
		}
	}
}

// takeDue puts the heartbeats due at now in hs.due, moves their next beat
// on, and returns when the earliest of all is due (zero if none is
// active).
func (hs *heartbeats) takeDue(now time.Time) time.Time {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	hs.due = hs.due[:0]
	var earliest time.Time
	for hb := range hs.active {
		if !hb.next.After(now) {
			hs.due = append(hs.due, hb)
			hb.next = now.Add(hb.every)
		}
		if earliest.IsZero() || hb.next.Before(earliest) {
			earliest = hb.next
		}
	}
	hs.timerAt = earliest
	return earliest
}

// close stops the loop and waits for it; later starts beat only once.
func (hs *heartbeats) close() {
	hs.mu.Lock()
	hs.closed = true
	started := hs.active != nil
	if started {
		close(hs.quit)
		hs.active = nil
	}
	hs.mu.Unlock()
	if started {
		<-hs.done
	}
}

// beat sends one in-progress ack unless the heartbeat was stopped.
func (hb *heartbeat) beat() {
	hb.mu.Lock()
	defer hb.mu.Unlock()
	if hb.stopped {
		return
	}
	if err := hb.msg.InProgress(); err != nil {
		hb.failures++
		hb.lastErr = err
	}
}

// stop ends the heartbeat, waiting for a beat being sent; it may be called
// many times. It returns how many heartbeats failed, and the last failure.
func (hb *heartbeat) stop() (failures int, last error) {
	hb.mu.Lock()
	first := !hb.stopped
	hb.stopped = true
	failures, last = hb.failures, hb.lastErr
	hb.mu.Unlock()
	if first {
		hs := hb.owner
		hs.mu.Lock()
		delete(hs.active, hb)
		hs.mu.Unlock()
	}
	return failures, last
}
