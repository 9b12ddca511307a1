package handlers

import (
	"container/heap"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/toll"
)

// paceRun is what a simulated run of validations cost: how late the
// verdicts were found on average (after Toll had them, one status call's
// half round trip included) and how many status calls each took.
type paceRun struct {
	late  time.Duration
	polls float64
}

// simulatePolling runs n validations, c at a time, in virtual time:
// polling starts when a write is answered, readiness(i) after it Toll has
// validation i's verdict, and every status call takes rtt (Toll reads the
// status halfway). The pauses are pc's (nil: the fixed schedule), and pc
// learns from each verdict as pollUntilVerdict has it learn.
func simulatePolling(pc *Pacer, n, c int, rtt time.Duration, readiness func(i int) time.Duration) paceRun {
	const level = contract.LevelHouseConsignment
	p := PollPolicy{}.withDefaults()
	type validation struct {
		start, ready, prev, sent, pause time.Duration
		sched                           pauses
		polls                           int
	}
	vs := make([]validation, n)
	due := &pollQueue{}
	started := 0
	begin := func(now time.Duration) {
		i := started
		started++
		vs[i] = validation{start: now, ready: readiness(i), sched: pc.schedule(contract.KindRoad, level, p)}
		vs[i].pause = vs[i].sched.first
		heap.Push(due, pollAt{now + vs[i].pause, i})
	}
	for started < min(c, n) {
		begin(0)
	}
	var late time.Duration
	polls := 0
	for due.Len() > 0 {
		e := heap.Pop(due).(pollAt)
		v := &vs[e.i]
		v.polls++
		polls++
		v.prev, v.sent = v.sent, e.at-v.start
		answered := e.at + rtt
		if e.at+rtt/2 >= v.start+v.ready {
			late += answered - (v.start + v.ready)
			pc.observe(contract.KindRoad, level, v.prev, v.sent, v.polls)
			if started < n {
				begin(answered)
			}
			continue
		}
		v.pause = v.sched.after(v.polls, v.pause)
		heap.Push(due, pollAt{answered + v.pause, e.i})
	}
	return paceRun{late: late / time.Duration(n), polls: float64(polls) / float64(n)}
}

type pollAt struct {
	at time.Duration
	i  int
}

type pollQueue []pollAt

func (q pollQueue) Len() int           { return len(q) }
func (q pollQueue) Less(i, j int) bool { return q[i].at < q[j].at }
func (q pollQueue) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *pollQueue) Push(x any)        { *q = append(*q, x.(pollAt)) }
func (q *pollQueue) Pop() any {
	old := *q
	x := old[len(old)-1]
	*q = old[:len(old)-1]
	return x
}

// Against validation times seen at Toll, the pacer makes fewer status
// calls than the fixed schedule and finds verdicts no later (within a
// margin): it skips the polls that recent verdicts say are futile.
// Virtual time, so the figures are exact and the test is quick.
func TestPacerPollsLessAndNoLater(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	uniform := func(from, to time.Duration) func(int) time.Duration {
		return func(int) time.Duration { return from + time.Duration(rng.Int64N(int64(to-from))) }
	}
	tests := []struct {
		name      string
		readiness func(int) time.Duration
		// the pacer's polls at most this share of the fixed schedule's,
		// and its lateness at most the fixed schedule's plus margin.
		pollShare float64
		margin    time.Duration
	}{
		{"steady 2 s (the benchmark's)", func(int) time.Duration { return 2 * time.Second }, 0.6, 10 * time.Millisecond},
		{"1 to 2 s (Toll's usual)", uniform(time.Second, 2*time.Second), 1.05, 0},
		{"5 to 10 s (Toll's common)", uniform(5*time.Second, 10*time.Second), 0.7, 0},
		{"slower half-way, 1 s then 8 s", func(i int) time.Duration { return time.Second + time.Duration(i/2500)*7*time.Second }, 0.7, 0},
		{"faster half-way, 8 s then 1 s", func(i int) time.Duration { return 8*time.Second - time.Duration(i/2500)*7*time.Second }, 0.6, 600 * time.Millisecond},
	}
	for _, tc := range tests {
		for _, c := range []int{4, 256} {
			t.Run(fmt.Sprintf("%s, %d at once", tc.name, c), func(t *testing.T) {
				fixed := simulatePolling(nil, 5000, c, 50*time.Millisecond, tc.readiness)
				paced := simulatePolling(NewPacer(), 5000, c, 50*time.Millisecond, tc.readiness)
				t.Logf("fixed: %v late, %.2f polls; paced: %v late, %.2f polls", fixed.late, fixed.polls, paced.late, paced.polls)
				if paced.polls > tc.pollShare*fixed.polls {
					t.Errorf("paced %.2f polls per validation, want at most %.2f × the fixed schedule's %.2f", paced.polls, tc.pollShare, fixed.polls)
				}
				if paced.late > fixed.late+tc.margin {
					t.Errorf("paced verdicts %v late, want at most the fixed schedule's %v + %v", paced.late, fixed.late, tc.margin)
				}
			})
		}
	}
}

