package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/failure"
	"github.com/digitoll/digitoll-worker/handlers"
)

// Pausing: a fault of the worker's configuration (scope not granted, key
// unknown) or an outage of Toll or Maskinporten is not the message's
// fault, and retrying message after message only burns deliveries and
// floods the logs. The worker pauses the lane's durable consumer on the
// server instead (every process sharing it stops receiving), keeps the
// messages it has by handing them back with a delay, logs one line with the
// remedy, probes (Handler.ProbeTenant), and resumes when the probe
// succeeds. Other kinds and tenants go on.
const (
	pauseConfig = "configuration"
	pauseOutage = "outage"
)

// KindStatus is the health of one tenant's submissions of a kind.
type KindStatus struct {
	Kind contract.Kind
	// Tenant is the tenant whose submissions of Kind this is about.
	Tenant string
	// Paused is true while the consumer is paused.
	Paused bool
	// Reason is "configuration" or "outage" while paused.
	Reason string
	// Since is when the pause began.
	Since time.Time
	// Error is the failure that caused the pause, one line, no secrets.
	Error string
}

// gate tracks one lane's pause state and its run of transient failures.
type gate struct {
	mu       sync.Mutex
	paused   bool
	reason   string
	since    time.Time
	errText  string
	failures int // transient failures in a row
	// restart tells the lane's pull loop to pull anew after a resume.
	restart chan struct{}
}

// gates holds the gate of every lane being consumed.
type gates struct {
	mu sync.Mutex
	m  map[lane]*gate
}

func newGates() *gates { return &gates{m: map[lane]*gate{}} }

// get returns l's gate, making it on first use.
func (gs *gates) get(l lane) *gate {
	gs.mu.Lock()
	defer gs.mu.Unlock()
	g := gs.m[l]
	if g == nil {
		g = &gate{restart: make(chan struct{}, 1)}
		gs.m[l] = g
	}
	return g
}

// drop forgets l's gate once its lane has stopped.
func (gs *gates) drop(l lane) {
	gs.mu.Lock()
	defer gs.mu.Unlock()
	delete(gs.m, l)
}

// Status reports the health of every tenant's submissions of each kind
// being consumed, sorted by kind and tenant.
func (w *Worker) Status() []KindStatus {
	w.gates.mu.Lock()
	out := make([]KindStatus, 0, len(w.gates.m))
	for l, g := range w.gates.m {
		if l.subject != "" {
			// A stray lane only dead-letters; it has no health.
			continue
		}
		g.mu.Lock()
		out = append(out, KindStatus{Kind: l.kind, Tenant: l.tenant, Paused: g.paused, Reason: g.reason, Since: g.since, Error: g.errText})
		g.mu.Unlock()
	}
	w.gates.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Kind != out[j].Kind {
			return out[i].Kind < out[j].Kind
		}
		return out[i].Tenant < out[j].Tenant
	})
	return out
}

// succeeded clears the run of transient failures of l.
func (w *Worker) succeeded(l lane) {
	g := w.gates.get(l)
	g.mu.Lock()
	g.failures = 0
	g.mu.Unlock()
}

// failed notes a failed attempt of l and pauses the lane when the failure
// says it cannot work: a configuration fault at once, a transient one
// after OutageThreshold in a row. The lane is one tenant's submissions of
// one kind: a tenant whose scope is not granted is paused on its own.
func (w *Worker) failed(r *run, l lane, err error) {
	if errors.Is(err, errSuperseded) || errors.Is(err, handlers.ErrPending) || errors.Is(err, handlers.ErrFileMissing) {
		// None says anything about the lane's health: another worker
		// took the message, Toll is still validating, or the message
		// names a file its producer has not stored (yet). One
		// producer's mistake must not pause everyone's documents.
		return
	}
	ctx, consuming := r.laneCtx(l)
	if !consuming {
		// The lane was stopped (its tenant removed) while the message
		// was in progress: there is nothing to pause.
		return
	}
	g := w.gates.get(l)
	reason := ""
	g.mu.Lock()
	switch failure.Classify(err) {
	case failure.Config:
		reason = pauseConfig
	case failure.Transient:
		g.failures++
		if w.cfg.OutageThreshold > 0 && g.failures >= w.cfg.OutageThreshold {
			reason = pauseOutage
		}
	}
	start := reason != "" && !g.paused
	if start {
		g.paused, g.reason, g.since, g.errText = true, reason, w.cfg.Now(), errorHeader(err)
	}
	g.mu.Unlock()
	if !start {
		return
	}
	log := w.log.With("kind", l.kind, "reason", reason, "tenant", l.tenant)
	what := l.String()
	switch reason {
	case pauseConfig:
		log.Error("pausing "+what+": "+configRemedy, "error", err)
	default:
		log.Warn("pausing "+what+": its dependency seems down; messages are kept and resume when a probe succeeds",
			"failuresInARow", w.cfg.OutageThreshold, "error", err)
	}
	if reason == pauseOutage {
		// Toll or Maskinporten down is every tenant's outage: one probe
		// per kind, not one per tenant, however many lanes wait.
		if r.outages.join(l) {
			kindLog := w.log.With("kind", l.kind, "reason", reason)
			r.probers.Go(func() { w.probeOutage(r, l.kind, kindLog) })
		}
		return
	}
	r.probers.Go(func() { w.probe(ctx, l, log) })
}

