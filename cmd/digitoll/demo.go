package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"github.com/digitoll/digitoll-worker/app"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/digitoll/digitoll-worker/config"
	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/natsconn"
	"github.com/digitoll/digitoll-worker/samples"
	"github.com/digitoll/digitoll-worker/simulator"
)

// demoFlags are the settings of `digitoll demo`.
type demoFlags struct {
	dir      string
	keep     bool
	natsPort int
	delay    time.Duration
	timeout  time.Duration
	verbose  bool
}

// runDemo runs the whole chain in this process: the simulator, an
// embedded NATS server and the worker; it publishes the samples of every
// kind and prints each result and routing signal until all are in (and,
// with --keep, until interrupted). Every step it started stops on return,
// the last started first.
func runDemo(ctx context.Context, env *environment, args []string) error {
	f, err := parseDemoFlags(env, args)
	if err != nil {
		return err
	}
	removeDir, err := makeDemoDir(&f)
	if err != nil {
		return err
	}
	defer removeDir()
	logger := demoLogger(env, f)

	sim, simDir, err := startDemoSimulator(f, logger)
	if err != nil {
		return err
	}
	defer sim.Close()
	cfg, conn, err := startDemoNATS(ctx, env, f, sim.URL(), simDir, logger)
	if err != nil {
		return err
	}
	defer conn.Close()
	stopWorker, err := startDemoWorker(ctx, cfg, conn, logger)
	if err != nil {
		return err
	}
	defer stopWorker()
	fmt.Fprintf(env.stdout, "NATS (embedded, JetStream) at %s\n", conn.Embedded.ClientURL())
	fmt.Fprintf(env.stdout, "Toll and Maskinporten simulator at %s\n", sim.URL())

	subs, err := demoSamples()
	if err != nil {
		return err
	}
	fol, err := followDemo(ctx, conn.JS)
	if err != nil {
		return err
	}
	defer fol.Close()
	want, err := publishDemoSamples(ctx, env, conn.JS, subs)
	if err != nil {
		return err
	}
	if err := awaitDemoResults(ctx, env, fol, want, cfg.RoutingEnabled(), f.timeout); err != nil {
		return err
	}
	fmt.Fprintln(env.stdout, "\nAll results are in.")
	if !f.keep {
		return nil
	}
	keepDemoRunning(ctx, env, fol, conn.Embedded.ClientURL())
	return nil
}

