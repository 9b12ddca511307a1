package worker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/digitoll/digitoll-worker/contract"
)

// Lanes: the worker consumes each tenant's submissions of each kind
// through a durable consumer of their own, a lane, rather than one
// consumer per kind, whether it serves one tenant (configured from the
// environment) or many (a tenants file). A consumer delivers in
// stream order, so with one per kind a tenant that publishes ten thousand
// messages puts every other tenant behind them; with lanes each tenant's
// backlog waits only for its own turn (see fairPool), and a tenant whose
// scope is not granted pauses only its own lane on the server, in every
// process sharing it.
//
// The lanes are those of the configured tenants and kinds, and also one
// for every subject of the submit stream that holds messages but belongs
// to no configured lane (a tenant not configured, removed, or using a kind
// it may not): the handler dead-letters those, so that nothing sits in the
// stream without an answer. Such a lane stops once its subject is empty.
// The tenants and the stream are looked at again every LaneSync.
//
// The submit stream is a work queue, whose consumers may not overlap.
// Versions before lanes served a single tenant through one consumer per
// kind (ConsumerName, filter digitoll.submit.<kind>.*), which overlaps
// every lane of its kind: the worker deletes those when it starts (see
// retireKindConsumers). Nothing is lost: a work queue holds exactly the
// messages not yet acknowledged, and a lane made with DeliverAll is
// delivered every one of them on its subject, those the old consumer had
// delivered without an ack included.

// Tenant is one tenant as the worker schedules it.
type Tenant struct {
	// Name is the tenant's subject token.
	Name string
	// Kinds are the kinds the tenant may submit; kinds the worker has no
	// handler for are not consumed.
	Kinds []contract.Kind
	// Concurrency caps the tenant's messages in progress in this
	// process, across kinds; 0 takes Config.TenantConcurrency. A cap at
	// or above Config.Concurrency is none: the tenant may use the whole
	// pool.
	Concurrency int
}

// TenantSource lists the tenants a worker serves. It is asked again every
// Config.LaneSync, so tenants added or removed take effect without a
// restart; it must be quick and safe for concurrent use.
type TenantSource interface {
	Tenants() []Tenant
}

// TenantList is a fixed list of tenants, a TenantSource for a worker whose
// tenants do not change while it runs.
type TenantList []Tenant

// Tenants returns the list.
func (l TenantList) Tenants() []Tenant { return l }

// TenantNotifier is implemented by a TenantSource that can tell when its
// tenants changed, so that the lanes follow at once instead of at the
// next LaneSync. The channel receives a value after each change.
type TenantNotifier interface {
	TenantsChanged() <-chan struct{}
}

// lane is what one durable consumer delivers: one tenant's submissions of
// one kind or, with subject set, a stray subject.
type lane struct {
	kind   contract.Kind
	tenant string
	// subject makes a stray lane: one subject of the submit stream that no
	// lane can match (an unknown kind, too few or too many tokens), whose
	// messages are dead-lettered "malformed". Its kind is
	// contract.InvalidKind and it has no tenant (see strays).
	subject string
}

// consumer is the lane's durable consumer name.
func (l lane) consumer() string {
	if l.subject != "" {
		return StrayConsumerName(l.subject)
	}
	return LaneConsumerName(l.kind, l.tenant)
}

// filter is the lane's subject filter.
func (l lane) filter() string {
	if l.subject != "" {
		return l.subject
	}
	return contract.SubmitSubject(l.kind, l.tenant)
}

func (l lane) String() string {
	if l.subject != "" {
		return "stray subject " + l.subject
	}
	return "tenant " + l.tenant + "'s " + string(l.kind)
}

// Strays: a producer may publish to any subject under digitoll.submit.>,
// and the stream stores it, but the consumers filter
// digitoll.submit.<kind>.<tenant> of the kinds this worker knows: a
// message on digitoll.submit.ship.default or
// digitoll.submit.road.default.extra would sit in the work queue forever,
// with no result and no dead letter. Every LaneSync the worker lists the
// stream's subjects holding messages (the same look lanes take) and gives
// each such stray subject a consumer of its own, filtered on exactly that
// subject, which overlaps no kind's or lane's filter; its messages are
// dead-lettered "malformed", and the lane stops once the subject is empty.

// StrayConsumerName is the durable consumer of a stray submit subject:
// digitoll-stray_<digest of the subject>. No kind is named "stray", so it
// is never taken for a kind's or a lane's consumer.
func StrayConsumerName(subject string) string {
	sum := sha256.Sum256([]byte(subject))
	return "digitoll-stray_" + hex.EncodeToString(sum[:8])
}

// stray reports whether subject is one no kind's consumer can match: not
// digitoll.submit.<known kind>.<token>.
func stray(subject string) bool {
	parts := strings.Split(subject, ".")
	if len(parts) != 4 || parts[0] != "digitoll" || parts[1] != "submit" {
		return true
	}
	_, err := contract.ParseKind(parts[2])
	return err != nil
}