// outages holds, per kind, the tenants' lanes paused for an outage, which
// one goroutine probes for all of them (see probeOutage).
type outages struct {
	mu sync.Mutex
	// lanes maps each lane waiting to when its consumer was last paused
	// on the server (zero: not yet).
	lanes map[contract.Kind]map[lane]time.Time
	// probing marks the kinds whose prober runs.
	probing map[contract.Kind]bool
}

// join adds l to its kind's waiting lanes and reports whether the caller
// must start the kind's prober.
func (o *outages) join(l lane) (startProber bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.lanes == nil {
		o.lanes, o.probing = map[contract.Kind]map[lane]time.Time{}, map[contract.Kind]bool{}
	}
	if o.lanes[l.kind] == nil {
		o.lanes[l.kind] = map[lane]time.Time{}
	}
	o.lanes[l.kind][l] = time.Time{}
	if o.probing[l.kind] {
		return false
	}
	o.probing[l.kind] = true
	return true
}

// due returns kind's waiting lanes whose pause on the server is older than
// renew (all of them with renew 0) and marks them paused at now. It
// reports false, and the prober must end, when none waits.
func (o *outages) due(kind contract.Kind, renew time.Duration, now time.Time) (due, waiting []lane, ok bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.lanes[kind]) == 0 {
		o.probing[kind] = false
		return nil, nil, false
	}
	for l, at := range o.lanes[kind] {
		waiting = append(waiting, l)
		if at.IsZero() || now.Sub(at) >= renew {
			due = append(due, l)
			o.lanes[kind][l] = now
		}
	}
	slices.SortFunc(waiting, func(a, b lane) int { return strings.Compare(a.tenant, b.tenant) })
	return due, waiting, true
}

// leave forgets l, whose lane stopped.
func (o *outages) leave(l lane) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.lanes[l.kind], l)
}

// take empties kind's waiting lanes, ends its prober and returns them.
func (o *outages) take(kind contract.Kind) []lane {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make([]lane, 0, len(o.lanes[kind]))
	for l := range o.lanes[kind] {
		out = append(out, l)
	}
	delete(o.lanes, kind)
	o.probing[kind] = false
	return out
}

// probeOutage keeps kind's lanes paused for an outage paused on the
// server, probes every ProbeInterval with one waiting tenant after another,
// and resumes them all when a probe succeeds: a tenant that still fails
// is paused again by its own failures. It ends then, when no lane waits
// any more, or when the worker stops pulling.
func (w *Worker) probeOutage(r *run, kind contract.Kind, log *slog.Logger) {
	ctx := r.pullCtx
	for turn := 0; ; turn++ {
		due, waiting, ok := r.outages.due(kind, w.cfg.PauseFor/2, time.Now())
		if !ok {
			return
		}
		for _, l := range due {
			if lctx, consuming := r.laneCtx(l); consuming {
				w.pauseConsumer(lctx, l, log)
			} else {
				r.outages.leave(l)
			}
		}
		if !sleepCtx(ctx, w.cfg.ProbeInterval) {
			return
		}
		l := waiting[turn%len(waiting)]
		pctx, cancel := context.WithTimeout(ctx, finishTimeout)
		err := w.probeOnce(pctx, l)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			log.Debug("probe failed; the kind's lanes stay paused", "tenant", l.tenant, "lanes", len(waiting), "error", err)
			continue
		}
		resumed := r.outages.take(kind)
		for _, l := range resumed {
			if lctx, consuming := r.laneCtx(l); consuming {
				w.resume(lctx, l, log.With("tenant", l.tenant))
			}
		}
		log.Info("the outage is over: resumed every tenant's lane of "+string(kind), "lanes", len(resumed), "probedWith", l.tenant)
		return
	}
}

