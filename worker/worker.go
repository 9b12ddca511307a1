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
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"

	"github.com/digitoll/digitoll-worker/contract"
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
	// pullExpiry and pullHeartbeat shape each pull request. The client
	// library counts the messages it asked for and not yet received, and
	// asks again only when that count is low; if the server's answer that
	// ends a request is lost (the library drops what arrives while its
	// buffer is full, as it is while every slot is busy), the count stays
	// high, nothing is asked for, and the lane receives nothing until the
	// library notices the missing heartbeats, 2×pullHeartbeat later, and
	// forgets the count (nats.go issue #1622). The library's defaults
	// (30 s requests, 15 s heartbeats) made that a 30 s stall; these make
	// it 4 s, after which the lane pulls anew (see consume). A request
	// lasting twice the heartbeat, as the defaults do, keeps the server's
	// answers to it as few as they can be (a heartbeat and its end), so
	// that few are lost. The price is one request and its two answers per
	// idle lane every 4 s.
	pullExpiry    = 4 * time.Second
	pullHeartbeat = 2 * time.Second
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
	gates   *gates
	running atomic.Bool
	// pullExpiry and pullHeartbeat are the constants of the same names;
	// tests change them to provoke lost answers.
	pullExpiry, pullHeartbeat time.Duration
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
	hs := make(map[contract.Kind]Handler, len(cfg.Handlers))
	for k, h := range cfg.Handlers {
		hs[k] = h
	}
	cfg.Handlers = hs
	return &Worker{
		js:     js,
		cfg:    cfg,
		log:    cfg.Logger,
		obs:    cfg.Observer,
		tracer: cfg.TracerProvider.Tracer(tracerName),
		policy: policy{retryDelay: cfg.RetryDelay, configRetryDelay: cfg.ConfigRetryDelay},
		gates:  newGates(),

		pullExpiry:    pullExpiry,
		pullHeartbeat: pullHeartbeat,
	}, nil
}

// ConsumerName is digitoll-<kind>: the start of the names of the kind's
// lanes (LaneConsumerName), and the name of the consumer of every tenant's
// submissions of the kind that versions before lanes made, which the
// worker deletes (see retireKindConsumers).
func ConsumerName(kind contract.Kind) string { return "digitoll-" + string(kind) }

// consumerConfig is the durable pull consumer of one lane.
func (w *Worker) consumerConfig(l lane) jetstream.ConsumerConfig {
	cfg := jetstream.ConsumerConfig{
		Durable:       l.consumer(),
		Description:   "digitoll-worker: " + l.String() + " submissions",
		FilterSubject: l.filter(),
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
		// A lane no process pulls from (its tenant removed, or every
		// worker stopped) goes away by itself; see laneInactivity.
		InactiveThreshold: laneInactivity,
	}
	return cfg
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
	kv    jetstream.KeyValue
	slots *slots
	lanes lanes
	// handlerCtx is cancelled when the shutdown grace runs out.
	handlerCtx context.Context
	// inflight runs the deliveries in progress, each on its goroutine.
	inflight *runners
	// pullCtx ends when the worker stops pulling; lanes and probers stop
	// with it.
	pullCtx context.Context
	// probers counts the goroutines probing paused lanes.
	probers sync.WaitGroup
	// outages are the tenants' lanes paused for an outage.
	outages outages
	// beats sends the heartbeats of the messages in flight.
	beats heartbeats
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
	if err := w.run(ctx); err != nil && ctx.Err() == nil {
		return err
	}
	return nil
}

