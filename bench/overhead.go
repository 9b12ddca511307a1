package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/digitoll/digitoll-worker/app"
	"github.com/digitoll/digitoll-worker/config"
	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/handlers"
	"github.com/digitoll/digitoll-worker/telemetry"
	"github.com/digitoll/digitoll-worker/toll"
	"github.com/digitoll/digitoll-worker/worker"
)

// overheadPoll is the validation polling of the overhead scenario: the
// simulator validates at once, and a poll 1 ms after the write keeps
// both runs working rather than waiting out the default first pause of
// 500 ms, which would make them equally slow and hide the worker's cost.
var overheadPoll = handlers.PollPolicy{Initial: time.Millisecond}

// routeHousePost is the simulator's route of a house consignment create.
const routeHousePost = "POST /toll/api/movement/road/v2/house-consignment"

// overhead measures what the worker costs per declaration against three
// baselines, in the same run and against the same simulator and NATS
// server: a plain JetStream worker without a journal (plainWorker), the
// same plain worker making the journal's three KV writes per message,
// and a bare loop calling the worker's own handler straight, without
// NATS (bareLoop). All call the same handler and so the same Toll
// client, with the same concurrency. Beside CPU time it counts the
// messages the NATS server received and sent per declaration, which
// unlike CPU time do not depend on the machine's noise. The worker runs twice per round: with the
// runner's logger (by default discarding) and, unless
// Config.DiscardLogsOnly, with the production log handler formatting into
// io.Discard. The runs alternate over the rounds (reversed every other
// round), so that a drift of the shared machine falls on all of them, and
// each ratio is taken per round: its median and extremes are reported.
func overhead(ctx context.Context, r *runner) ([]Figure, error) {
	n, c := r.cfg.Sizes.OverheadDeclarations, r.cfg.Sizes.OverheadConcurrency
	rounds := r.cfg.Sizes.OverheadRounds
	if r.cfg.Rounds > 0 {
		rounds = r.cfg.Rounds
	}
	rounds = max(rounds, 1)
	st, err := r.newStage(ctx, stageOptions{kinds: []contract.Kind{contract.KindRoad}, concurrency: c})
	if err != nil {
		return nil, err
	}
	defer st.close()
	cfg, err := st.config()
	if err != nil {
		return nil, err
	}
	// The baselines share one handler, its polling tuned as the worker's.
	base, err := st.services(ctx, r)
	if err != nil {
		return nil, err
	}
	road, err := tunedRoad(ctx, base)
	if err != nil {
		return nil, err
	}
	// posts counts the house consignments sent, to check that each
	// declaration reached Toll once.
	posts := 0
	warmUp := func(prefix string, h handlers.Handler) error {
		msgs, err := houses(prefix, c)
		if err != nil {
			return err
		}
		posts += len(msgs)
		if _, err := bareLoop(ctx, h, msgs, c); err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
		return nil
	}
	// A first wave opens the HTTP connections the baselines then reuse.
	if err := warmUp("warm-up", road); err != nil {
		return nil, err
	}
	// The plain worker with journal writes writes into the worker's
	// bucket, as EnsureStreams made it.
	kv, err := st.js.KeyValue(ctx, worker.StateBucket)
	if err != nil {
		return nil, err
	}

	// workerRun runs a fresh worker (a Services runs once) with its token
	// fetched and its connections opened by a wave of its own handler.
	workerRun := func(logger *slog.Logger) func(prefix string) (loopRun, error) {
		return func(prefix string) (loopRun, error) {
			svc, err := st.servicesLogging(ctx, logger)
			if err != nil {
				return loopRun{}, err
			}
			h, err := tunedRoad(ctx, svc)
			if err != nil {
				return loopRun{}, err
			}
			if err := warmUp(prefix+"-warm-up", h); err != nil {
				return loopRun{}, err
			}
			if err := st.clearConsumers(ctx); err != nil {
				return loopRun{}, err
			}
			return st.throughput(ctx, svc, prefix, n)
		}
	}
	runs := []overheadRun{
		{name: "worker", run: workerRun(r.log)},
		{name: "plain", run: func(prefix string) (loopRun, error) {
			if err := st.clearConsumers(ctx); err != nil {
				return loopRun{}, err
			}
			p := plainWorker{js: st.js, handler: road, kind: contract.KindRoad, concurrency: c}
			return st.throughputOf(ctx, "plain JetStream worker", p.run, prefix, n)
		}},
		{name: "journal", run: func(prefix string) (loopRun, error) {
			if err := st.clearConsumers(ctx); err != nil {
				return loopRun{}, err
			}
			p := plainWorker{js: st.js, handler: road, kind: contract.KindRoad, concurrency: c, journal: kv}
			return st.throughputOf(ctx, "plain JetStream worker with journal writes", p.run, prefix, n)
		}},
		{name: "bare", run: func(prefix string) (loopRun, error) {
			msgs, err := houses(prefix, n)
			if err != nil {
				return loopRun{}, err
			}
			run, err := bareLoop(ctx, road, msgs, c)
			if err != nil {
				return loopRun{}, fmt.Errorf("bare loop: %w", err)
			}
			return run, nil
		}},
	}
	// records counts what the production handler formats.
	var records atomic.Int64
	if !r.cfg.DiscardLogsOnly {
		runs = slices.Insert(runs, 1, overheadRun{name: "logged", run: workerRun(productionLogger(cfg.Log, &records))})
	}
	for round := range rounds {
		order := slices.Clone(runs)
		if round%2 == 1 {
			slices.Reverse(order)
		}
		for _, o := range order {
			// The simulator forgets the declarations of the runs before,
			// which would otherwise grow the heap that every run's
			// collections mark (hundreds of MB over the rounds).
			st.sim.ForgetDeclarations()
			i := slices.IndexFunc(runs, func(x overheadRun) bool { return x.name == o.name })
			got, err := o.run(fmt.Sprintf("%s-%d", o.name, round+1))
			if err != nil {
				return nil, fmt.Errorf("round %d: %w", round+1, err)
			}
			posts += n
			runs[i].runs = append(runs[i].runs, got)
		}
	}
	if got := st.sim.Stats().Requests(routeHousePost); got != posts {
		return nil, fmt.Errorf("the simulated Toll received %d house consignments for %d declarations", got, posts)
	}

	byName := map[string]overheadRun{}
	for _, o := range runs {
		byName[o.name] = o
	}
	wk, plain, journal, bare := byName["worker"], byName["plain"], byName["journal"], byName["bare"]
	about := fmt.Sprintf("overhead: %d house consignments per run, %d in flight, %d rounds of %s alternated (reversed every other round: worker = the worker with logs discarded, logged = the worker with the production log handler, plain = the plain JetStream worker, journal = the plain JetStream worker with the journal's three KV writes, bare = the bare loop); median (min–max) over the rounds, and the ratio is the median (min–max) of the rounds' ratios. "+
		"The simulator answers without latency and validates at once, and all poll 1 ms after the write, so that all are bound by CPU, not by waiting. "+
		"CPU is this process's (getrusage), so the simulator's and the NATS server's work counts against every run; before each run the simulator forgets the declarations so far and the heap is collected, so that no run pays for marking what the others left. "+
		"The plain JetStream worker is a pull consumer with a pool of %d calling the same handler, publishing the result and acking: no journal, lanes, tracing or dead letters. "+
		"The plain JetStream worker with journal writes is that worker plus, per message, the three KV writes of the worker's journal into its bucket %s (a Create of the record sending before the handler, an Update to sent after it, an Update to done with the result before publishing it), so that the worker's own CPU shows apart from the price of the writes its exactly-once guarantee needs. "+
		"The bare loop calls the same handler without NATS. "+
		"NATS messages per declaration are the embedded server's counters (Varz in_msgs, out_msgs) over the same span as the CPU time: unlike CPU time they do not depend on what else the machine runs.",
		n, c, rounds, strings.Join(names(runs), ", "), c, worker.StateBucket)
	figs := []Figure{
		rateFigure("declarations/s", n, wk, bare, "bare loop", rateFloor, about),
		cpuFigure("CPU per declaration", n, wk, bare, "bare loop", 0, ""),
		cpuFigure("CPU per declaration, worker/plain JetStream", n, wk, plain, "plain JetStream", cpuCeiling, ""),
	}
	if logged, ok := byName["logged"]; ok {
		figs = append(figs,
			cpuFigure("CPU per declaration, real logger, worker/plain JetStream", n, logged, plain, "plain JetStream", cpuCeiling,
				fmt.Sprintf("overhead: the worker logging through the production %s handler at level %s (as `digitoll run` builds it) into io.Discard, so that formatting is counted: %.1f records per declaration, warm-up waves included. The other worker run logs to the bench's own logger, which by default discards records unformatted.",
					cfg.Log.Format, cfg.Log.Level, float64(records.Load())/float64(rounds*(n+c)))),
			cpuFigure("CPU per declaration, real logger, worker/bare", n, logged, bare, "bare loop", 0, ""),
		)
	}
	figs = append(figs,
		cpuFigure("CPU per declaration, worker/plain JetStream + journal writes", n, wk, journal, "plain + journal", journalCPUCeiling,
			"overhead: against the plain JetStream worker that also makes the journal's three KV writes per message (Create sending, Update sent, Update done, each awaiting its ack): what the worker spends beyond them is its own code (lanes, tracing, heartbeats, the decisions around the journal) and its other NATS traffic."),
	)
	if logged, ok := byName["logged"]; ok {
		figs = append(figs,
			cpuFigure("CPU per declaration, real logger, worker/plain JetStream + journal writes", n, logged, journal, "plain + journal", journalCPUCeiling, ""))
	}
	figs = append(figs,
		cpuFigure("CPU per declaration, plain + journal/plain JetStream", n, journal, plain, "plain JetStream", 0,
			"overhead: what the journal's three KV writes per message cost the plain JetStream worker (the process's CPU, so the NATS server's work storing them counts)."),
		allocFigure("allocations per declaration, worker/plain JetStream", n, wk, plain, "plain JetStream",
			"overhead: heap objects the whole process allocated per declaration (runtime/metrics /gc/heap/allocs:objects), the simulator's and the NATS server's included. Unlike CPU time it does not depend on what else the machine runs: the same work allocates the same objects to within a fraction of a percent, so a change of the worker's allocations shows in a single run."),
		allocFigure("allocations per declaration, worker/plain JetStream + journal writes", n, wk, journal, "plain + journal", ""),
		cpuFigure("CPU per declaration, plain JetStream/bare", n, plain, bare, "bare loop", 0, ""),
		rateFigure("declarations/s, worker/plain JetStream", n, wk, plain, "plain JetStream", 0, ""),
	)
	// The NATS server's counters, where it runs in this process.
	traffic := []struct {
		metric string
		run    overheadRun
		note   string
	}{
		{"NATS messages per declaration, worker/plain JetStream", wk,
			"overhead: the messages the NATS server received (in) and sent (out) during each run, per declaration: publishes, acks, pull requests, KV writes and JetStream's replies, the results watched by the bench included (one out each in every run). The ratio is that of the messages both ways."},
		{"NATS messages per declaration, real logger, worker/plain JetStream", byName["logged"], ""},
		{"NATS messages per declaration, plain + journal/plain JetStream", journal, ""},
	}
	for _, t := range traffic {
		if f, ok := trafficFigure(t.metric, n, t.run, plain, "plain JetStream", t.note); ok {
			figs = append(figs, f)
		}
	}
	return figs, nil
}