// probe keeps l paused on the server and probes it every ProbeInterval
// until the probe succeeds or ctx (the lane's) ends. It is the only
// goroutine that ends a pause.
func (w *Worker) probe(ctx context.Context, l lane, log *slog.Logger) {
	for {
		w.pauseConsumer(ctx, l, log)
		if !sleepCtx(ctx, w.cfg.ProbeInterval) {
			return
		}
		pctx, cancel := context.WithTimeout(ctx, finishTimeout)
		err := w.probeOnce(pctx, l)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			log.Debug("probe failed; the lane stays paused", "error", err)
			continue
		}
		w.resume(ctx, l, log)
		return
	}
}

// probeOnce asks l's handler whether l's tenant's part of the kind works
// again.
func (w *Worker) probeOnce(ctx context.Context, l lane) error {
	return w.cfg.Handlers[l.kind].ProbeTenant(ctx, l.tenant)
}

// pauseConsumer pauses l's consumer until PauseFor from now, so that a
// process that dies while holding the pause frees the lane by itself.
func (w *Worker) pauseConsumer(ctx context.Context, l lane, log *slog.Logger) {
	cctx, cancel := context.WithTimeout(ctx, finishTimeout)
	defer cancel()
	until := time.Now().Add(w.cfg.PauseFor)
	if _, err := w.js.PauseConsumer(cctx, contract.StreamSubmit, l.consumer(), until); err != nil && ctx.Err() == nil {
		// The local gate still holds; messages that arrive fail the
		// same way and are handed back.
		log.Warn("pausing the consumer on the server failed", "error", err)
	}
}

func (w *Worker) resume(ctx context.Context, l lane, log *slog.Logger) {
	cctx, cancel := context.WithTimeout(ctx, finishTimeout)
	defer cancel()
	if _, err := w.js.ResumeConsumer(cctx, contract.StreamSubmit, l.consumer()); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		log.Warn("resuming the consumer on the server failed; it resumes when its pause lapses", "error", err)
	}
	g := w.gates.get(l)
	g.mu.Lock()
	since := g.since
	g.paused, g.reason, g.since, g.errText, g.failures = false, "", time.Time{}, "", 0
	g.mu.Unlock()
	select {
	case g.restart <- struct{}{}:
	default: // a restart is already pending
	}
	log.Info("resumed "+l.String()+": the probe succeeded", "pausedFor", time.Since(since).Round(time.Second))
}

// Kinds lists the kinds the worker consumes, sorted.
func (w *Worker) Kinds() []contract.Kind {
	out := make([]contract.Kind, 0, len(w.cfg.Handlers))
	for k := range w.cfg.Handlers {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// KindHealth reports an error while kind cannot work: every served
// tenant's lane of it is paused (Toll or Maskinporten down, or the only
// tenant's scope not granted). One tenant's paused lane among several
// leaves the kind healthy: the other tenants are served; Status tells
// which tenant waits.
func (w *Worker) KindHealth(kind contract.Kind) error {
	h := w.cfg.Handlers[kind]
	if h == nil {
		return nil
	}
	return kindHealth(kind, w.Status(), h.Admit)
}

// kindHealth is KindHealth over the lanes in statuses. A lane of a tenant
// that admit refuses only dead-letters that tenant's messages: it is
// never paused, and counting it would keep a kind whose every served
// tenant is paused looking healthy for as long as a stranger's messages
// arrive.
func kindHealth(kind contract.Kind, statuses []KindStatus, admit func(tenant string) error) error {
	var paused *KindStatus
	lanes := 0
	for _, s := range statuses {
		if s.Kind != kind || admit(s.Tenant) != nil {
			continue
		}
		lanes++
		if !s.Paused {
			return nil
		}
		if paused == nil {
			paused = &s
		}
	}
	if paused == nil {
		return nil
	}
	what := "paused for tenant " + paused.Tenant
	if lanes > 1 {
		what = fmt.Sprintf("paused for all %d tenants", lanes)
	}
	return fmt.Errorf("%s since %s (%s): %s", what, paused.Since.UTC().Format(time.RFC3339), paused.Reason, paused.Error)
}
