package bench

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/digitoll/digitoll-worker/app"
	"github.com/digitoll/digitoll-worker/contract"
)

// scaleOut runs 1, 2 and 4 workers (ScaleOutWorkers) on the one durable
// consumer, each with the same in-flight limit against a simulator slow
// enough that every worker is bound by that limit, not by the machine:
// throughput should grow with the workers, and every submission must
// still get exactly one result and reach Toll exactly once. The workers
// are `digitoll run` processes when Config.WorkerCommand is set, else
// workers in this process with a NATS connection and Toll client each.
func scaleOut(ctx context.Context, r *runner) ([]Figure, error) {
	sz := r.cfg.Sizes
	if len(sz.ScaleOutWorkers) == 0 {
		return nil, errors.New("no worker counts to compare")
	}
	what := "workers in this process"
	if r.cfg.WorkerCommand != nil {
		what = "`digitoll run` processes"
	}
	var figs []Figure
	var base float64
	total := 0
	for i, p := range sz.ScaleOutWorkers {
		n := p * sz.ScaleOutConcurrency * sz.ScaleOutWaves
		rate, err := r.scaleStep(ctx, p, n)
		if err != nil {
			return figs, fmt.Errorf("%d workers: %w", p, err)
		}
		total += n
		f := Figure{
			Scenario: "scaleout", Metric: fmt.Sprintf("%d workers, declarations/s", p),
			Measured: perSecond(rate), Value: rate, Verdict: Info,
		}
		if i == 0 {
			base = rate
			f.Metric = fmt.Sprintf("%d worker, declarations/s", p)
			f.Note = fmt.Sprintf("scaleout: %s on one consumer, %d in flight each, %d declarations per worker, %s per Toll call; "+
				"each worker is bound by its in-flight limit, so the ideal ratio is the number of workers. Throughput counts until the last wave, whose split between the workers is luck.",
				what, sz.ScaleOutConcurrency, sz.ScaleOutConcurrency*sz.ScaleOutWaves, sz.ScaleOutLatency)
		} else {
			f.Baseline = fmt.Sprintf("%s with %d", perSecond(base), sz.ScaleOutWorkers[0])
			f.Ratio = rate / base
			f.Target = fmt.Sprintf("ideal %d", p/sz.ScaleOutWorkers[0])
		}
		figs = append(figs, f)
	}
	figs = append(figs, Figure{
		Scenario: "scaleout", Metric: "duplicates",
		Measured: "0", Value: 0,
		Baseline: fmt.Sprintf("%d results, %d Toll writes", total, total),
		Target:   "none", Verdict: Pass,
		Note: "scaleout: every submission got exactly one result in the results stream and reached Toll exactly once, " +
			"at every worker count (a duplicate fails the scenario instead).",
	})
	return figs, nil
}

// scaleStep runs p workers over n declarations and returns their
// throughput from the first publish until all but the last wave of
// results (p times the in-flight limit) are in. The declarations of a
// wave finish together, and how the last few messages split between the
// workers decides whether one of them needs one more wave: counting it
// would measure that split, not the throughput.
func (r *runner) scaleStep(ctx context.Context, p, n int) (float64, error) {
	sz := r.cfg.Sizes
	st, err := r.newStage(ctx, stageOptions{
		kinds: []contract.Kind{contract.KindRoad}, concurrency: sz.ScaleOutConcurrency, callLatency: sz.ScaleOutLatency,
	})
	if err != nil {
		return 0, err
	}
	defer st.close()
	msgs, err := houses(fmt.Sprintf("scale-%d", p), n)
	if err != nil {
		return 0, err
	}
	ws, err := r.startWorkers(ctx, st, p)
	if err != nil {
		return 0, err
	}
	stopped := false
	defer func() {
		if !stopped {
			_ = ws.stop()
		}
	}()
	if err := st.waitPulling(ctx, contract.KindRoad, p, ws.alive); err != nil {
		return 0, err
	}
	watch, err := st.watchResults(n)
	if err != nil {
		return 0, err
	}
	defer watch.stop()
	t0 := time.Now()
	if err := st.publish(ctx, msgs); err != nil {
		return 0, err
	}
	_, err = watch.wait(ctx, nil)
	stopped = true
	if stopErr := ws.stop(); err == nil {
		err = stopErr
	}
	if err != nil {
		return 0, err
	}
	if err := st.verify(ctx, msgs); err != nil {
		return 0, err
	}
	if posts := st.sim.Stats().Requests(routeHousePost); posts != n {
		return 0, fmt.Errorf("the simulated Toll received %d house consignments for %d declarations", posts, n)
	}
	counted := n - p*sz.ScaleOutConcurrency
	if counted <= 0 {
		return 0, fmt.Errorf("%d declarations are not more than one wave of %d workers × %d in flight", n, p, sz.ScaleOutConcurrency)
	}
	return float64(counted) / watch.at(counted).Sub(t0).Seconds(), nil
}

// workerSet is the workers of one scale-out step.
type workerSet struct {
	stops []func() error
	// checks report a worker that stopped on its own.
	checks []func() error
}

// alive reports the first worker that has stopped on its own.
func (ws *workerSet) alive() error {
	for _, check := range ws.checks {
		if err := check(); err != nil {
			return err
		}
	}
	return nil
}

// stop stops every worker and returns their errors.
func (ws *workerSet) stop() error {
	var errs []error
	for _, stop := range ws.stops {
		errs = append(errs, stop())
	}
	return errors.Join(errs...)
}

// startWorkers starts p workers configured by the stage's settings.
func (r *runner) startWorkers(ctx context.Context, st *stage, p int) (*workerSet, error) {
	ws := &workerSet{}
	for range p {
		var err error
		if r.cfg.WorkerCommand != nil {
			err = ws.startProcess(r.cfg.WorkerCommand(), st)
		} else {
			err = ws.startInProcess(ctx, st, r)
		}
		if err != nil {
			_ = ws.stop()
			return nil, err
		}
	}
	return ws, nil
}

// startProcess starts cmd, a `digitoll run`, with the stage's settings.
func (ws *workerSet) startProcess(cmd *exec.Cmd, st *stage) error {
	cmd.Env = st.environ()
	c, err := startChild(cmd, nil, false)
	if err != nil {
		return err
	}
	ws.stops = append(ws.stops, c.stop)
	ws.checks = append(ws.checks, func() error {
		select {
		case <-c.exited:
			return c.exitError()
		default:
			return nil
		}
	})
	return nil
}

// startInProcess starts a worker in this process with its own NATS
// connection and Toll client, as a process would have.
func (ws *workerSet) startInProcess(ctx context.Context, st *stage, r *runner) error {
	cfg, err := st.config()
	if err != nil {
		return err
	}
	nc, err := nats.Connect(cfg.NATS.URL, nats.Name("digitoll-bench-worker"))
	if err != nil {
		return err
	}
	js, err := jetstream.New(nc)
	if err == nil {
		var svc *app.Services
		if svc, err = app.NewServices(ctx, cfg, js, r.log); err == nil {
			run := start(ctx, svc.Run)
			ws.stops = append(ws.stops, func() error {
				err := run.stop()
				_ = svc.Shutdown(context.WithoutCancel(ctx))
				nc.Close()
				return err
			})
			ws.checks = append(ws.checks, func() error {
				select {
				case <-run.ended:
					return fmt.Errorf("a worker stopped on its own: %v", run.err)
				default:
					return nil
				}
			})
			return nil
		}
	}
	nc.Close()
	return err
}
