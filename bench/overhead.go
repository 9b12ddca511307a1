package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/handlers"
	"github.com/digitoll/digitoll-worker/toll"
)

// overheadPoll is the validation polling of the overhead scenario: the
// simulator validates at once, and a poll 1 ms after the write keeps
// both runs working rather than waiting out the default first pause of
// 500 ms, which would make them equally slow and hide the worker's cost.
var overheadPoll = handlers.PollPolicy{Initial: time.Millisecond}

// routeHousePost is the simulator's route of a house consignment create.
const routeHousePost = "POST /toll/api/movement/road/v2/house-consignment"

// overhead compares declarations per second through the whole worker
// (JetStream delivery, state records, Toll calls, result, ack) with a
// bare loop that calls the worker's own handler (and so the same Toll
// client) with the same concurrency, straight to the same simulator. The
// bare loop runs before and after the worker and the baseline is their
// mean, so that a drift of the machine during the scenario shows less.
func overhead(ctx context.Context, r *runner) ([]Figure, error) {
	n, c := r.cfg.Sizes.OverheadDeclarations, r.cfg.Sizes.OverheadConcurrency
	st, err := r.newStage(ctx, stageOptions{kinds: []contract.Kind{contract.KindRoad}, concurrency: c})
	if err != nil {
		return nil, err
	}
	defer st.close()
	svc, err := st.services(ctx, r)
	if err != nil {
		return nil, err
	}
	// The bare loop calls the worker's own road handler, polling tuned
	// in both.
	road, ok := svc.Handlers[contract.KindRoad].(*handlers.Movement)
	if !ok {
		return nil, fmt.Errorf("the road handler is a %T, not a movement handler", svc.Handlers[contract.KindRoad])
	}
	road.Poll = overheadPoll
	// Both runs find the token cached.
	if _, err := svc.Toll.Tokens.Token(ctx, toll.Scope(false, toll.RoadV2().ScopeBase)); err != nil {
		return nil, err
	}

	bare := func(prefix string) (loopRun, error) {
		msgs, err := houses(prefix, n)
		if err != nil {
			return loopRun{}, err
		}
		return bareLoop(ctx, road, msgs, c)
	}
	// A first wave opens the HTTP connections both runs then reuse.
	warm, err := houses("warm-up", c)
	if err != nil {
		return nil, err
	}
	if _, err := bareLoop(ctx, road, warm, c); err != nil {
		return nil, fmt.Errorf("warm-up: %w", err)
	}
	before, err := bare("bare-before")
	if err != nil {
		return nil, fmt.Errorf("bare loop: %w", err)
	}

	wall, cpu, err := st.throughput(ctx, svc, "worker", n)
	if err != nil {
		return nil, err
	}

	after, err := bare("bare-after")
	if err != nil {
		return nil, fmt.Errorf("bare loop: %w", err)
	}
	if posts := st.sim.Stats().Requests(routeHousePost); posts != 3*n+c {
		return nil, fmt.Errorf("the simulated Toll received %d house consignments for 3 × %d declarations and %d to warm up", posts, n, c)
	}

	workerRate := float64(n) / wall.Seconds()
	bareRate := float64(2*n) / (before.wall + after.wall).Seconds()
	ratio := workerRate / bareRate
	figs := []Figure{{
		Scenario: "overhead", Metric: "declarations/s",
		Measured: perSecond(workerRate), Value: workerRate,
		Baseline: perSecond(bareRate) + " bare loop", Ratio: ratio,
		Target: "≥ 0.80", Verdict: atLeast(ratio, 0.8),
		Note: fmt.Sprintf("overhead: %d house consignments through the worker, %d in flight, against the bare loop (the same handler and Toll client called straight, no NATS; mean of %s before and %s after the worker); "+
			"the simulator answers without latency and validates at once, and both poll 1 ms after the write, so that both are bound by CPU, not by waiting. "+
			"Everything runs in this process: the simulator's and the NATS server's work counts against both.",
			n, c, perSecond(float64(n)/before.wall.Seconds()), perSecond(float64(n)/after.wall.Seconds())),
	}}
	if cpu > 0 {
		workerCPU := cpu / time.Duration(n)
		bareCPU := (before.cpu + after.cpu) / time.Duration(2*n)
		figs = append(figs, Figure{
			Scenario: "overhead", Metric: "CPU per declaration",
			Measured: millis(workerCPU), Value: float64(workerCPU) / float64(time.Millisecond),
			Baseline: millis(bareCPU) + " bare loop", Ratio: float64(workerCPU) / float64(bareCPU),
			Verdict: Info,
			Note: fmt.Sprintf("overhead: process CPU time (getrusage) over the run / declarations, simulator and NATS server included; the worker's own cost per declaration is about %s.",
				millis(workerCPU-bareCPU)),
		})
	}
	return figs, nil
}

// loopRun is what a bare loop measured.
type loopRun struct {
	wall, cpu time.Duration
	// meanLatency is the mean time of one Handle call.
	meanLatency time.Duration
}

// bareLoop hands each submission to h, concurrency at once, with no NATS
// and no journal: the Toll calls the worker makes, straight to the
// simulator. Every call must end accepted.
func bareLoop(parent context.Context, h handlers.Handler, msgs []message, concurrency int) (loopRun, error) {
	if len(msgs) == 0 {
		return loopRun{}, errors.New("bare loop without submissions")
	}
	reqs := make([]handlers.Request, len(msgs))
	for i, m := range msgs {
		sub, err := contract.ParseSubmission(m.kind, m.body)
		if err != nil {
			return loopRun{}, err
		}
		reqs[i] = handlers.Request{Tenant: contract.DefaultTenant, Kind: m.kind, Submission: sub, ReceivedAt: time.Now(), Delivery: 1}
	}
	// ctx ends the loop at the first failure.
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	var (
		next    atomic.Int64
		total   atomic.Int64
		errOnce sync.Once
		first   error
		wg      sync.WaitGroup
	)
	sp := startSpan()
	for range min(concurrency, len(reqs)) {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= len(reqs) {
					return
				}
				t := time.Now()
				out, err := h.Handle(ctx, reqs[i])
				total.Add(int64(time.Since(t)))
				if err == nil && out.Status != contract.StatusAccepted {
					err = fmt.Errorf("%s: %w: %s %s %v", reqs[i].Submission.ID, errNotAccepted, out.Status, out.Note, out.Errors)
				}
				if err != nil {
					errOnce.Do(func() { first = err; cancel() })
					return
				}
			}
		})
	}
	wg.Wait()
	wall, cpu := sp.end(time.Now())
	if first != nil {
		return loopRun{}, first
	}
	if err := parent.Err(); err != nil {
		return loopRun{}, err
	}
	return loopRun{wall: wall, cpu: cpu, meanLatency: time.Duration(total.Load() / int64(len(reqs)))}, nil
}