// run is Run once it is known to be the only one; an error it returns
// after ctx is done is only the stop, which Run does not report.
func (w *Worker) run(ctx context.Context) error {
	kv, err := w.js.KeyValue(ctx, StateBucket)
	if err != nil {
		return fmt.Errorf("open state bucket %s (EnsureStreams creates it): %w", StateBucket, err)
	}
	if err := w.retireKindConsumers(ctx); err != nil {
		return fmt.Errorf("retire the per-kind consumers of an earlier version: %w", err)
	}
	handlerCtx, cancelHandlers := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelHandlers()
	pullCtx, stopPulling := context.WithCancel(ctx)
	defer stopPulling()
	r := &run{kv: kv, slots: w.newSlots(), handlerCtx: handlerCtx, pullCtx: pullCtx, inflight: newRunners()}
	// Last: the deliveries are over by then (see finished below).
	defer r.inflight.stop()
	r.lanes.running = map[lane]*laneRun{}
	r.lanes.stop = stopPulling
	defer r.probers.Wait()
	// After the messages in flight, which Run waits for before it returns.
	defer r.beats.close()

	// The lanes to start with: every configured tenant's, and every
	// subject's with messages waiting, stray subjects' included. Their
	// consumers are made now, so that a worker that cannot make them does
	// not start.
	known := map[string]bool{}
	var start []lane
	want := w.wantedLanes(r, known)
	waiting, err := w.waitingLanes(ctx)
	if err != nil {
		return fmt.Errorf("read the subjects of stream %s: %w", contract.StreamSubmit, err)
	}
	for l, n := range waiting {
		if n > 0 {
			want[l] = true
		}
	}
	for l := range want {
		start = append(start, l)
	}
	slices.SortFunc(start, func(a, b lane) int { return strings.Compare(a.consumer(), b.consumer()) })
	consumers, err := w.createConsumers(ctx, start)
	if err != nil {
		return err
	}
	for i, l := range start {
		w.startLane(r, l, consumers[i])
	}
	var manager sync.WaitGroup
	w.log.Info("worker started", "kinds", w.Kinds(), "lanes", len(start), "tenants", len(known), "concurrency", w.cfg.Concurrency,
		"tenantConcurrency", w.cfg.TenantConcurrency, "ackWait", w.cfg.AckWait)
	manager.Go(func() { w.runLanes(pullCtx, r, known) })

	<-pullCtx.Done()
	manager.Wait()
	r.lanes.loops.Wait()
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
	r.lanes.mu.Lock()
	err = errors.Join(r.lanes.errs...)
	r.lanes.mu.Unlock()
	if err != nil {
		return err
	}
	w.log.Info("worker stopped")
	return nil
}

// createAtOnce bounds the consumers made at once at start: hundreds of
// tenants' lanes are made in seconds, not one round trip after another.
const createAtOnce = 16

