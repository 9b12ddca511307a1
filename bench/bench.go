// Package bench measures how close the worker comes to the limits set by
// its surroundings: the simulated Toll and Maskinporten, JetStream and the
// machine. Every figure is a ratio against a baseline or ideal measured or
// derived in the same run, because the machines it runs on are shared and
// noisy and absolute times mean little.
//
// `digitoll bench` runs it and prints one table; `go test ./bench` runs
// every scenario at tiny sizes, checking that each produces its figures
// and that the worker stays correct (one result per submission, each
// declaration sent once), never how fast it is.
//
// The scenarios:
//   - overhead: CPU per declaration and declarations per second through
//     the whole worker (publish, Toll calls, result, ack), with logs
//     discarded and with the production log handler, against a plain
//     JetStream worker without a journal, the same plain worker making
//     the journal's three KV writes, and a bare loop calling the same
//     handler straight to the same simulator, alternated over rounds; and
//     the NATS messages per declaration each run costs;
//   - latency: with 50 ms per Toll call and 2 s of validation, throughput
//     against the ideal in-flight limit / per-declaration latency, and
//     that of the plain JetStream worker;
//   - tokens: all four kinds at once, one grant and one exchange per scope;
//   - documents: concurrent 10 MB uploads from the Object Store, peak heap
//     growth;
//   - scaleout: 1, 2 and 4 workers on one consumer, throughput ratio and
//     no duplicates;
//   - hotpath: `go test -bench -benchmem` of message parsing, result
//     building and the Toll request path;
//   - storage: bytes per declaration in the journal and the results
//     stream, on disk, and the NATS server's memory growth.
package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/digitoll/digitoll-worker/config"
	"github.com/digitoll/digitoll-worker/simulator"
)

// Verdict says how a figure compares with its target.
type Verdict string

// Verdicts of a figure.
const (
	// Pass: the figure meets its target.
	Pass Verdict = "pass"
	// Below: the figure misses its target. The worker still worked
	// correctly; it was slower or larger than the target allows.
	Below Verdict = "below target"
	// Info: the figure has no target; it is reported for context.
	Info Verdict = "info"
	// Skipped: the scenario could not run here (the note says why).
	Skipped Verdict = "skipped"
	// Failed: the scenario found the worker incorrect (a result missing or
	// repeated, a declaration sent twice) or could not finish.
	Failed Verdict = "error"
)

// Figure is one row of the report.
type Figure struct {
	// Scenario is the scenario's name, e.g. "overhead".
	Scenario string `json:"scenario"`
	// Metric says what was measured, e.g. "declarations/s".
	Metric string `json:"metric"`
	// Measured is the figure as printed, with its unit.
	Measured string `json:"measured"`
	// Value is the measured number, in the unit of Measured.
	Value float64 `json:"value"`
	// Baseline is what Value is compared with, as printed: a baseline
	// measured in the same run or an ideal derived from the surroundings.
	Baseline string `json:"baseline,omitempty"`
	// Ratio is Value over the baseline (or ideal over Value for a
	// latency); 0 when there is none.
	Ratio float64 `json:"ratio,omitempty"`
	// RatioMin and RatioMax are the extremes of the ratios of the pairs
	// measured one after the other, when the scenario alternates the run
	// and its baseline over several rounds; Ratio is then their median.
	RatioMin float64 `json:"ratioMin,omitempty"`
	RatioMax float64 `json:"ratioMax,omitempty"`
	// Target is the goal of the issue, as printed; empty for Info.
	Target  string  `json:"target,omitempty"`
	Verdict Verdict `json:"verdict"`
	// Note explains how the figure came about.
	Note string `json:"note,omitempty"`
}

// Machine describes where the report was measured.
type Machine struct {
	CPUs      int    `json:"cpus"`
	Model     string `json:"model"`
	GoVersion string `json:"goVersion"`
	OS        string `json:"os"`
	Arch      string `json:"arch"`
}