// parseDemoFlags reads the demo's flags; a bad one, or any argument,
// prints the usage.
func parseDemoFlags(env *environment, args []string) (demoFlags, error) {
	fs := newFlagSet(env, "demo", "[flags]\n\nStarts an embedded NATS server, the Toll simulator and the worker in this process,\npublishes the sample declarations of every kind and prints each result as it arrives.")
	var f demoFlags
	fs.StringVar(&f.dir, "dir", "", "keep NATS data and the demo key here (default: a temporary directory, removed on exit)")
	fs.BoolVar(&f.keep, "keep", false, "keep running after the results are in, for the nats CLI and `digitoll publish`")
	fs.IntVar(&f.natsPort, "nats-port", -1, "port of the embedded NATS server (-1: any free port)")
	fs.DurationVar(&f.delay, "validation-delay", 1500*time.Millisecond, "time the simulated Toll takes to validate a declaration")
	fs.DurationVar(&f.timeout, "timeout", 2*time.Minute, "give up if the results are not all in by then")
	fs.BoolVar(&f.verbose, "v", false, "show the worker's log")
	if err := parseFlags(env, fs, args); err != nil {
		return demoFlags{}, err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(env.stderr, "unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return demoFlags{}, errUsage
	}
	return f, nil
}

// makeDemoDir makes a temporary directory for the demo's data when
// --dir names none; the returned func removes it.
func makeDemoDir(f *demoFlags) (func(), error) {
	if f.dir != "" {
		return func() {}, nil
	}
	tmp, err := os.MkdirTemp("", "digitoll-demo-")
	if err != nil {
		return nil, err
	}
	f.dir = tmp
	return func() { os.RemoveAll(tmp) }, nil
}

// demoLogger is the log of the simulator and the worker: shown with -v
// only, since the demo's output is its results.
func demoLogger(env *environment, f demoFlags) *slog.Logger {
	out := io.Discard
	if f.verbose {
		out = env.stderr
	}
	return slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// startDemoSimulator starts the simulator of Maskinporten and Toll with a
// demo key pair that it trusts, kept in the returned directory, so that
// nothing leaves this machine.
func startDemoSimulator(f demoFlags, logger *slog.Logger) (*simulator.Server, string, error) {
	simDir := filepath.Join(f.dir, "sim")
	if err := os.MkdirAll(simDir, 0o700); err != nil {
		return nil, "", err
	}
	key, err := simulator.WriteDemoKey(simDir, config.SimClientID)
	if err != nil {
		return nil, "", err
	}
	sim, err := simulator.Start(simulator.Config{
		ValidationDelay: f.delay,
		Clients:         []simulator.Client{key.Client(splitList(simScopes)...)},
		Logger:          logger.With("component", "simulator"),
	}, "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	return sim, simDir, nil
}

// startDemoNATS reads the worker's settings as it would in production,
// pointed at the simulator and an embedded NATS server, starts that
// server and makes the contract's streams on it.
func startDemoNATS(ctx context.Context, env *environment, f demoFlags, simURL, simDir string, logger *slog.Logger) (*config.Config, *natsconn.Conn, error) {
	cfg, err := config.Load(flag.NewFlagSet("demo-config", flag.ContinueOnError), nil, overlayEnv(env.getenv, map[string]string{
		"DIGITOLL_ENV":       string(config.EnvSim),
		"DIGITOLL_SIM_URL":   simURL,
		"DIGITOLL_SIM_DIR":   simDir,
		"DIGITOLL_NATS_URL":  config.EmbeddedNATS,
		"DIGITOLL_NATS_DIR":  filepath.Join(f.dir, "nats"),
		"DIGITOLL_NATS_PORT": fmt.Sprint(f.natsPort),
		"DIGITOLL_KINDS":     kindList(demoKinds()),
		// The demo wants its routing signals within the second, not
		// within the production polling interval.
		"DIGITOLL_ROUTING_INTERVAL": "300ms",
	}))
	if err != nil {
		return nil, nil, err
	}
	conn, err := natsconn.Connect(cfg.NATS, "digitoll-demo", logger)
	if err != nil {
		return nil, nil, err
	}
	if err := app.EnsureStreams(ctx, conn.JS, cfg.NATS); err != nil {
		conn.Close()
		return nil, nil, err
	}
	return cfg, conn, nil
}

// startDemoWorker builds the worker's services and runs them until the
// returned stop, which waits for them to end and flushes their traces.
func startDemoWorker(ctx context.Context, cfg *config.Config, conn *natsconn.Conn, logger *slog.Logger) (func(), error) {
	svc, err := app.NewServices(ctx, cfg, conn.JS, logger)
	if err != nil {
		return nil, err
	}
	workerCtx, cancel := context.WithCancel(ctx)
	workerDone := make(chan error, 1)
	go func() { workerDone <- svc.Run(workerCtx) }()
	stop := func() {
		cancel()
		<-workerDone
		flushTraces(ctx, svc, logger)
	}
	return stop, nil
}

// demoSamples are the samples of every demo kind, in the order they are
// published.
func demoSamples() ([]samples.Sample, error) {
	var subs []samples.Sample
	for _, k := range demoKinds() {
		ks, err := samples.Load(k)
		if err != nil {
			return nil, err
		}
		subs = append(subs, ks...)
	}
	return subs, nil
}

// demoFollower hands on, on msgs, the results and routing signals of the
// default tenant. Each of its goroutines ends by sending on done.
type demoFollower struct {
	msgs    chan jetstream.Msg
	done    chan error
	running int
	stop    context.CancelFunc
}

// followDemo follows results and routing signals from "new", so that it
// is to start before publishing: then none is missed, and none from an
// earlier run (with --dir) shows.
func followDemo(ctx context.Context, js jetstream.JetStream) (*demoFollower, error) {
	followCtx, stop := context.WithCancel(ctx)
	fol := &demoFollower{msgs: make(chan jetstream.Msg), done: make(chan error, 2), stop: stop}
	for _, f := range []struct{ stream, filter string }{
		{contract.StreamResults, "digitoll.result.*." + contract.DefaultTenant},
		{contract.StreamRouting, "digitoll.routing.*." + contract.DefaultTenant},
	} {
		cons, err := streamConsumer(ctx, js, f.stream, f.filter, jetstream.DeliverNewPolicy)
		if err != nil {
			fol.Close()
			return nil, err
		}
		fol.running++
		go func() {
			fol.done <- eachMsg(followCtx, cons, func(m jetstream.Msg) bool {
				select {
				case fol.msgs <- m:
					return true
				case <-followCtx.Done():
					return false
				}
			})
		}()
	}
	return fol, nil
}

// Close stops following and waits for the goroutines still running.
func (fol *demoFollower) Close() {
	fol.stop()
	for range fol.running {
		<-fol.done
	}
}

// publishDemoSamples publishes subs, each with its declaration's message
// id, prints one line for each, and returns the ids of the results to
// wait for.
func publishDemoSamples(ctx context.Context, env *environment, js jetstream.JetStream, subs []samples.Sample) (map[string]bool, error) {
	want := map[string]bool{}
	fmt.Fprintf(env.stdout, "\nPublishing %d sample submissions to digitoll.submit.<kind>.%s:\n", len(subs), contract.DefaultTenant)
	for _, s := range subs {
		sub, err := contract.ParseSubmission(s.Kind, s.Body)
		if err != nil {
			return nil, fmt.Errorf("sample %s: %w", s.Name, err)
		}
		want[sub.ID] = true
		if _, err := js.PublishMsg(ctx, &nats.Msg{Subject: contract.SubmitSubject(s.Kind, contract.DefaultTenant), Data: s.Body},
			jetstream.WithMsgID(contract.MsgID(contract.DefaultTenant, sub.ID))); err != nil {
			return nil, fmt.Errorf("publish %s: %w", s.Name, err)
		}
		fmt.Fprintf(env.stdout, "  %-30s %s %s %s\n", string(s.Kind)+"/"+s.Name, sub.Level, sub.Operation, sub.ID)
	}
	return want, nil
}

// awaitDemoResults prints each result and routing signal until every id
// in want has its result and, withRouting, every accepted road or air
// transport and house its routing signal; or until timeout.
func awaitDemoResults(ctx context.Context, env *environment, fol *demoFollower, want map[string]bool, withRouting bool, timeout time.Duration) error {
	fmt.Fprintln(env.stdout, "\nResults (Toll validates asynchronously; the worker polls until it answers),")
	fmt.Fprintln(env.stdout, "and routing signals (Toll routes accepted transports and houses to control or entry):")
	signals, wantSignals := 0, 0
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for len(want) > 0 || (withRouting && signals < wantSignals) {
		select {
		case m := <-fol.msgs:
			fmt.Fprintln(env.stdout, "  "+formatMsg(m))
			if strings.HasPrefix(m.Subject(), "digitoll.routing.") {
				signals++
				continue
			}
			r := decodeResult(m.Data())
			delete(want, r.ID)
			if routed(r) {
				wantSignals++
			}
		case err := <-fol.done:
			fol.running--
			return fmt.Errorf("following results stopped: %v", err)
		case <-deadline.C:
			return fmt.Errorf("%d results and %d routing signals still missing after %s (run with -v to see the worker's log)",
				len(want), max(wantSignals-signals, 0), timeout)
		case <-ctx.Done():
			return errors.New("interrupted")
		}
	}
	return nil
}

// routed tells whether Toll sends a routing signal for r: it routes every
// accepted road or air transport and house consignment.
func routed(r contract.Result) bool {
	return r.Status == contract.StatusAccepted && (r.Kind == contract.KindRoad || r.Kind == contract.KindAir) &&
		(r.Level == contract.LevelTransport || r.Level == contract.LevelHouseConsignment)
}

// keepDemoRunning (--keep) says how to use the running chain, and prints
// what arrives until ctx ends.
func keepDemoRunning(ctx context.Context, env *environment, fol *demoFollower, natsURL string) {
	fmt.Fprintf(env.stdout, "Still running (--keep). Try:\n  nats --server %s pub digitoll.submit.road.default \"$(cat samples/road/03-house.json)\"\n  digitoll publish --nats-url %s samples/road\n  digitoll results --routing --nats-url %s\nInterrupt with Ctrl-C.\n",
		natsURL, natsURL, natsURL)
	for {
		select {
		case m := <-fol.msgs:
			fmt.Fprintln(env.stdout, "  "+formatMsg(m))
		case <-ctx.Done():
			return
		}
	}
}

// overlayEnv returns a getenv that answers from over first.
func overlayEnv(getenv func(string) string, over map[string]string) func(string) string {
	return func(k string) string {
		if v, ok := over[k]; ok {
			return v
		}
		return getenv(k)
	}
}

// demoKinds are the kinds the demo declares, in the order it publishes
// them.
func demoKinds() []contract.Kind { return config.SupportedKinds() }

func kindList(kinds []contract.Kind) string {
	parts := make([]string, len(kinds))
	for i, k := range kinds {
		parts[i] = string(k)
	}
	return strings.Join(parts, ",")
}
