package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/handlers"
	"github.com/digitoll/digitoll-worker/toll"
)

// formerPoll is the validation polling the latency scenario measures next
// to the default: the former default, pauses from 500 ms growing by 1.5
// up to 10 s. A poll finds the verdict at most one pause after Toll has
// it, so these answer a 2 s validation after about 2.6 s, 0.82 of the
// ideal before any cost of the worker; the default (250 ms growing by
// 1.2 up to 2 s) answers after about 2.2 s, for about twice the polls.
func formerPoll() handlers.PollPolicy {
	return handlers.PollPolicy{Initial: 500 * time.Millisecond, Multiplier: 1.5, Max: 10 * time.Second}
}

// routeHouseStatus is the simulator's route of a house consignment's
// validation status.
const routeHouseStatus = "GET /toll/api/movement/road/status/v2/house-consignment/validation-status/{requestId}"

// latency measures how well the worker hides Toll's latency: each call
// takes CallLatency and validation ValidationDelay, so a declaration can
// finish no sooner than one write, the validation and one status read
// after it; with LatencyConcurrency in flight the ideal throughput is the
// in-flight limit over that latency. The worker runs exactly as
// configured for production (app.NewServices), default polling included.
// A plain JetStream worker without a journal then takes the same backlog
// with the same handler, for the ratio a naive worker reaches. One wave of
// the handler alone, with the default and with the former polling, shows
// how much of the gap is the polling's.
func latency(ctx context.Context, r *runner) ([]Figure, error) {
	sz := r.cfg.Sizes
	n, c := sz.LatencyDeclarations, sz.LatencyConcurrency
	st, err := r.newStage(ctx, stageOptions{
		kinds: []contract.Kind{contract.KindRoad}, concurrency: c,
		callLatency: sz.CallLatency, validationDelay: sz.ValidationDelay,
	})
	if err != nil {
		return nil, err
	}
	defer st.close()
	svc, err := st.services(ctx, r)
	if err != nil {
		return nil, err
	}
	ts, err := tenantServices(svc)
	if err != nil {
		return nil, err
	}
	if _, err := ts.Toll.Tokens.Token(ctx, toll.Scope(false, toll.RoadV2().ScopeBase)); err != nil {
		return nil, err
	}

	run, err := st.throughput(ctx, svc, "latency", n)
	if err != nil {
		return nil, err
	}
	wall, cpu := run.wall, run.cpu
	stats := st.sim.Stats()
	if posts := stats.Requests(routeHousePost); posts != n {
		return nil, fmt.Errorf("the simulated Toll received %d house consignments for %d declarations", posts, n)
	}
	polls := float64(stats.Requests(routeHouseStatus)) / float64(n)

	// The plain JetStream worker, with the same handler and so the same
	// default polling, takes the same backlog: what a worker without a
	// journal reaches against the ideal.
	if err := st.clearConsumers(ctx); err != nil {
		return nil, err
	}
	p := plainWorker{js: st.js, handler: ts.Handlers[contract.KindRoad], kind: contract.KindRoad, concurrency: c}
	plain, err := st.throughputOf(ctx, "plain JetStream worker", p.run, "latency-plain", n)
	if err != nil {
		return nil, err
	}
	plainWall := plain.wall
	if posts := st.sim.Stats().Requests(routeHousePost); posts != 2*n {
		return nil, fmt.Errorf("the simulated Toll received %d house consignments for 2 × %d declarations", posts, n)
	}

	// One wave each of the worker's own handler alone, as production
	// builds it and with the former default polling.
	def, ok := ts.Handlers[contract.KindRoad].(*handlers.Movement)
	if !ok {
		return nil, fmt.Errorf("the road handler is a %T, not a movement handler", ts.Handlers[contract.KindRoad])
	}
	wave := func(prefix string, h handlers.Handler) (time.Duration, error) {
		msgs, err := houses(prefix, c)
		if err != nil {
			return 0, err
		}
		run, err := bareLoop(ctx, h, msgs, c)
		return run.meanLatency, err
	}
	defLatency, err := wave("wave-default", def)
	if err != nil {
		return nil, fmt.Errorf("handler alone: %w", err)
	}
	fixed := *def
	fixed.Poll.Pacer = nil
	fixedLatency, err := wave("wave-fixed", &fixed)
	if err != nil {
		return nil, fmt.Errorf("handler alone, fixed polling: %w", err)
	}
	former := *def
	former.Poll = formerPoll()
	propLatency, err := wave("wave-former", &former)
	if err != nil {
		return nil, fmt.Errorf("handler alone, former default polling: %w", err)
	}

	ideal := sz.ValidationDelay + 2*sz.CallLatency
	// A backlog of n with c in flight takes at best ceil(n/c) rounds of
	// the ideal latency: the last round is partly empty, so c / ideal
	// (the steady state) is out of reach by up to one round in n/c.
	waves := (n + c - 1) / c
	idealRate := float64(n) / (float64(waves) * ideal.Seconds())
	steadyRate := float64(c) / ideal.Seconds()
	rate := float64(n) / wall.Seconds()
	ratio := rate / idealRate
	plainRate := float64(n) / plainWall.Seconds()
	handlerRate := float64(c) / defLatency.Seconds()
	figs := []Figure{
		{
			Scenario: "latency", Metric: "declarations/s",
			Measured: perSecond(rate), Value: rate,
			Baseline: fmt.Sprintf("%s ideal (%d in %d rounds of %s)", perSecond(idealRate), n, waves, seconds(ideal)), Ratio: ratio,
			Target: "≥ 0.95", Verdict: atLeast(ratio, 0.95),
			Note: fmt.Sprintf("latency: %d house consignments, %d in flight, %s per Toll call and %s of validation; "+
				"ideal = the backlog over ceil(backlog / in-flight limit) rounds of (one write + the validation + one status read); %s in the steady state (in-flight limit / that time), %.2f of which the worker reached. The worker is wired as in production, default (adaptive) polling included.",
				n, c, sz.CallLatency, sz.ValidationDelay, perSecond(steadyRate), rate/steadyRate),
		},
		{
			Scenario: "latency", Metric: "plain JetStream worker, declarations/s",
			Measured: perSecond(plainRate), Value: plainRate,
			Baseline: perSecond(idealRate) + " ideal", Ratio: plainRate / idealRate,
			Verdict: Info,
			Note:    "latency: the plain JetStream worker (a pull consumer with a pool of the same size calling the same handler, default polling included, then publishing the result and acking; no journal) with the same backlog, after the worker.",
		},
		{
			Scenario: "latency", Metric: "worker/plain JetStream, declarations/s",
			Measured: perSecond(rate), Value: rate,
			Baseline: perSecond(plainRate) + " plain JetStream", Ratio: rate / plainRate,
			Verdict: Info,
		},
		{
			Scenario: "latency", Metric: "handler alone, adaptive polling",
			Measured: seconds(defLatency) + " per declaration", Value: defLatency.Seconds(),
			Baseline: seconds(ideal) + " ideal", Ratio: ideal.Seconds() / defLatency.Seconds(),
			Verdict: Info,
			Note: fmt.Sprintf("latency: mean time of one declaration in one wave of %d through the handler alone (no NATS). A status poll finds the verdict up to one pause after Toll has it, "+
				"and adaptive polling puts the first poll where the worker's run found verdicts, then polls every 50 ms growing by 1.3: this ratio bounds the worker's.", c),
		},
		{
			Scenario: "latency", Metric: "handler alone, fixed polling",
			Measured: seconds(fixedLatency) + " per declaration", Value: fixedLatency.Seconds(),
			Baseline: seconds(ideal) + " ideal", Ratio: ideal.Seconds() / fixedLatency.Seconds(),
			Verdict: Info,
			Note:    "latency: the same wave with DIGITOLL_VALIDATION_POLLING=fixed: pauses from 250 ms growing by 1.2 up to 2 s, whatever Toll did before.",
		},
		{
			Scenario: "latency", Metric: "worker against the handler alone",
			Measured: perSecond(rate), Value: rate,
			Baseline: fmt.Sprintf("%s (%d / %s)", perSecond(handlerRate), c, seconds(defLatency)), Ratio: rate / handlerRate,
			Verdict: Info,
			Note:    "latency: the part of the gap to the ideal that is the worker's own (JetStream, state records, results), with the polling's share taken out.",
		},
		{
			Scenario: "latency", Metric: "handler alone, former default polling",
			Measured: seconds(propLatency) + " per declaration", Value: propLatency.Seconds(),
			Baseline: seconds(ideal) + " ideal", Ratio: ideal.Seconds() / propLatency.Seconds(),
			Verdict: Info,
			Note: fmt.Sprintf("latency: the same wave with PollPolicy{Initial: %s, Multiplier: %.1f, Max: %s}, the default before the benchmark showed "+
				"that it answered a few seconds' validation late; the default now polls about twice as often.",
				formerPoll().Initial, formerPoll().Multiplier, formerPoll().Max),
		},
		{
			Scenario: "latency", Metric: "status polls per declaration",
			Measured: fmt.Sprintf("%.2f", polls), Value: polls,
			Verdict: Info,
		},
	}
	defaults, err := st.defaultConfig()
	if err != nil {
		return nil, err
	}
	if limit := defaults.Limits.TollRate; limit > 0 {
		calls := 1 + polls
		capRate := limit / calls
		figs = append(figs, Figure{
			Scenario: "latency", Metric: "cap of the default Toll rate limit",
			Measured: perSecond(capRate), Value: capRate,
			Baseline: perSecond(idealRate) + " ideal", Ratio: capRate / idealRate,
			Verdict: Info,
			Note: fmt.Sprintf("latency: the scenarios run with the worker's rate limit off; at its default of %g requests/s per Toll API, "+
				"%.1f calls per declaration (one write, %.1f status polls) allow at most this many declarations per second, whatever the in-flight limit.",
				limit, calls, polls),
		})
	}
	if cpu > 0 {
		per := cpu / time.Duration(n)
		figs = append(figs, Figure{
			Scenario: "latency", Metric: "CPU per declaration",
			Measured: millis(per), Value: float64(per) / float64(time.Millisecond),
			Verdict: Info,
			Note:    "latency: process CPU time (getrusage) over the worker's run / declarations, the simulator and the NATS server in this process included.",
		})
	}
	return figs, nil
}