// A pacer that has not seen paceMinSamples verdicts of an API's level, or whose
// verdicts come sooner than the fixed schedule's first poll, polls on the
// fixed schedule; the jump is capped at half the polling timeout.
func TestPacerSchedule(t *testing.T) {
	p := PollPolicy{}.withDefaults()
	const level = contract.LevelTransport
	teach := func(n int, at time.Duration) *Pacer {
		pc := NewPacer()
		for range n {
			pc.observe(contract.KindRoad, level, at-10*time.Millisecond, at+10*time.Millisecond, 3)
		}
		return pc
	}
	tests := []struct {
		name      string
		pc        *Pacer
		kind      contract.Kind
		level     contract.Level
		wantFirst time.Duration
		wantThen  time.Duration
	}{
		{"no pacer", nil, contract.KindRoad, level, p.Initial, p.next(p.Initial)},
		{"too few verdicts", teach(paceMinSamples-1, 3*time.Second), contract.KindRoad, level, p.Initial, p.next(p.Initial)},
		{"another level's verdicts", teach(paceMinSamples, 3*time.Second), contract.KindRoad, contract.LevelHouseConsignment, p.Initial, p.next(p.Initial)},
		{"another API's verdicts", teach(paceMinSamples, 3*time.Second), contract.KindAir, level, p.Initial, p.next(p.Initial)},
		{"verdicts at 3 s", teach(paceMinSamples, 3*time.Second), contract.KindRoad, level, 3*time.Second - 2*75*time.Millisecond, 75 * time.Millisecond},
		{"verdicts sooner than the first poll", teach(paceMinSamples, 100*time.Millisecond), contract.KindRoad, level, p.Initial, p.next(p.Initial)},
		{"verdicts later than half the timeout", teach(paceMinSamples, 20*time.Minute), contract.KindRoad, level, p.Timeout/2 - 2*p.Initial, p.Initial},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.pc.schedule(tc.kind, tc.level, p)
			if got.first != tc.wantFirst || got.then != tc.wantThen {
				t.Errorf("first pause %v then %v, want %v then %v", got.first, got.then, tc.wantFirst, tc.wantThen)
			}
			if got.after(2, time.Second) > p.Max {
				t.Errorf("a later pause %v exceeds Max %v", got.after(2, time.Second), p.Max)
			}
		})
	}
}

// Against the simulator, a handler with a pacer makes fewer status calls
// once it has seen a wave of verdicts, and follows an earlier delivery's
// requestId on the fixed schedule without learning from it.
func TestSimulatorPacedPolling(t *testing.T) {
	env := startSim(t)
	// Validation long against the pauses, so that a loaded machine's
	// slower status calls still leave the first wave many polls.
	env.sim.SetValidationDelay(600 * time.Millisecond)
	h := env.handler(toll.RoadV2())
	h.Poll = PollPolicy{Initial: 20 * time.Millisecond, Max: 50 * time.Millisecond, Multiplier: 1.2, Timeout: 10 * time.Second, Pacer: NewPacer()}

	wave := func(name string) float64 {
		before := env.sim.Stats().Requests(routeRoadStatusHouse)
		var wg sync.WaitGroup
		errs := make(chan error, paceMinSamples)
		for i := range paceMinSamples {
			wg.Go(func() {
				doc := fmt.Sprintf("HWB-%s-%d", name, i)
				out, err := h.Handle(t.Context(), request(doc, contract.OpCreate, contract.LevelHouseConsignment, "", declaration(contract.LevelHouseConsignment, doc)))
				if err == nil && out.Status != contract.StatusAccepted {
					err = fmt.Errorf("%s: %+v, want accepted", doc, out)
				}
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		return float64(env.sim.Stats().Requests(routeRoadStatusHouse)-before) / paceMinSamples
	}
	first := wave("first")
	second := wave("second")
	t.Logf("status calls per declaration: %.2f in the first wave, %.2f once paced", first, second)
	if second >= first-1 {
		t.Errorf("%.2f status calls per declaration once paced, want at least one fewer than the first wave's %.2f", second, first)
	}

	// Following a requestId: the verdict may be long ready, so the first
	// poll comes at Initial, and the pacer does not learn from it.
	jump := h.Poll.Pacer.schedule(contract.KindRoad, contract.LevelHouseConsignment, h.Poll.withDefaults()).first
	created, err := h.Handle(t.Context(), request("HWB-follow", contract.OpCreate, contract.LevelHouseConsignment, "", declaration(contract.LevelHouseConsignment, "HWB-FOLLOW")))
	if err != nil {
		t.Fatal(err)
	}
	before := env.sim.Stats().Requests(routeRoadStatusHouse)
	req := request("HWB-follow", contract.OpCreate, contract.LevelHouseConsignment, "", declaration(contract.LevelHouseConsignment, "HWB-FOLLOW"))
	req.RequestID = created.RequestID
	start := time.Now()
	if out, err := h.Handle(t.Context(), req); err != nil || out.MRN != created.MRN {
		t.Fatalf("following %s: %+v, %v; want the MRN %s", created.RequestID, out, err, created.MRN)
	}
	if took := time.Since(start); took >= jump {
		t.Errorf("following a ready requestId took %v, at least the learned first pause %v: it was paced", took, jump)
	}
	if n := env.sim.Stats().Requests(routeRoadStatusHouse) - before; n != 1 {
		t.Errorf("%d status calls following a ready requestId, want 1", n)
	}
}
