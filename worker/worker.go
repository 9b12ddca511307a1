// Package worker is the JetStream side of digitoll-worker: it consumes
// submissions, hands each to the handler of its kind with a journal of its
// progress, and answers with exactly one result or a dead letter.
//
// Per message, in order: parse the subject and body (unreadable → DLQ
// "malformed"); read the submission's state record (done → publish the
// stored result again and ack; sent → the handler follows the recorded
// requestId); call the handler under the message's deadline while a
// heartbeat keeps the message ours; then record, publish and ack the
// result, or nak or dead-letter as decideFailure says.
package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"

	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/handlers"
)

// Timing of the pull loops and of the work after a handler returns.
const (
	// finishTimeout bounds each NATS operation around a handler call
	// (state read/write, result and DLQ publish, ack). They run on a
	// context detached from shutdown, so that a handler that finished in
	// the grace period still gets its result out.
	finishTimeout = 10 * time.Second
	// repullMin and repullMax bound the wait before re-creating a
	// consumer whose message iterator stopped (consumer deleted, server
	// gone for good).
	repullMin = 500 * time.Millisecond
	repullMax = 30 * time.Second
	// drainWait bounds the wait for each message still buffered when a
	// pull loop stops.
	drainWait = 200 * time.Millisecond
	// maxBuffer caps the messages the client library holds per kind
	// before a slot is free for them (see bufferSize).
	maxBuffer = 64
)

// ErrAlreadyRunning is returned by a second call of Run.
var ErrAlreadyRunning = errors.New("worker is already running")

// Worker consumes submissions of the configured kinds. Several processes
// may run workers on the same streams: they share the durable consumers.
type Worker struct {
	js      jetstream.JetStream
	cfg     Config
	log     *slog.Logger
	obs     Observer
	tracer  trace.Tracer
	policy  policy
	gates   gates
	running atomic.Bool
}

// New checks cfg and returns a worker; nothing is contacted until Run.
func New(js jetstream.JetStream, cfg Config) (*Worker, error) {
	if js == nil {
		return nil, fmt.Errorf("%w: no JetStream context", ErrInvalidConfig)
	}
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	// Copy the map: a caller changing it later must not change a
	// running worker.
	hs := make(map[contract.Kind]handlers.Handler, len(cfg.Handlers))
	for k, h := range cfg.Handlers {
		hs[k] = h
	}
	cfg.Handlers = hs
	kinds := make([]contract.Kind, 0, len(hs))
	for k := range hs {
		kinds = append(kinds, k)
	}
	return &Worker{
		js:     js,
		cfg:    cfg,
		log:    cfg.Logger,
		obs:    cfg.Observer,
		tracer: cfg.TracerProvider.Tracer(tracerName),
		policy: policy{retryDelay: cfg.RetryDelay, configRetryDelay: cfg.ConfigRetryDelay},
		gates:  newGates(kinds),
	}, nil
}

// ConsumerName is the durable consumer of a kind: digitoll-<kind>.
func ConsumerName(kind contract.Kind) string { return "digitoll-" + string(kind) }

// consumerConfig is the durable pull consumer of one kind.
func (w *Worker) consumerConfig(kind contract.Kind) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       ConsumerName(kind),
		Description:   "digitoll-worker: " + string(kind) + " submissions",
		FilterSubject: contract.SubmitFilter(kind),
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       w.cfg.AckWait,
		// Unlimited: when MaxDeliver runs out the server stops
		// delivering and only emits an advisory, so the message would
		// sit in the stream with no result and no dead letter. The
		// worker decides when to give up (deadline, MaxAttempts) and
		// dead-letters the message itself.
		MaxDeliver:    -1,
		MaxAckPending: w.cfg.MaxAckPending,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	}
}

// bufferSize is how many messages the client library fetches ahead per
// kind. A fetched message's AckWait runs while it waits for a slot, and
// its heartbeat only starts with its processing, so the buffer stays small
// next to Concurrency: at a quarter, it empties long before AckWait even
// when handlers take most of a minute.
func bufferSize(concurrency int) int {
	return max(1, min(concurrency/4, maxBuffer))
}

// run is the state of one Run call.
type run struct {
	kv jetstream.KeyValue
	// slots holds one token per message in progress.
	slots chan struct{}
	// kindSlots holds one token per message in progress of each kind
	// with a cap of its own (see acquire).
	kindSlots map[contract.Kind]chan struct{}
	// handlerCtx is cancelled when the shutdown grace runs out.
	handlerCtx context.Context
	// inflight counts message goroutines.
	inflight sync.WaitGroup
	// pullCtx ends when the worker stops pulling; probers stop with it.
	pullCtx context.Context
	// probers counts the goroutines probing paused kinds.
	probers sync.WaitGroup
}