// createConsumers makes or updates the consumers of lanes, a few at once,
// and returns them in the same order; the first error ends it.
func (w *Worker) createConsumers(ctx context.Context, lanes []lane) ([]jetstream.Consumer, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	out := make([]jetstream.Consumer, len(lanes))
	errs := make([]error, len(lanes))
	sem := make(chan struct{}, createAtOnce)
	var wg sync.WaitGroup
	for i, l := range lanes {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			var err error
			if out[i], err = w.js.CreateOrUpdateConsumer(ctx, contract.StreamSubmit, w.consumerConfig(l)); err != nil {
				errs[i] = fmt.Errorf("create or update consumer %s: %w", l.consumer(), err)
				cancel()
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil && !errors.Is(err, context.Canceled) {
			return nil, err
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// pull feeds one lane's messages to the pools until ctx is done, making
// the lane's consumer first when cons is nil. It returns an error only when
// the connection is closed, which no retry can mend.
func (w *Worker) pull(ctx context.Context, r *run, l lane, cons jetstream.Consumer) error {
	log := w.log.With("kind", l.kind, "consumer", l.consumer())
	if l.subject == "" {
		log = log.With("tenant", l.tenant)
	}
	restart := w.gates.get(l).restart
	buffer := w.concurrencyOf(l.kind)
	if c := r.slots.tenantCap(l.tenant); c != nil {
		buffer = min(buffer, cap(c))
	}
	wait := repullMin
	var err error
	for ctx.Err() == nil {
		if cons == nil {
			cctx, cancel := context.WithTimeout(ctx, finishTimeout)
			cons, err = w.js.CreateOrUpdateConsumer(cctx, contract.StreamSubmit, w.consumerConfig(l))
			cancel()
			if err != nil {
				if errors.Is(err, jetstream.ErrConnectionClosed) || errors.Is(err, nats.ErrConnectionClosed) {
					return fmt.Errorf("create consumer %s: %w", l.consumer(), err)
				}
				if overlapping(err) && l.subject == "" && w.retireLeftover(ctx, l.kind, log) {
					// A process of an older version started meanwhile
					// and made its kind's consumer again.
					continue
				}
				if ctx.Err() == nil {
					log.Warn("creating the consumer failed", "error", err, "retryIn", wait)
				}
				if !sleepCtx(ctx, wait) {
					return nil
				}
				wait = min(2*wait, repullMax)
				continue
			}
		}
		it, err := cons.Messages(jetstream.PullMaxMessages(bufferSize(buffer)),
			jetstream.PullExpiry(w.pullExpiry), jetstream.PullHeartbeat(w.pullHeartbeat))
		if err == nil {
			ackWait := cons.CachedInfo().Config.AckWait
			// A resumed consumer does not answer pull requests made while
			// it was paused until they expire; a fresh iterator pulls at
			// once. The watcher ends with the iterator's context.
			iterCtx, cancelIter := context.WithCancel(ctx)
			go func() {
				select {
				case <-restart:
					cancelIter()
				case <-iterCtx.Done():
				}
			}()
			err = w.consume(iterCtx, r, l, it, ackWait)
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
			return fmt.Errorf("consume %s: %w", l.consumer(), err)
		}
		log.Warn("consuming stopped; re-creating the consumer", "error", err, "retryIn", wait)
		if !sleepCtx(ctx, wait) {
			return nil
		}
		wait = min(2*wait, repullMax)
		cons = nil
	}
	return nil
}

// retireLeftover deletes kind's consumer of a version before lanes, made
// again by an old process since this one started, and reports whether it
// did.
func (w *Worker) retireLeftover(ctx context.Context, kind contract.Kind, log *slog.Logger) bool {
	ctx, cancel := context.WithTimeout(ctx, finishTimeout)
	defer cancel()
	retired, err := w.retireKindConsumer(ctx, kind)
	if err != nil && ctx.Err() == nil {
		log.Warn("deleting the kind's consumer of an older version failed", "error", err)
	}
	return retired
}

// consume runs messages from it until ctx is done (nil) or the iterator
// fails (the error). Each message is taken first and then waits for its
// slots with a heartbeat, so that an idle lane holds no slot: a worker
// serving hundreds of tenants has hundreds of lanes waiting for messages.
func (w *Worker) consume(ctx context.Context, r *run, l lane, it jetstream.MessagesContext, ackWait time.Duration) error {
	if ackWait <= 0 {
		ackWait = w.cfg.AckWait
	}
	var missedAt time.Time
	for {
		msg, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			// A heartbeat missed again within 3 heartbeats of the last
			// miss means no heartbeat came in between: the server does
			// not answer at all, and the caller re-creates the consumer.
			again := !missedAt.IsZero() && time.Since(missedAt) < 3*w.pullHeartbeat
			if errors.Is(err, jetstream.ErrNoHeartbeat) && !again {
				// The library has forgotten the pull requests it was
				// counting on; the next Next asks anew at once.
				w.log.Debug("no heartbeat from the server; pulling anew", "consumer", l.consumer())
				missedAt = time.Now()
				continue
			}
			return err
		}
		missedAt = time.Time{}
		t := take(msg)
		hb := r.beats.start(msg, t.storedAt(), max(ackWait/3, minHeartbeat))
		release, ok := r.slots.acquire(ctx, l)
		if ok && ctx.Err() != nil {
			release()
			ok = false
		}
		if !ok {
			// Stopping, or the lane was stopped, while the message
			// waited: it is not started, only handed back.
			hb.stop()
			if err := msg.NakWithDelay(shutdownNakDelay); err != nil {
				w.log.Debug("returning a message at shutdown failed; it is redelivered after AckWait", "consumer", l.consumer(), "error", err)
			}
			return nil
		}
		r.inflight.Go(func() {
			defer release()
			w.process(r, l, t, hb)
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