// LaneConsumerName is the durable consumer of tenant's submissions of
// kind: digitoll-<kind>-<tenant>. A subject
// token that is not a valid tenant name (it may hold characters a consumer
// name cannot) is named by its digest after '_', which no tenant name
// holds.
func LaneConsumerName(kind contract.Kind, tenant string) string {
	if contract.ValidTenant(tenant) {
		return ConsumerName(kind) + "-" + tenant
	}
	sum := sha256.Sum256([]byte(tenant))
	return ConsumerName(kind) + "_" + hex.EncodeToString(sum[:8])
}

// laneInactivity is how long the server keeps a lane's consumer that no
// process pulls from: a removed tenant's consumer goes away by itself. On
// a work-queue stream a consumer made again later still gets every
// message left, so nothing is lost when it does.
const laneInactivity = time.Hour

// laneRun is a lane being consumed.
type laneRun struct {
	ctx    context.Context
	cancel context.CancelFunc
}

// lanes are the lanes of one Run.
type lanes struct {
	mu      sync.Mutex
	running map[lane]*laneRun
	// loops counts the lanes' pull loops.
	loops sync.WaitGroup
	// errs collects the pull loops' fatal errors.
	errs []error
	// stop ends pulling when a pull loop fails.
	stop context.CancelFunc
	// blind is set while the submit stream's subjects cannot be read;
	// only the goroutine syncing the lanes uses it.
	blind bool
}

// laneCtx is the context of l's pull loop, and false when l is not being
// consumed (its tenant was removed while one of its messages was in
// progress).
func (r *run) laneCtx(l lane) (context.Context, bool) {
	r.lanes.mu.Lock()
	defer r.lanes.mu.Unlock()
	if lr := r.lanes.running[l]; lr != nil {
		return lr.ctx, true
	}
	return nil, false
}

// startLane runs l's pull loop on cons (nil: the loop creates the
// consumer) until the lane is stopped or pulling ends.
func (w *Worker) startLane(r *run, l lane, cons jetstream.Consumer) {
	ctx, cancel := context.WithCancel(r.pullCtx)
	lr := &laneRun{ctx: ctx, cancel: cancel}
	r.lanes.mu.Lock()
	r.lanes.running[l] = lr
	r.lanes.mu.Unlock()
	w.gates.get(l)
	r.lanes.loops.Go(func() {
		defer cancel()
		if err := w.pull(ctx, r, l, cons); err != nil {
			r.lanes.mu.Lock()
			r.lanes.errs = append(r.lanes.errs, err)
			r.lanes.mu.Unlock()
			r.lanes.stop()
		}
	})
}

// stopLane stops pulling l; its messages in progress finish.
func (w *Worker) stopLane(r *run, l lane) {
	r.lanes.mu.Lock()
	lr := r.lanes.running[l]
	delete(r.lanes.running, l)
	r.lanes.mu.Unlock()
	if lr != nil {
		lr.cancel()
	}
	w.gates.drop(l)
}

// wantedLanes are the lanes of the configured tenants, with their caps
// set in r's slots.
func (w *Worker) wantedLanes(r *run, known map[string]bool) map[lane]bool {
	want := map[lane]bool{}
	seen := map[string]bool{}
	for _, t := range w.cfg.Tenants.Tenants() {
		seen[t.Name] = true
		n := t.Concurrency
		if n <= 0 {
			n = w.cfg.TenantConcurrency
		}
		if n >= w.cfg.Concurrency {
			// As a kind's: a cap at or above the pool cannot bind. Kept,
			// a slot of it held while a message waits for its kind's cap
			// would keep the tenant's other kinds from the free slots.
			n = 0
		}
		r.slots.setTenantCap(t.Name, n)
		for _, k := range t.Kinds {
			if _, ok := w.cfg.Handlers[k]; ok {
				want[lane{kind: k, tenant: t.Name}] = true
			}
		}
	}
	for name := range known {
		if !seen[name] {
			r.slots.setTenantCap(name, 0)
			delete(known, name)
		}
	}
	for name := range seen {
		known[name] = true
	}
	return want
}

// waitingLanes lists the lanes whose subjects hold messages, from the
// submit stream's per-subject counts (a work queue holds exactly the
// messages not yet acknowledged): the stray lane of every stray subject
// and the lane of every digitoll.submit.<kind>.<token> of a kind with a
// handler; a kind without a handler is left to the processes that have
// one.
func (w *Worker) waitingLanes(ctx context.Context) (map[lane]uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, finishTimeout)
	defer cancel()
	s, err := w.js.Stream(ctx, contract.StreamSubmit)
	if err != nil {
		return nil, err
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(contract.SubjectsSubmit))
	if err != nil {
		return nil, err
	}
	out := map[lane]uint64{}
	for subject, n := range info.State.Subjects {
		if n == 0 {
			continue
		}
		if stray(subject) {
			out[lane{kind: contract.InvalidKind, subject: subject}] = n
			continue
		}
		parts := strings.Split(subject, ".")
		kind, _ := contract.ParseKind(parts[2])
		if _, ok := w.cfg.Handlers[kind]; ok {
			out[lane{kind: kind, tenant: parts[3]}] = n
		}
	}
	return out, nil
}

