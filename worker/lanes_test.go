package worker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/failure"
	"github.com/digitoll/digitoll-worker/handlers"
)

// tenantList is a TenantSource whose tenants a test can change.
type tenantList struct {
	mu      sync.Mutex
	tenants []Tenant
}

func (l *tenantList) Tenants() []Tenant {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Tenant(nil), l.tenants...)
}

func roadTenant(name string, concurrency int) Tenant {
	return Tenant{Name: name, Kinds: []contract.Kind{contract.KindRoad}, Concurrency: concurrency}
}

// consumerNames lists the consumers of the submit stream.
func consumerNames(t *testing.T, js jetstream.JetStream) map[string]bool {
	t.Helper()
	s, err := js.Stream(testCtx(t), contract.StreamSubmit)
	if err != nil {
		t.Fatal(err)
	}
	names := s.ConsumerNames(testCtx(t))
	out := map[string]bool{}
	for n := range names.Name() {
		out[n] = true
	}
	if err := names.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// Each tenant has a cap of messages in progress, and a tenant at its cap
// waits without holding a slot of the shared pool: the other tenant's
// messages fill the rest of it.
func TestLanesCapEachTenant(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	release := make(chan struct{})
	gauges := map[string]*gauge{"flood": {}, "calm": {}}
	h := &fakeHandler{behaviour: func(ctx context.Context, req handlers.Request) (handlers.Outcome, error) {
		g := gauges[req.Tenant]
		g.enter()
		defer g.leave()
		select {
		case <-release:
			return accept(ctx, req)
		case <-ctx.Done():
			return handlers.Outcome{}, ctx.Err()
		}
	}}
	startWorker(t, e.js, Config{
		Handlers:    map[contract.Kind]Handler{contract.KindRoad: h},
		Tenants:     &tenantList{tenants: []Tenant{roadTenant("flood", 2), roadTenant("calm", 0)}},
		Concurrency: 8,
		// calm's cap: three quarters of 8.
	})
	for i := range 10 {
		submit(t, e.js, contract.SubmitSubject(contract.KindRoad, "flood"), "", roadBody("f"+strconv.Itoa(i)), nil)
	}
	for i := range 10 {
		submit(t, e.js, contract.SubmitSubject(contract.KindRoad, "calm"), "", roadBody("c"+strconv.Itoa(i)), nil)
	}
	eventually(t, 30*time.Second, "2 of flood's and 6 of calm's messages in flight", func() bool {
		f, _ := gauges["flood"].read()
		c, _ := gauges["calm"].read()
		return f == 2 && c == 6
	})
	close(release)
	collect(t, e.js, contract.StreamResults, "digitoll.result.>", 20, 30*time.Second)
	if _, most := gauges["flood"].read(); most != 2 {
		t.Errorf("at most %d of flood's messages were in flight at once, want its cap 2", most)
	}
	if _, most := gauges["calm"].read(); most != 6 {
		t.Errorf("at most %d of calm's messages were in flight at once, want the default cap 6 (three quarters of 8)", most)
	}
}

// A subject with messages but no configured lane (a tenant not
// configured, or a token that is no tenant name) still gets a lane, so
// that its messages are answered, here dead-lettered; the lane stops once
// the subject is empty.
func TestLanesAnswerUnconfiguredSubjects(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// What the tenants' dispatcher does with a tenant it does not know.
	h := &fakeHandler{behaviour: func(ctx context.Context, req handlers.Request) (handlers.Outcome, error) {
		if req.Tenant != "known" {
			return handlers.Outcome{}, failure.WithReason(fmt.Errorf("tenant %q is not configured", req.Tenant), failure.Permanent, "unsupported")
		}
		return accept(ctx, req)
	}}
	w := runWorker(t, e.js, Config{
		Handlers: map[contract.Kind]Handler{contract.KindRoad: h},
		Tenants:  &tenantList{tenants: []Tenant{roadTenant("known", 0)}},
		LaneSync: 50 * time.Millisecond,
	}).w
	eventually(t, 30*time.Second, "known's lane", func() bool { return len(w.Status()) == 1 })

	submit(t, e.js, contract.SubmitSubject(contract.KindRoad, "known"), "", roadBody("k1"), nil)
	submit(t, e.js, contract.SubmitSubject(contract.KindRoad, "ghost"), "", roadBody("g1"), nil)
	submit(t, e.js, "digitoll.submit.road.Not_A_Tenant", "", roadBody("n1"), nil)
	collect(t, e.js, contract.StreamResults, "digitoll.result.road.known", 1, 30*time.Second)
	reasons := map[string]string{}
	for _, m := range collect(t, e.js, contract.StreamDLQ, "digitoll.dlq.>", 2, 30*time.Second) {
		reasons[m.Subject()] = m.Headers().Get(contract.HeaderDLQReason)
	}
	want := map[string]string{
		contract.DLQSubject(contract.KindRoad, "ghost"):                "unsupported",
		contract.DLQSubject(contract.KindRoad, contract.InvalidTenant): "malformed",
	}
	for subject, reason := range want {
		if reasons[subject] != reason {
			t.Errorf("dead letter on %s: reason %q, want %q (all: %v)", subject, reasons[subject], reason, reasons)
		}
	}
	eventually(t, 30*time.Second, "the lanes of the emptied subjects to stop", func() bool {
		st := w.Status()
		return len(st) == 1 && st[0].Tenant == "known"
	})
}

// A worker of a version before lanes consumed each kind through one
// consumer, digitoll-<kind>, filtered on every tenant's subjects; it
// overlaps the lanes on the work-queue stream. Starting, the worker
// deletes it and its lanes deliver everything it held: the messages never
// delivered and those an old process took and did not acknowledge (its
// AckWait of ten minutes is not waited for), each answered once; those the
// old process acknowledged are gone and are not done again. A tenant not
// served is dead-lettered "unsupported", as the old worker did.
func TestKindConsumerOfAnEarlierVersionIsRetiredLosingNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t)
	old, err := e.js.CreateOrUpdateConsumer(ctx, contract.StreamSubmit, jetstream.ConsumerConfig{
		Durable:       ConsumerName(contract.KindRoad),
		FilterSubject: contract.SubmitFilter(contract.KindRoad),
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       10 * time.Minute,
		MaxDeliver:    -1,
	})
	if err != nil {
		t.Fatal(err)
	}
	const n = 12
	subject := contract.SubmitSubject(contract.KindRoad, "known")
	for i := range n {
		submit(t, e.js, subject, "", roadBody("k"+strconv.Itoa(i)), nil)
	}
	submit(t, e.js, contract.SubmitSubject(contract.KindRoad, "ghost"), "", roadBody("g0"), nil)

	// The old process: done with k0 and k1 (acknowledged), in the middle
	// of k2..k5 (delivered, not acknowledged), k6.. and g0 not yet taken.
	batch, err := old.Fetch(6, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var taken []string
	for m := range batch.Messages() {
		taken = append(taken, m.Subject())
		if len(taken) <= 2 {
			if err := m.DoubleAck(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := batch.Error(); err != nil || len(taken) != 6 {
		t.Fatalf("the old consumer delivered %d messages (%v), want 6", len(taken), err)
	}

	h := &admitting{fakeHandler: fakeHandler{behaviour: accept}}
	runWorker(t, e.js, Config{
		Handlers: map[contract.Kind]Handler{contract.KindRoad: h},
		Tenants:  &tenantList{tenants: []Tenant{roadTenant("known", 0)}},
	})
	results := collect(t, e.js, contract.StreamResults, "digitoll.result.>", n-2+1, 30*time.Second)
	eventually(t, 30*time.Second, "the submit stream to be empty", func() bool {
		return count(t, e.js, contract.StreamSubmit, contract.SubjectsSubmit) == 0
	})
	if got := count(t, e.js, contract.StreamResults, "digitoll.result.>"); got != n-2+1 {
		t.Errorf("%d results, want %d: one per message not acknowledged by the old process", got, n-2+1)
	}
	seen := map[string]contract.Status{}
	for _, m := range results {
		r := decodeResult(t, m)
		if _, twice := seen[r.ID]; twice {
			t.Errorf("%s answered twice", r.ID)
		}
		seen[r.ID] = r.Status
	}
	for i := range n {
		id := "k" + strconv.Itoa(i)
		want, calls := contract.StatusAccepted, 1
		if i < 2 {
			want, calls = "", 0
		}
		if seen[id] != want || h.callsOf(id) != calls {
			t.Errorf("%s: result %q after %d handler calls, want %q after %d", id, seen[id], h.callsOf(id), want, calls)
		}
	}
	if seen["g0"] != contract.StatusDeadLettered {
		t.Errorf("g0 of a tenant not served: result %q, want dead-lettered", seen["g0"])
	}
	dead := collect(t, e.js, contract.StreamDLQ, "digitoll.dlq.>", 1, 30*time.Second)[0]
	if reason := dead.Headers().Get(contract.HeaderDLQReason); reason != reasonUnsupported {
		t.Errorf("g0 dead-lettered with reason %q, want %q", reason, reasonUnsupported)
	}
	names := consumerNames(t, e.js)
	if names[ConsumerName(contract.KindRoad)] || !names[LaneConsumerName(contract.KindRoad, "known")] {
		t.Errorf("consumers %v, want %s and not %s", names, LaneConsumerName(contract.KindRoad, "known"), ConsumerName(contract.KindRoad))
	}
}

// An old-version process that starts while new ones run deletes the
// lanes' consumers and makes its kind's consumer again (as versions
// before lanes did at start). A lane made afterwards, refused over the
// overlap, deletes that consumer again and takes its subject back: every
// message is answered once. (How a lane notices that its consumer was
// deleted is TestConsumerIsRecreatedAfterDeletion's.)
func TestKindConsumerMadeAgainByAnOldProcessIsRetired(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t)
	h := &fakeHandler{behaviour: accept}
	tenants := &tenantList{tenants: []Tenant{{Name: "first", Kinds: []contract.Kind{contract.KindAir}}}}
	runWorker(t, e.js, Config{
		Handlers: map[contract.Kind]Handler{contract.KindRoad: h, contract.KindAir: h},
		Tenants:  tenants,
		LaneSync: 50 * time.Millisecond,
	})
	// Started, and done with the consumers of earlier versions.
	eventually(t, 30*time.Second, "the first lane's consumer", func() bool {
		return consumerNames(t, e.js)[LaneConsumerName(contract.KindAir, "first")]
	})
	old := jetstream.ConsumerConfig{
		Durable:       ConsumerName(contract.KindRoad),
		FilterSubject: contract.SubmitFilter(contract.KindRoad),
		AckPolicy:     jetstream.AckExplicitPolicy,
		MaxDeliver:    -1,
	}
	if _, err := e.js.CreateOrUpdateConsumer(ctx, contract.StreamSubmit, old); err != nil {
		t.Fatal(err)
	}
	const n = 5
	for i := range n {
		submit(t, e.js, contract.SubmitSubject(contract.KindRoad, "known"), "", roadBody("m"+strconv.Itoa(i)), nil)
	}
	tenants.mu.Lock()
	tenants.tenants = append(tenants.tenants, roadTenant("known", 0))
	tenants.mu.Unlock()

	collect(t, e.js, contract.StreamResults, "digitoll.result.>", n, 30*time.Second)
	eventually(t, 30*time.Second, "the submit stream to be empty", func() bool {
		return count(t, e.js, contract.StreamSubmit, contract.SubjectsSubmit) == 0
	})
	if got := count(t, e.js, contract.StreamResults, "digitoll.result.>"); got != n {
		t.Errorf("%d results, want %d", got, n)
	}
	for i := range n {
		if c := h.callsOf("m" + strconv.Itoa(i)); c != 1 {
			t.Errorf("m%d handled %d times, want 1", i, c)
		}
	}
	lane := LaneConsumerName(contract.KindRoad, "known")
	if names := consumerNames(t, e.js); names[old.Durable] || !names[lane] {
		t.Errorf("consumers %v, want %s and not %s", names, lane, old.Durable)
	}
}

// A worker serving tenants with no tenant and nothing waiting runs idle
// and stops cleanly.
func TestLanesWithoutTenants(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := runWorker(t, e.js, Config{
		Handlers: map[contract.Kind]Handler{contract.KindRoad: &fakeHandler{behaviour: accept}},
		Tenants:  &tenantList{},
	})
	if err := r.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// outageHandler fails every message transiently while broken, as with
// Toll down, and counts its tenants' probes.
type outageHandler struct {
	servesAll
	broken atomic.Bool
	probes atomic.Int32
	passed atomic.Int32
}

func (h *outageHandler) Handle(ctx context.Context, req handlers.Request) (handlers.Outcome, error) {
	if h.broken.Load() {
		return handlers.Outcome{}, failure.Mark(errors.New("toll answered 503"), failure.Transient)
	}
	return accept(ctx, req)
}

func (h *outageHandler) ProbeTenant(context.Context, string) error {
	h.probes.Add(1)
	if h.broken.Load() {
		return errors.New("toll answered 503")
	}
	h.passed.Add(1)
	return nil
}

// An outage pauses each tenant's lane once its own failures say so, but
// they wait for one probe of the kind, not one each: hundreds of tenants
// must not probe a Toll that is down hundreds of times per interval. One
// successful probe resumes them all.
func TestLanesShareTheProbeOfAnOutage(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	h := &outageHandler{}
	h.broken.Store(true)
	names := []string{"a", "b", "c"}
	var list []Tenant
	for _, n := range names {
		list = append(list, roadTenant(n, 0))
	}
	w := runWorker(t, e.js, Config{
		Handlers:        map[contract.Kind]Handler{contract.KindRoad: h},
		Tenants:         &tenantList{tenants: list},
		OutageThreshold: 2,
		RetryDelay:      func(int) time.Duration { return 20 * time.Millisecond },
		ProbeInterval:   50 * time.Millisecond,
		PauseFor:        5 * time.Second,
	}).w
	for _, n := range names {
		for i := range 3 {
			submit(t, e.js, contract.SubmitSubject(contract.KindRoad, n), "", roadBody(n+strconv.Itoa(i)), nil)
		}
	}
	eventually(t, 30*time.Second, "every tenant's lane paused for the outage", func() bool {
		paused := 0
		for _, s := range w.Status() {
			if s.Paused && s.Reason == pauseOutage {
				paused++
			}
		}
		return paused == len(names)
	})
	before := h.probes.Load()
	eventually(t, 30*time.Second, "a few probe rounds", func() bool { return h.probes.Load() >= before+3 })
	if err := w.KindHealth(contract.KindRoad); err == nil {
		t.Error("every tenant's lane is paused, yet the kind reports healthy")
	}

	h.broken.Store(false)
	collect(t, e.js, contract.StreamResults, "digitoll.result.>", 3*len(names), 30*time.Second)
	if n := h.passed.Load(); n != 1 {
		t.Errorf("%d successful probes, want 1: one probe of the kind resumes every tenant's lane", n)
	}
	for _, s := range w.Status() {
		if s.Paused {
			t.Errorf("%s still paused after the outage", s.Tenant)
		}
	}
}
