package handlers

import (
	"slices"
	"sync"
	"time"

	"github.com/digitoll/digitoll-worker/contract"
)

// Pacer learns from recent validations when Toll's verdicts come, so that
// polling skips the pauses in which recent validations found none and
// then polls finely around the time they did. Toll's validation takes
// from about a second to tens of seconds (most often several), so a fixed
// schedule either polls many times for nothing or answers seconds late;
// the pacer gets both fewer polls and an earlier verdict where validation
// times are steady, and falls back to the fixed schedule's growth where
// they are not. It never polls sooner than the fixed schedule's first
// poll. It keeps one window per API and level (Toll's speed is the
// API's, and a transport and a house may validate at different speeds),
// so one Pacer serves every handler of a process, whichever tenant it
// declares for; it is safe for concurrent use.
type Pacer struct {
	mu      sync.Mutex
	windows map[paceKey]*paceWindow
}

// paceKey is what a window of verdicts is kept for.
type paceKey struct {
	kind  contract.Kind
	level contract.Level
}

// NewPacer returns a pacer that knows nothing yet: until it has seen
// paceMinSamples verdicts of an API's level, that level polls on the
// fixed schedule.
func NewPacer() *Pacer {
	return &Pacer{windows: map[paceKey]*paceWindow{}}
}

// paceWindow holds the last verdict times of one API's level.
type paceWindow struct {
	samples [paceWindowSize]time.Duration
	n, next int
	// jump is the learned first pause, 0 until paceMinSamples.
	jump time.Duration
}

const (
	// paceWindowSize verdicts are remembered per level: enough for a
	// steady quantile, few enough that a change of Toll's speed shows
	// within a minute or two of traffic.
	paceWindowSize = 64
	// paceMinSamples verdicts of a level are needed before its first
	// pause is learned.
	paceMinSamples = 8
	// paceQuantile of the recent verdict times, less paceBack steps,
	// is where the first poll goes: about one verdict in four could
	// have been answered sooner, the others are polled for finely from
	// there.
	paceQuantile = 0.25
	paceBack     = 2
	// paceShrink is what a verdict that the first poll found counts as,
	// relative to that poll: it was ready by then, perhaps much sooner,
	// so the jump comes down geometrically when Toll gets faster.
	paceShrink = 0.5
	// paceStepFraction of the jump is the first pause after it, between
	// paceMinStep and the policy's Initial; pauses then grow by paceGrow
	// (the policy's Multiplier, if larger) up to the policy's Max.
	paceStepFraction = 40
	paceMinStep      = 50 * time.Millisecond
	paceGrow         = 1.3
)

// pauses is the schedule of one validation's polls: first before the
// first poll, then then, each later pause grow times the one before, at
// most max.
type pauses struct {
	first, then, max time.Duration
	grow             float64
}

// after returns the pause that follows pause, the nth (from 1).
func (ps pauses) after(n int, pause time.Duration) time.Duration {
	if n == 1 {
		return ps.then
	}
	return min(time.Duration(float64(pause)*ps.grow), ps.max)
}

// fixedPauses is p's schedule, which knows nothing of recent verdicts.
func fixedPauses(p PollPolicy) pauses {
	return pauses{first: p.Initial, then: p.next(p.Initial), max: p.Max, grow: p.Multiplier}
}

// schedule returns the pauses of a validation of kind's level under p
// (with its defaults): p's own until the pacer has seen enough of them,
// then a first pause where recent verdicts came, at least p.Initial and
// at most half of p.Timeout (a burst of slow validations must not make
// the pacer skip past its own deadline), and fine pauses after it.
func (pc *Pacer) schedule(kind contract.Kind, level contract.Level, p PollPolicy) pauses {
	if pc == nil {
		return fixedPauses(p)
	}
	pc.mu.Lock()
	var jump time.Duration
	if w := pc.windows[paceKey{kind, level}]; w != nil {
		jump = w.jump
	}
	pc.mu.Unlock()
	jump = min(jump, p.Timeout/2)
	step := min(p.Initial, max(jump/paceStepFraction, paceMinStep))
	jump -= paceBack * step
	if jump <= p.Initial {
		return fixedPauses(p)
	}
	return pauses{first: jump, then: step, max: p.Max, grow: max(p.Multiplier, paceGrow)}
}

// observe records a validation of kind's level whose verdict was found
// by its polls-th poll, sent at found since polling started; prev is when
// the poll before it was sent (unused when polls is 1).
func (pc *Pacer) observe(kind contract.Kind, level contract.Level, prev, found time.Duration, polls int) {
	if pc == nil || polls < 1 {
		return
	}
	// The verdict came between the poll that did not find it and the one
	// that did; when the first poll found it, only that it came by then.
	sample := prev + (found-prev)/2
	if polls == 1 {
		sample = time.Duration(float64(found) * paceShrink)
	}
	pc.mu.Lock()
	defer pc.mu.Unlock()
	key := paceKey{kind, level}
	w := pc.windows[key]
	if w == nil {
		w = &paceWindow{}
		pc.windows[key] = w
	}
	w.samples[w.next] = sample
	w.next = (w.next + 1) % paceWindowSize
	w.n = min(w.n+1, paceWindowSize)
	if w.n < paceMinSamples {
		return
	}
	recent := w.samples
	slices.Sort(recent[:w.n])
	w.jump = recent[int(paceQuantile*float64(w.n-1))]
}