// Run consumes until ctx is done, then shuts down gracefully: it stops
// pulling, lets messages in progress finish for up to ShutdownGrace, then
// cancels their handlers (those messages are naked for another process to
// take), waits for every goroutine and returns nil. It returns an error if
// it cannot start (state bucket or consumers missing and not creatable) or
// if the NATS connection is closed under it.
func (w *Worker) Run(ctx context.Context) error {
	if !w.running.CompareAndSwap(false, true) {
		return ErrAlreadyRunning
	}
	defer w.running.Store(false)

	kv, err := w.js.KeyValue(ctx, StateBucket)
	if err != nil {
		return fmt.Errorf("open state bucket %s (EnsureStreams creates it): %w", StateBucket, err)
	}
	kinds := make([]contract.Kind, 0, len(w.cfg.Handlers))
	for k := range w.cfg.Handlers {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	consumers := make([]jetstream.Consumer, len(kinds))
	for i, k := range kinds {
		if consumers[i], err = w.js.CreateOrUpdateConsumer(ctx, contract.StreamSubmit, w.consumerConfig(k)); err != nil {
			return fmt.Errorf("create or update consumer %s: %w", ConsumerName(k), err)
		}
	}

	handlerCtx, cancelHandlers := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelHandlers()
	pullCtx, stopPulling := context.WithCancel(ctx)
	defer stopPulling()
	r := &run{kv: kv, slots: make(chan struct{}, w.cfg.Concurrency), kindSlots: w.kindSlots(), handlerCtx: handlerCtx, pullCtx: pullCtx}
	defer r.probers.Wait()
	var loops sync.WaitGroup
	fatal := make(chan error, len(kinds))
	for i, k := range kinds {
		loops.Go(func() {
			if err := w.pull(pullCtx, r, k, consumers[i]); err != nil {
				fatal <- err
				stopPulling()
			}
		})
	}
	w.log.Info("worker started", "kinds", kinds, "concurrency", w.cfg.Concurrency, "ackWait", w.cfg.AckWait)

	<-pullCtx.Done()
	loops.Wait()
	w.log.Info("worker stopping", "grace", w.cfg.ShutdownGrace)

	finished := make(chan struct{})
	go func() {
		r.inflight.Wait()
		close(finished)
	}()
	grace := time.NewTimer(w.cfg.ShutdownGrace)
	defer grace.Stop()
	select {
	case <-finished:
	case <-grace.C:
		w.log.Warn("shutdown grace over: cancelling messages still in progress")
		cancelHandlers()
		<-finished
	}
	close(fatal)
	var errs []error
	for err := range fatal {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	w.log.Info("worker stopped")
	return nil
}

// pull feeds one kind's messages to the shared pool until ctx is done. A
// slot is taken before Next, so the pool, not the library's buffer, decides
// how many messages are in progress. It returns an error only when the
// connection is closed, which no retry can mend.
func (w *Worker) pull(ctx context.Context, r *run, kind contract.Kind, cons jetstream.Consumer) error {
	log := w.log.With("kind", kind, "consumer", ConsumerName(kind))
	wait := repullMin
	for ctx.Err() == nil {
		it, err := cons.Messages(jetstream.PullMaxMessages(bufferSize(w.concurrencyOf(kind))))
		if err == nil {
			ackWait := cons.CachedInfo().Config.AckWait
			// A resumed consumer does not answer pull requests made while
			// it was paused until they expire; a fresh iterator pulls at
			// once. The watcher ends with the iterator's context.
			iterCtx, cancelIter := context.WithCancel(ctx)
			go func() {
				select {
				case <-w.gates[kind].restart:
					cancelIter()
				case <-iterCtx.Done():
				}
			}()
			err = w.consume(iterCtx, r, kind, it, ackWait)
			cancelIter()
			w.drain(it, log)
			if ctx.Err() != nil {
				return nil
			}
			if err == nil {
				log.Debug("pulling anew after a resume")
				continue
			}
			wait = repullMin
		}
		if errors.Is(err, jetstream.ErrConnectionClosed) || errors.Is(err, nats.ErrConnectionClosed) {
			return fmt.Errorf("consume %s: %w", kind, err)
		}
		log.Warn("consuming stopped; re-creating the consumer", "error", err, "retryIn", wait)
		if !sleepCtx(ctx, wait) {
			return nil
		}
		wait = min(2*wait, repullMax)
		cctx, cancel := context.WithTimeout(ctx, finishTimeout)
		c, cerr := w.js.CreateOrUpdateConsumer(cctx, contract.StreamSubmit, w.consumerConfig(kind))
		cancel()
		if cerr != nil {
			if errors.Is(cerr, jetstream.ErrConnectionClosed) || errors.Is(cerr, nats.ErrConnectionClosed) {
				return fmt.Errorf("re-create consumer %s: %w", ConsumerName(kind), cerr)
			}
			log.Warn("re-creating the consumer failed", "error", cerr)
			continue
		}
		cons = c
	}
	return nil
}

// consume runs messages from it until ctx is done (nil) or the iterator
// fails (the error).
func (w *Worker) consume(ctx context.Context, r *run, kind contract.Kind, it jetstream.MessagesContext, ackWait time.Duration) error {
	for {
		if !r.acquire(ctx, kind) {
			return nil
		}
		msg, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			r.release(kind)
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if ctx.Err() != nil {
			// Shutdown began while the message arrived: it is not
			// started, only handed back.
			r.release(kind)
			if err := msg.NakWithDelay(shutdownNakDelay); err != nil {
				w.log.Debug("returning a message at shutdown failed; it is redelivered after AckWait", "kind", kind, "error", err)
			}
			return nil
		}
		r.inflight.Go(func() {
			defer r.release(kind)
			w.process(r, kind, msg, ackWait)
		})
	}
}

// drain stops the iterator and hands back what it had buffered but not
// started, with a short delay, so that another process takes it now rather
// than after AckWait.
func (w *Worker) drain(it jetstream.MessagesContext, log *slog.Logger) {
	it.Drain()
	for range 2*maxBuffer + 1 {
		msg, err := it.Next(jetstream.NextMaxWait(drainWait))
		if err != nil {
			return
		}
		if err := msg.NakWithDelay(shutdownNakDelay); err != nil {
			log.Debug("returning a buffered message failed; it is redelivered after AckWait", "error", err)
		}
	}
}

// sleepCtx waits d or until ctx is done, reporting whether d passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