// overheadRun is one of the runs the overhead scenario alternates.
type overheadRun struct {
	name string
	run  func(prefix string) (loopRun, error)
	// runs are its measurements, one per round.
	runs []loopRun
}

func names(runs []overheadRun) []string {
	out := make([]string, len(runs))
	for i, r := range runs {
		out[i] = r.name
	}
	return out
}

// tunedRoad is svc's road handler with the overhead scenario's polling,
// its token fetched.
func tunedRoad(ctx context.Context, svc *app.Services) (*handlers.Movement, error) {
	ts, err := tenantServices(svc)
	if err != nil {
		return nil, err
	}
	road, ok := ts.Handlers[contract.KindRoad].(*handlers.Movement)
	if !ok {
		return nil, fmt.Errorf("the road handler is a %T, not a movement handler", ts.Handlers[contract.KindRoad])
	}
	road.Poll = overheadPoll
	if _, err := ts.Toll.Tokens.Token(ctx, toll.Scope(false, toll.RoadV2().ScopeBase)); err != nil {
		return nil, err
	}
	return road, nil
}

// productionLogger is the logger `digitoll run` builds for c, writing to
// io.Discard: every record is formatted as in production, then dropped.
// records counts the records formatted.
func productionLogger(c config.Log, records *atomic.Int64) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.Level}
	var h slog.Handler = slog.NewTextHandler(io.Discard, opts)
	if c.Format == "json" {
		h = slog.NewJSONHandler(io.Discard, opts)
	}
	return slog.New(telemetry.LogHandler(countingHandler{h, records}))
}

