package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/failure"
	"github.com/digitoll/digitoll-worker/handlers"
)

// Prober is implemented by handlers that can check, without a message,
// whether their kind can work again: for instance by obtaining a token for
// the kind's scope and calling Toll's test-auth. A paused kind is resumed
// when its probe succeeds. A handler without Probe is resumed when its
// pause lapses, and paused again by the next failure.
type Prober interface {
	Probe(ctx context.Context) error
}

// Pausing: a fault of the worker's configuration (scope not granted, key
// unknown) or an outage of Toll or Maskinporten is not the message's
// fault, and retrying message after message only burns deliveries and
// floods the logs. The worker pauses the kind's durable consumer on the
// server instead (every process sharing it stops receiving), keeps the
// messages it has by handing them back with a delay, logs one line with the
// remedy, probes, and resumes when the probe succeeds. Other kinds go on.
const (
	pauseConfig = "configuration"
	pauseOutage = "outage"
)

// KindStatus is the health of one kind, for readiness.
type KindStatus struct {
	Kind contract.Kind
	// Paused is true while the kind's consumer is paused.
	Paused bool
	// Reason is "configuration" or "outage" while paused.
	Reason string
	// Since is when the pause began.
	Since time.Time
	// Error is the failure that caused the pause, one line, no secrets.
	Error string
}

// gate tracks one kind's pause state and its run of transient failures.
type gate struct {
	mu       sync.Mutex
	paused   bool
	reason   string
	since    time.Time
	errText  string
	failures int // transient failures in a row
	// restart tells the kind's pull loop to pull anew after a resume.
	restart chan struct{}
}

// gates holds the gate of every configured kind; the map is fixed at New.
type gates map[contract.Kind]*gate

func newGates(kinds []contract.Kind) gates {
	g := make(gates, len(kinds))
	for _, k := range kinds {
		g[k] = &gate{restart: make(chan struct{}, 1)}
	}
	return g
}

// Status reports each kind's health, sorted by kind.
func (w *Worker) Status() []KindStatus {
	out := make([]KindStatus, 0, len(w.gates))
	for k, g := range w.gates {
		g.mu.Lock()
		out = append(out, KindStatus{Kind: k, Paused: g.paused, Reason: g.reason, Since: g.since, Error: g.errText})
		g.mu.Unlock()
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Kind < out[j].Kind })
	return out
}

// succeeded clears the run of transient failures of kind.
func (w *Worker) succeeded(kind contract.Kind) {
	g := w.gates[kind]
	g.mu.Lock()
	g.failures = 0
	g.mu.Unlock()
}

// failed notes a failed attempt of kind and pauses the kind when the
// failure says the kind cannot work: a configuration fault at once, a
// transient one after OutageThreshold in a row.
func (w *Worker) failed(r *run, kind contract.Kind, err error) {
	if errors.Is(err, errSuperseded) || errors.Is(err, handlers.ErrPending) {
		// Neither says anything about the kind's health: another
		// worker took the message, or Toll is still validating.
		return
	}
	g := w.gates[kind]
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
	log := w.log.With("kind", kind, "reason", reason)
	switch reason {
	case pauseConfig:
		log.Error("pausing "+string(kind)+": "+configRemedy, "error", err)
	default:
		log.Warn("pausing "+string(kind)+": its dependency seems down; messages are kept and the kind resumes when a probe succeeds",
			"failuresInARow", w.cfg.OutageThreshold, "error", err)
	}
	r.probers.Go(func() { w.probe(r, kind, log) })
}

// probe keeps kind paused on the server and probes it every ProbeInterval
// until the probe succeeds or the worker stops. It is the only goroutine
// that ends a pause.
func (w *Worker) probe(r *run, kind contract.Kind, log *slog.Logger) {
	ctx := r.pullCtx
	prober, _ := w.cfg.Handlers[kind].(Prober)
	for {
		w.pauseConsumer(ctx, kind, log)
		if !sleepCtx(ctx, w.cfg.ProbeInterval) {
			return
		}
		var err error
		if prober != nil {
			pctx, cancel := context.WithTimeout(ctx, finishTimeout)
			err = prober.Probe(pctx)
			cancel()
		}
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			log.Debug("probe failed; the kind stays paused", "error", err)
			continue
		}
		w.resume(ctx, kind, log)
		return
	}
}

// pauseConsumer pauses kind's consumer until PauseFor from now, so that a
// process that dies while holding the pause frees the kind by itself.
func (w *Worker) pauseConsumer(ctx context.Context, kind contract.Kind, log *slog.Logger) {
	cctx, cancel := context.WithTimeout(ctx, finishTimeout)
	defer cancel()
	until := time.Now().Add(w.cfg.PauseFor)
	if _, err := w.js.PauseConsumer(cctx, contract.StreamSubmit, ConsumerName(kind), until); err != nil && ctx.Err() == nil {
		// The local gate still holds; messages that arrive fail the
		// same way and are handed back.
		log.Warn("pausing the consumer on the server failed", "error", err)
	}
}

func (w *Worker) resume(ctx context.Context, kind contract.Kind, log *slog.Logger) {
	cctx, cancel := context.WithTimeout(ctx, finishTimeout)
	defer cancel()
	if _, err := w.js.ResumeConsumer(cctx, contract.StreamSubmit, ConsumerName(kind)); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		log.Warn("resuming the consumer on the server failed; it resumes when its pause lapses", "error", err)
	}
	g := w.gates[kind]
	g.mu.Lock()
	since := g.since
	g.paused, g.reason, g.since, g.errText, g.failures = false, "", time.Time{}, "", 0
	g.mu.Unlock()
	select {
	case g.restart <- struct{}{}:
	default: // a restart is already pending
	}
	log.Info(fmt.Sprintf("resumed %s: the probe succeeded", kind), "pausedFor", time.Since(since).Round(time.Second))
}
