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
	"github.com/digitoll/digitoll-worker/samples"
	"github.com/digitoll/digitoll-worker/simulator"
)

func runDemo(ctx context.Context, env *environment, args []string) error {
	fs := newFlagSet(env, "demo", "[flags]\n\nStarts an embedded NATS server, the Toll simulator and the worker in this process,\npublishes the sample declarations of every kind and prints each result as it arrives.")
	dir := fs.String("dir", "", "keep NATS data and the demo key here (default: a temporary directory, removed on exit)")
	keep := fs.Bool("keep", false, "keep running after the results are in, for the nats CLI and `digitoll publish`")
	natsPort := fs.Int("nats-port", -1, "port of the embedded NATS server (-1: any free port)")
	delay := fs.Duration("validation-delay", 1500*time.Millisecond, "time the simulated Toll takes to validate a declaration")
	timeout := fs.Duration("timeout", 2*time.Minute, "give up if the results are not all in by then")
	verbose := fs.Bool("v", false, "show the worker's log")
	if err := parseFlags(env, fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(env.stderr, "unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return errUsage
	}
	if *dir == "" {
		tmp, err := os.MkdirTemp("", "digitoll-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		*dir = tmp
	}
	logOut := io.Discard
	if *verbose {
		logOut = env.stderr
	}
	logger := slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: slog.LevelInfo}))

	// The simulator plays Maskinporten and Toll with a demo key pair that
	// it trusts, so nothing leaves this machine.
	simDir := filepath.Join(*dir, "sim")
	if err := os.MkdirAll(simDir, 0o700); err != nil {
		return err
	}
	key, err := simulator.WriteDemoKey(simDir, config.SimClientID)
	if err != nil {
		return err
	}
	sim, err := simulator.Start(simulator.Config{
		ValidationDelay: *delay,
		Clients:         []simulator.Client{key.Client(splitList(simScopes)...)},
		Logger:          logger.With("component", "simulator"),
	}, "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer sim.Close()

	// The worker reads the same settings it would read in production,
	// pointed at the simulator and an embedded NATS server.
	cfg, err := config.Load(flag.NewFlagSet("demo-config", flag.ContinueOnError), nil, overlayEnv(env.getenv, map[string]string{
		"DIGITOLL_ENV":       string(config.EnvSim),
		"DIGITOLL_SIM_URL":   sim.URL(),
		"DIGITOLL_SIM_DIR":   simDir,
		"DIGITOLL_NATS_URL":  config.EmbeddedNATS,
		"DIGITOLL_NATS_DIR":  filepath.Join(*dir, "nats"),
		"DIGITOLL_NATS_PORT": fmt.Sprint(*natsPort),
		"DIGITOLL_KINDS":     kindList(demoKinds()),
		// The demo wants its routing signals within the second, not
		// within the production polling interval.
		"DIGITOLL_ROUTING_INTERVAL": "300ms",
	}))
	if err != nil {
		return err
	}
	conn, err := connectNATS(cfg.NATS, "digitoll-demo", logger)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := app.EnsureStreams(ctx, conn.js, cfg.NATS); err != nil {
		return err
	}
	svc, err := app.NewServices(ctx, cfg, conn.js, logger)
	if err != nil {
		return err
	}
	defer flushTraces(ctx, svc, logger)
	fmt.Fprintf(env.stdout, "NATS (embedded, JetStream) at %s\n", conn.embedded.ClientURL())
	fmt.Fprintf(env.stdout, "Toll and Maskinporten simulator at %s\n", sim.URL())

	workerCtx, stopWorker := context.WithCancel(ctx)
	workerDone := make(chan error, 1)
	go func() { workerDone <- svc.Run(workerCtx) }()
	defer func() {
		stopWorker()
		<-workerDone
	}()

	var subs []samples.Sample
	for _, k := range demoKinds() {
		ks, err := samples.Load(k)
		if err != nil {
			return err
		}
		subs = append(subs, ks...)
	}
	// Follow results and routing signals from "new" before publishing, so
	// that none is missed and none from an earlier run (with --dir) shows.
	followCtx, stopFollow := context.WithCancel(ctx)
	msgs := make(chan jetstream.Msg)
	followDone := make(chan error, 2)
	following := 0
	defer func() {
		stopFollow()
		for range following {
			<-followDone
		}
	}()
	for _, f := range []struct{ stream, filter string }{
		{contract.StreamResults, "digitoll.result.*." + contract.DefaultTenant},
		{contract.StreamRouting, "digitoll.routing.*." + contract.DefaultTenant},
	} {
		cons, err := streamConsumer(ctx, conn.js, f.stream, f.filter, jetstream.DeliverNewPolicy)
		if err != nil {
			return err
		}
		following++
		go func() {
			followDone <- eachMsg(followCtx, cons, func(m jetstream.Msg) bool {
				select {
				case msgs <- m:
					return true
				case <-followCtx.Done():
					return false
				}
			})
		}()
	}

	want := map[string]bool{}
	fmt.Fprintf(env.stdout, "\nPublishing %d sample submissions to digitoll.submit.<kind>.%s:\n", len(subs), contract.DefaultTenant)
	for _, s := range subs {
		sub, err := contract.ParseSubmission(s.Kind, s.Body)
		if err != nil {
			return fmt.Errorf("sample %s: %w", s.Name, err)
		}
		want[sub.ID] = true
		if _, err := conn.js.PublishMsg(ctx, &nats.Msg{Subject: contract.SubmitSubject(s.Kind, contract.DefaultTenant), Data: s.Body},
			jetstream.WithMsgID(contract.MsgID(contract.DefaultTenant, sub.ID))); err != nil {
			return fmt.Errorf("publish %s: %w", s.Name, err)
		}
		fmt.Fprintf(env.stdout, "  %-30s %s %s %s\n", string(s.Kind)+"/"+s.Name, sub.Level, sub.Operation, sub.ID)
	}
	fmt.Fprintln(env.stdout, "\nResults (Toll validates asynchronously; the worker polls until it answers),")
	fmt.Fprintln(env.stdout, "and routing signals (Toll routes accepted transports and houses to control or entry):")

	// Toll routes every accepted transport and house consignment; the
	// demo waits for those signals too.
	signals, wantSignals := 0, 0
	deadline := time.NewTimer(*timeout)
	defer deadline.Stop()
	for len(want) > 0 || (cfg.RoutingEnabled() && signals < wantSignals) {
		select {
		case m := <-msgs:
			fmt.Fprintln(env.stdout, "  "+formatMsg(m))
			if strings.HasPrefix(m.Subject(), "digitoll.routing.") {
				signals++
				continue
			}
			r := decodeResult(m.Data())
			delete(want, r.ID)
			if r.Status == contract.StatusAccepted && (r.Kind == contract.KindRoad || r.Kind == contract.KindAir) &&
				(r.Level == contract.LevelTransport || r.Level == contract.LevelHouseConsignment) {
				wantSignals++
			}
		case err := <-followDone:
			following--
			return fmt.Errorf("following results stopped: %v", err)
		case <-deadline.C:
			return fmt.Errorf("%d results and %d routing signals still missing after %s (run with -v to see the worker's log)",
				len(want), max(wantSignals-signals, 0), *timeout)
		case <-ctx.Done():
			return errors.New("interrupted")
		}
	}
	fmt.Fprintln(env.stdout, "\nAll results are in.")
	if !*keep {
		return nil
	}
	fmt.Fprintf(env.stdout, "Still running (--keep). Try:\n  nats --server %s pub digitoll.submit.road.default \"$(cat samples/road/03-house.json)\"\n  digitoll publish --nats-url %s samples/road\n  digitoll results --routing --nats-url %s\nInterrupt with Ctrl-C.\n",
		conn.embedded.ClientURL(), conn.embedded.ClientURL(), conn.embedded.ClientURL())
	for {
		select {
		case m := <-msgs:
			fmt.Fprintln(env.stdout, "  "+formatMsg(m))
		case <-ctx.Done():
			return nil
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