// countingHandler counts the records its handler formats.
type countingHandler struct {
	slog.Handler
	n *atomic.Int64
}

// Handle implements slog.Handler.
func (h countingHandler) Handle(ctx context.Context, r slog.Record) error {
	h.n.Add(1)
	return h.Handler.Handle(ctx, r)
}

// WithAttrs implements slog.Handler.
func (h countingHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return countingHandler{h.Handler.WithAttrs(attrs), h.n}
}

// WithGroup implements slog.Handler.
func (h countingHandler) WithGroup(name string) slog.Handler {
	return countingHandler{h.Handler.WithGroup(name), h.n}
}

// The overhead scenario's targets. Each figure prints its bound from the
// same number it is judged by.
const (
	// rateFloor: the worker's declarations per second against the bare
	// loop's.
	rateFloor = 0.80
	// cpuCeiling: the worker's CPU per declaration against the plain
	// JetStream worker's (issue 14's goal).
	cpuCeiling = 1.35
	// journalCPUCeiling: the worker's CPU per declaration against the
	// plain JetStream worker that also makes the journal's three KV
	// writes. Those writes are the price of exactly-once, which the
	// worker cannot drop; against a baseline that pays them too, the
	// ratio bounds what the worker's own code adds, and issue 14's 1.35
	// is kept for it. A constant of its own, so that the two goals can
	// part.
	journalCPUCeiling = 1.35
)