// syncLanes starts the lanes now wanted and stops the others: the
// configured tenants' lanes, and a lane for every subject with messages
// but no configured lane. While the stream cannot be read, every lane
// running goes on.
func (w *Worker) syncLanes(ctx context.Context, r *run, known map[string]bool) {
	configured := w.wantedLanes(r, known)
	waiting, err := w.waitingLanes(ctx)
	switch {
	case err != nil && ctx.Err() == nil && !r.lanes.blind:
		// Once per spell: NATS away logs enough already.
		w.log.Warn("cannot read the submit stream's subjects; lanes of tenants not configured are kept until it can be read", "error", err)
		r.lanes.blind = true
	case err == nil && r.lanes.blind:
		w.log.Info("reading the submit stream's subjects again")
		r.lanes.blind = false
	}
	r.lanes.mu.Lock()
	var stop []lane
	for l := range r.lanes.running {
		if !configured[l] && err == nil && waiting[l] == 0 {
			stop = append(stop, l)
		}
	}
	var start []lane
	for l := range configured {
		if r.lanes.running[l] == nil {
			start = append(start, l)
		}
	}
	for l, n := range waiting {
		if n > 0 && !configured[l] && r.lanes.running[l] == nil {
			start = append(start, l)
		}
	}
	r.lanes.mu.Unlock()
	for _, l := range stop {
		w.log.Info("stopped consuming "+l.String(), "consumer", l.consumer())
		w.stopLane(r, l)
	}
	for _, l := range start {
		switch {
		case l.subject != "":
			w.log.Warn("consuming "+l.String()+" to dead-letter what it holds: no kind's consumer matches it", "consumer", l.consumer(), "messages", waiting[l])
		case !configured[l]:
			w.log.Info("consuming "+l.String()+" to answer what its subject holds: the tenant is not configured for it", "consumer", l.consumer(), "messages", waiting[l])
		}
		w.startLane(r, l, nil)
	}
}

// runLanes keeps the lanes in step with the tenants and the stream every
// LaneSync until ctx is done.
func (w *Worker) runLanes(ctx context.Context, r *run, known map[string]bool) {
	t := time.NewTicker(w.cfg.LaneSync)
	defer t.Stop()
	var changed <-chan struct{}
	if n, ok := w.cfg.Tenants.(TenantNotifier); ok {
		changed = n.TenantsChanged()
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-changed:
		}
		w.syncLanes(ctx, r, known)
	}
}

// retireKindConsumers deletes the per-kind consumers of versions before
// lanes (ConsumerName of each kind this worker handles), whose filters
// overlap the lanes' on the work-queue stream, so that the lanes can be
// made. The messages such a consumer held, delivered or not, stay in the
// stream until acknowledged, and the lanes deliver them again; a message
// an old process was still working on is met by its journal record
// (see decideState), so that Toll is not called twice and its result is
// published once.
func (w *Worker) retireKindConsumers(ctx context.Context) error {
	for _, k := range w.Kinds() {
		if _, err := w.retireKindConsumer(ctx, k); err != nil {
			return err
		}
	}
	return nil
}

// retireKindConsumer deletes kind's consumer of a version before lanes, if
// there is one, and reports whether there was.
func (w *Worker) retireKindConsumer(ctx context.Context, kind contract.Kind) (bool, error) {
	name := ConsumerName(kind)
	c, err := w.js.Consumer(ctx, contract.StreamSubmit, name)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	info := c.CachedInfo()
	if err := w.js.DeleteConsumer(ctx, contract.StreamSubmit, name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return false, err
	}
	w.log.Warn("deleted the kind's consumer of a version before per-tenant lanes; the tenants' lanes deliver what it held. "+
		"Every process of an older version must be stopped: one that starts deletes the lanes' consumers in turn",
		"consumer", name, "pending", info.NumPending, "ackPending", info.NumAckPending, "ackFloor", info.AckFloor.Stream)
	return true, nil
}

// errCodeNotUnique is the server's refusal of a consumer whose filter
// overlaps another's on a work-queue stream
// (JSConsumerWQConsumerNotUniqueErr).
const errCodeNotUnique jetstream.ErrorCode = 10100

// overlapping reports whether err is the server refusing a consumer
// because another one takes some of its subjects.
func overlapping(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == errCodeNotUnique
}