// Report is the outcome of Run.
type Report struct {
	Machine Machine `json:"machine"`
	Sizes   string  `json:"sizes"`
	// Setup says how the worker and its surroundings were configured.
	Setup   string    `json:"setup"`
	Started time.Time `json:"started"`
	// Seconds is how long the run took.
	Seconds float64  `json:"seconds"`
	Figures []Figure `json:"figures"`
}

// Failed reports whether a scenario found the worker incorrect or could
// not finish.
func (r *Report) Failed() bool {
	return slices.ContainsFunc(r.Figures, func(f Figure) bool { return f.Verdict == Failed })
}

// Config configures Run. Sizes is required; the rest may be left zero.
type Config struct {
	// Sizes sets how much each scenario does (FullSizes, QuickSizes).
	Sizes Sizes
	// Only names the scenarios to run (see ScenarioNames); empty runs all.
	Only []string
	// Dir holds the demo key and, while its scenario runs, each NATS
	// store; empty means a temporary directory removed when Run returns.
	Dir string
	// NATSCommand returns the command of a NATS server process storing in
	// dir (see ServeNATS). The documents scenario needs it: an embedded
	// server would share the heap being measured. Nil skips that scenario.
	NATSCommand func(dir string) *exec.Cmd
	// WorkerCommand returns the command of a `digitoll run` process; the
	// scale-out scenario adds its settings to the environment. Nil runs
	// the scale-out workers in this process instead, each with its own
	// NATS connection and Toll client.
	WorkerCommand func() *exec.Cmd
	// ModuleDir is the source of this module, where the hot-path
	// benchmarks are run with `go test`; empty looks upward from the
	// working directory. Without it, or without the go command, the
	// scenario is skipped.
	ModuleDir string
	// GoTestFlags are added to that `go test` command (e.g. -race).
	GoTestFlags []string
	// Progress receives a line as each scenario starts and ends; nil
	// discards.
	Progress io.Writer
	// Logger receives the logs of the workers run in this process; nil
	// discards them.
	Logger *slog.Logger
	// Rounds, when above zero, replaces Sizes.OverheadRounds.
	Rounds int
	// DiscardLogsOnly leaves out the overhead scenario's run of the worker
	// with the production log handler formatting into io.Discard; the
	// worker then runs only with Logger (by default discarding), which
	// understates the cost of logging.
	DiscardLogsOnly bool
}

// scenario is one benchmark of the issue.
type scenario struct {
	name  string
	title string
	run   func(ctx context.Context, r *runner) ([]Figure, error)
}

func scenarios() []scenario {
	return []scenario{
		{"overhead", "worker against a plain JetStream worker and a bare loop to the same simulator", overhead},
		{"latency", "hiding Toll's latency behind the in-flight limit", latency},
		{"tokens", "grants and exchanges per scope", tokens},
		{"documents", "concurrent uploads from the Object Store", documents},
		{"scaleout", "workers sharing one consumer", scaleOut},
		{"hotpath", "go test -bench of the per-message code", hotPath},
		{"storage", "what JetStream keeps per declaration", storage},
	}
}

// ScenarioNames lists the scenarios in the order Run runs them.
func ScenarioNames() []string {
	var names []string
	for _, s := range scenarios() {
		names = append(names, s.name)
	}
	return names
}

// ErrUnknownScenario is wrapped by Run's error for a name in Config.Only
// that names no scenario.
var ErrUnknownScenario = errors.New("unknown scenario")

// runner is the state one Run shares among its scenarios.
type runner struct {
	cfg Config
	dir string
	key simulator.DemoKey
	log *slog.Logger
	// stages counts the stages made, naming their directories.
	stages int
}