// rateFigure compares a's declarations per second with b's, round by
// round; n declarations made each run. A floor above 0 is the target the
// ratio must reach.
func rateFigure(metric string, n int, a, b overheadRun, baseline string, floor float64, note string) Figure {
	ar, br, ratios := pairs(a, b, func(l loopRun) float64 { return float64(n) / l.wall.Seconds() })
	f := pairFigure(metric, ar, br, ratios, "%.0f", "/s", baseline, note)
	if floor > 0 {
		f.Target, f.Verdict = fmt.Sprintf("≥ %.2f", floor), atLeast(f.Ratio, floor)
	}
	return f
}

// cpuFigure compares a's CPU time per declaration with b's, round by
// round; a ratio above 1 is a costing more. A ceiling above 0 is the
// target the ratio must stay under.
func cpuFigure(metric string, n int, a, b overheadRun, baseline string, ceiling float64, note string) Figure {
	ac, bc, ratios := pairs(a, b, func(l loopRun) float64 { return float64(l.cpu) / float64(time.Millisecond) / float64(n) })
	if slices.Contains(ac, 0) || slices.Contains(bc, 0) {
		return Figure{Scenario: "overhead", Metric: metric, Measured: "—", Verdict: Skipped,
			Note: "overhead: this platform does not tell the process's CPU time"}
	}
	f := pairFigure(metric, ac, bc, ratios, "%.2f", " ms", baseline, note)
	if ceiling > 0 {
		f.Target, f.Verdict = fmt.Sprintf("≤ %.2f", ceiling), atMost(f.Ratio, ceiling)
	}
	return f
}

