package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"github.com/digitoll/digitoll-worker/bench"
)

func runBench(ctx context.Context, env *environment, args []string) error {
	fs := newFlagSet(env, "bench", "[--quick] [--only NAME,…] [--rounds N] [--real-logger=false] [--json]\n\n"+
		"Starts NATS and the simulator and measures the worker against baselines measured in the same run\n"+
		"(see docs/performance.md). Prints one table: scenario, measured, baseline or ideal, ratio, target, verdict.\n"+
		"Exits 1 if a scenario found the worker incorrect; a figure below its target is reported, not an error.")
	quick := fs.Bool("quick", false, "smaller sizes: about a minute instead of about four, noisier figures")
	only := fs.String("only", "", "run only these scenarios, comma-separated: "+strings.Join(bench.ScenarioNames(), ", "))
	asJSON := fs.Bool("json", false, "print the report as JSON instead of the table")
	rounds := fs.Int("rounds", 0, fmt.Sprintf("rounds of the overhead scenario, each running the worker and its baselines one after the other (0: %d, or %d with --quick)", bench.FullSizes().OverheadRounds, bench.QuickSizes().OverheadRounds))
	realLogger := fs.Bool("real-logger", true, "overhead scenario: also run the worker with the production log handler formatting into io.Discard, next to the run with logs discarded")
	serveNATS := fs.String("serve-nats", "", "internal: serve NATS storing in this directory for a benchmark running in another process, until stdin ends")
	if err := parseFlags(env, fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(env.stderr, "unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return errUsage
	}
	if *rounds < 0 {
		fmt.Fprintf(env.stderr, "--rounds %d: want 0 or more\n", *rounds)
		fs.Usage()
		return errUsage
	}
	if *serveNATS != "" {
		if env.stdin == nil {
			return errors.New("--serve-nats serves until stdin ends, and there is no stdin")
		}
		return bench.ServeNATS(ctx, *serveNATS, env.stdin, env.stdout)
	}
	cfg := bench.Config{Sizes: bench.FullSizes(), Progress: env.stderr, Rounds: *rounds, DiscardLogsOnly: !*realLogger}
	if *quick {
		cfg.Sizes = bench.QuickSizes()
	}
	if *only != "" {
		cfg.Only = strings.Split(*only, ",")
	}
	// The helper processes are this binary: a NATS server for the
	// documents scenario, `digitoll run` for the scale-out.
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("locating this binary for the helper processes: %w", err)
	}
	cfg.NATSCommand = func(dir string) *exec.Cmd { return exec.Command(exe, "bench", "--serve-nats", dir) }
	cfg.WorkerCommand = func() *exec.Cmd { return exec.Command(exe, "run") }

	rep, err := bench.Run(ctx, cfg)
	if errors.Is(err, bench.ErrUnknownScenario) {
		fmt.Fprintln(env.stderr, err)
		fs.Usage()
		return errUsage
	}
	if err != nil {
		return err
	}
	if *asJSON {
		err = rep.WriteJSON(env.stdout)
	} else {
		err = rep.WriteTable(env.stdout)
	}
	if err != nil {
		return err
	}
	if rep.Failed() {
		return errors.New("a scenario found the worker incorrect or could not finish (verdict error)")
	}
	return nil
}