// Run runs the selected scenarios one after the other and reports their
// figures. A scenario that fails contributes a figure with verdict Failed
// and the others still run; Run itself fails only when it cannot start
// (a bad Config, no directory, no key) or ctx ends.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	selected, err := selectScenarios(cfg.Only)
	if err != nil {
		return nil, err
	}
	r := &runner{cfg: cfg, dir: cfg.Dir, log: cfg.Logger}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.dir == "" {
		tmp, err := os.MkdirTemp("", "digitoll-bench-")
		if err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		defer os.RemoveAll(tmp)
		r.dir = tmp
	}
	// One key for every stage: making an RSA key takes a noticeable
	// moment, and the simulator of each stage trusts it afresh.
	if r.key, err = simulator.WriteDemoKey(r.dir, config.SimClientID); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	rep := &Report{Machine: machine(), Sizes: cfg.Sizes.Name, Setup: setup, Started: time.Now()}
	for _, s := range selected {
		r.progress("%s: %s…", s.name, s.title)
		start := time.Now()
		figs, err := s.run(ctx, r)
		if ctx.Err() != nil {
			return nil, fmt.Errorf("bench: %s: %w", s.name, ctx.Err())
		}
		if err != nil {
			figs = append(figs, Figure{Scenario: s.name, Metric: "run", Measured: "failed", Verdict: Failed, Note: s.name + ": " + oneLine(err.Error())})
		}
		rep.Figures = append(rep.Figures, figs...)
		r.progress("%s: done in %s", s.name, time.Since(start).Round(100*time.Millisecond))
	}
	rep.Seconds = time.Since(rep.Started).Seconds()
	return rep, nil
}

func selectScenarios(only []string) ([]scenario, error) {
	all := scenarios()
	if len(only) == 0 {
		return all, nil
	}
	var out []scenario
	for _, s := range all {
		if slices.Contains(only, s.name) {
			out = append(out, s)
		}
	}
	for _, name := range only {
		if !slices.Contains(ScenarioNames(), name) {
			return nil, fmt.Errorf("bench: %w %q (have %s)", ErrUnknownScenario, name, strings.Join(ScenarioNames(), ", "))
		}
	}
	return out, nil
}

func (r *runner) progress(format string, args ...any) {
	if r.cfg.Progress != nil {
		fmt.Fprintf(r.cfg.Progress, "bench: "+format+"\n", args...)
	}
}

// WriteTable prints the report as one table, the machine first and the
// notes after it.
func (r *Report) WriteTable(w io.Writer) error {
	m := r.Machine
	fmt.Fprintf(w, "digitoll bench: %d CPUs (%s), %s %s/%s, %s sizes, %s\n%s.\n\n",
		m.CPUs, m.Model, m.GoVersion, m.OS, m.Arch, r.Sizes, time.Duration(r.Seconds*float64(time.Second)).Round(time.Second), r.Setup)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "scenario\tmeasured\tbaseline/ideal\tratio\ttarget\tverdict")
	var notes []string
	for _, f := range r.Figures {
		ratio := ""
		if f.Ratio != 0 {
			ratio = fmt.Sprintf("%.2f", f.Ratio)
		}
		if f.RatioMin != 0 || f.RatioMax != 0 {
			ratio += fmt.Sprintf(" (%.2f–%.2f)", f.RatioMin, f.RatioMax)
		}
		verdict := string(f.Verdict)
		if f.Note != "" {
			notes = append(notes, f.Note)
			verdict += fmt.Sprintf(" [%d]", len(notes))
		}
		fmt.Fprintf(tw, "%s: %s\t%s\t%s\t%s\t%s\t%s\n", f.Scenario, f.Metric, f.Measured, f.Baseline, ratio, f.Target, verdict)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(notes) > 0 {
		fmt.Fprintln(w)
	}
	for i, n := range notes {
		fmt.Fprintf(w, "[%d] %s\n", i+1, n)
	}
	return nil
}

// WriteJSON prints the report as one indented JSON object.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

func machine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), Model: "unknown CPU", GoVersion: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH}
	// /proc/cpuinfo is what lscpu reads; elsewhere the model stays unknown.
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.Model = strings.TrimSpace(v)
				break
			}
		}
	}
	return m
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