// trafficFigure compares the NATS messages a received and sent per
// declaration with b's, round by round, the ratio being that of the
// messages both ways. ok is false when a run has no counts (NATS in a
// process of its own, or a run without NATS): the row is left out.
func trafficFigure(metric string, n int, a, b overheadRun, baseline, note string) (_ Figure, ok bool) {
	uncounted := func(l loopRun) bool { return !l.hasTraffic }
	if len(a.runs) == 0 || len(b.runs) == 0 || slices.ContainsFunc(a.runs, uncounted) || slices.ContainsFunc(b.runs, uncounted) {
		return Figure{}, false
	}
	in := func(l loopRun) float64 { return float64(l.msgsIn) / float64(n) }
	out := func(l loopRun) float64 { return float64(l.msgsOut) / float64(n) }
	ai, bi, _ := pairs(a, b, in)
	ao, bo, _ := pairs(a, b, out)
	at, _, ratios := pairs(a, b, func(l loopRun) float64 { return in(l) + out(l) })
	inOut := func(in, out []float64) string {
		return spread(in, "%.2f", " in") + ", " + spread(out, "%.2f", " out")
	}
	return Figure{
		Scenario: "overhead", Metric: metric,
		Measured: inOut(ai, ao), Value: median(at),
		Baseline: inOut(bi, bo) + " " + baseline,
		Ratio:    median(ratios), RatioMin: slices.Min(ratios), RatioMax: slices.Max(ratios),
		Verdict: Info, Note: note,
	}, true
}

// allocFigure compares a's heap objects allocated per declaration with
// b's, round by round.
func allocFigure(metric string, n int, a, b overheadRun, baseline, note string) Figure {
	ac, bc, ratios := pairs(a, b, func(l loopRun) float64 { return float64(l.allocs) / float64(n) })
	return pairFigure(metric, ac, bc, ratios, "%.0f", "", baseline, note)
}

// pairFigure is the informational figure of a's values against b's,
// round by round: median (min–max) of each, and of the rounds' ratios.
func pairFigure(metric string, a, b, ratios []float64, format, unit, baseline, note string) Figure {
	return Figure{
		Scenario: "overhead", Metric: metric,
		Measured: spread(a, format, unit), Value: median(a),
		Baseline: spread(b, format, unit) + " " + baseline,
		Ratio:    median(ratios), RatioMin: slices.Min(ratios), RatioMax: slices.Max(ratios),
		Verdict: Info, Note: note,
	}
}

// pairs returns f of each of a's and b's runs and, round by round, the
// ratio of a's to b's.
func pairs(a, b overheadRun, f func(loopRun) float64) (av, bv, ratios []float64) {
	for i := range min(len(a.runs), len(b.runs)) {
		x, y := f(a.runs[i]), f(b.runs[i])
		av, bv = append(av, x), append(bv, y)
		if y != 0 {
			ratios = append(ratios, x/y)
		}
	}
	if len(ratios) == 0 {
		ratios = []float64{0}
	}
	return av, bv, ratios
}

// median of vs, the mean of the middle two for an even count.
func median(vs []float64) float64 {
	if len(vs) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(vs))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// spread prints the median of vs and, over several rounds, their range:
// "0.89 ms (0.85–0.95)".
func spread(vs []float64, format, unit string) string {
	out := fmt.Sprintf(format, median(vs)) + unit
	if len(vs) > 1 {
		out += fmt.Sprintf(" ("+format+"–"+format+")", slices.Min(vs), slices.Max(vs))
	}
	return out
}

// loopRun is what a run measured.
type loopRun struct {
	wall, cpu time.Duration
	// allocs counts the heap objects the process allocated.
	allocs uint64
	// meanLatency is the mean time of one Handle call.
	meanLatency time.Duration
	// msgsIn and msgsOut are the messages the NATS server received and
	// sent during the run, when hasTraffic: NATS ran in this process and
	// the run used it.
	msgsIn, msgsOut int64
	hasTraffic      bool
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
	run := sp.end(time.Now())
	if first != nil {
		return loopRun{}, first
	}
	if err := parent.Err(); err != nil {
		return loopRun{}, err
	}
	run.meanLatency = time.Duration(total.Load() / int64(len(reqs)))
	return run, nil
}
