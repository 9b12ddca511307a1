package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strings"
	"testing"
	"time"
)

// natsHelperEnv makes the test binary serve NATS instead of running
// tests: the documents scenario starts it as its NATS process.
const natsHelperEnv = "DIGITOLL_BENCH_TEST_NATS_DIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(natsHelperEnv); dir != "" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
		err := ServeNATS(ctx, dir, os.Stdin, os.Stdout)
		stop()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// tinySizes keep every scenario's shape at a few seconds in all.
func tinySizes() Sizes {
	return Sizes{
		Name:                     "tiny",
		OverheadDeclarations:     30,
		OverheadConcurrency:      8,
		OverheadRounds:           2,
		LatencyDeclarations:      24,
		LatencyConcurrency:       8,
		CallLatency:              5 * time.Millisecond,
		ValidationDelay:          100 * time.Millisecond,
		TokenDeclarationsPerKind: 3,
		Documents:                3,
		DocumentBytes:            1 << 20,
		ScaleOutWorkers:          []int{1, 2},
		ScaleOutConcurrency:      4,
		ScaleOutWaves:            2,
		ScaleOutLatency:          5 * time.Millisecond,
		HotPathBenchtime:         "1x",
		StorageDeclarations:      30,
	}
}

// The smoke run: every scenario at tiny sizes must produce its figures
// with the worker correct throughout (one result per submission, each
// declaration sent to Toll once, one grant and exchange per scope, the
// files arriving whole). It asserts nothing about speed or memory: those
// are what the figures report. The scale-out workers run in this
// process (building the binary would take longer than the rest); the
// documents scenario's NATS server is this test binary run again.
func TestEveryScenarioProducesItsFigures(t *testing.T) {
	var progress bytes.Buffer
	cfg := Config{
		Sizes:    tinySizes(),
		Dir:      t.TempDir(),
		Progress: &progress,
		NATSCommand: func(dir string) *exec.Cmd {
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), natsHelperEnv+"="+dir)
			return cmd
		},
	}
	if raceBuild {
		cfg.GoTestFlags = []string{"-race"}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	rep, err := Run(ctx, cfg)
	if err != nil {
		t.Fatalf("%v\nprogress:\n%s", err, &progress)
	}
	var table bytes.Buffer
	if err := rep.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", &table)

	// The figures each scenario must report, at least.
	want := map[string][]string{
		"overhead": {"declarations/s", "CPU per declaration", "CPU per declaration, worker/plain JetStream",
			"CPU per declaration, real logger, worker/plain JetStream", "CPU per declaration, real logger, worker/bare",
			"CPU per declaration, plain JetStream/bare", "declarations/s, worker/plain JetStream", "allocations per declaration, worker/plain JetStream",
			"CPU per declaration, worker/plain JetStream + journal writes", "CPU per declaration, real logger, worker/plain JetStream + journal writes",
			"CPU per declaration, plain + journal/plain JetStream", "allocations per declaration, worker/plain JetStream + journal writes", "NATS messages per declaration, worker/plain JetStream",
			"NATS messages per declaration, real logger, worker/plain JetStream", "NATS messages per declaration, plain + journal/plain JetStream"},
		"latency":   {"declarations/s", "handler alone, adaptive polling", "handler alone, fixed polling", "worker against the handler alone", "plain JetStream worker, declarations/s", "worker/plain JetStream, declarations/s", "handler alone, former default polling", "status polls per declaration", "CPU per declaration"},
		"tokens":    {"Maskinporten grants per scope", "token exchanges per scope"},
		"documents": {"peak heap growth"},
		"scaleout":  {"1 worker, declarations/s", "2 workers, declarations/s", "duplicates"},
		"hotpath":   {"parse a submission, allocs/message", "build a result message, allocs/message", "Toll request path (Declare), allocs/message"},
		"storage": {"journal bytes per declaration", "journal disk bytes per declaration", "results bytes per declaration", "results disk bytes per declaration",
			"NATS server memory kept per declaration"},
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Logf("no go command: the hotpath scenario is skipped")
		want["hotpath"] = []string{"go test -bench"}
	}
	got := map[string][]string{}
	for _, f := range rep.Figures {
		got[f.Scenario] = append(got[f.Scenario], f.Metric)
		switch {
		case f.Verdict == Failed:
			t.Errorf("%s: %s", f.Scenario, f.Note)
		case f.Verdict == Skipped && f.Scenario != "hotpath":
			t.Errorf("%s skipped: %s", f.Scenario, f.Note)
		case f.Verdict == Skipped:
		case f.Measured == "" || f.Measured == "—":
			t.Errorf("%s: %s has no measurement", f.Scenario, f.Metric)
		case f.Ratio < 0 || (f.Baseline != "" && f.Ratio == 0 && f.Scenario != "scaleout"):
			t.Errorf("%s: %s compared with %q without a ratio", f.Scenario, f.Metric, f.Baseline)
		}
	}
	// Each scenario reports at least these; latency adds where the
	// default rate limit would bind when there is one.
	for _, name := range ScenarioNames() {
		for _, metric := range want[name] {
			if !slices.Contains(got[name], metric) {
				t.Errorf("%s reported %q, want %q among them", name, got[name], metric)
			}
		}
	}
	// The overhead scenario alternates its runs: each ratio is the median
	// of the rounds' ratios, printed with their range.
	for _, f := range rep.Figures {
		if f.Scenario != "overhead" || f.Verdict == Skipped || f.Baseline == "" {
			continue
		}
		if f.RatioMin <= 0 || f.RatioMin > f.Ratio || f.Ratio > f.RatioMax {
			t.Errorf("overhead: %s: ratio %v not within its rounds' range %v–%v", f.Metric, f.Ratio, f.RatioMin, f.RatioMax)
		}
		row := fmt.Sprintf("overhead: %s  ", f.Metric)
		rng := fmt.Sprintf("%.2f (%.2f–%.2f)", f.Ratio, f.RatioMin, f.RatioMax)
		if !strings.Contains(table.String(), row) || !strings.Contains(table.String(), rng) {
			t.Errorf("the table has no row %q with the ratio %q", row, rng)
		}
	}
	// The token economy is correctness too: concurrent messages of one
	// scope must share one fetch.
	for _, f := range rep.Figures {
		if f.Scenario == "tokens" && f.Verdict != Pass {
			t.Errorf("tokens: %s: %s, want exactly 1 each", f.Metric, f.Measured)
		}
	}

	var back Report
	var js bytes.Buffer
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || len(back.Figures) != len(rep.Figures) {
		t.Errorf("the JSON report does not read back: %v\n%s", err, &js)
	}
}

func TestOnlyRunsTheNamedScenarios(t *testing.T) {
	tests := []struct {
		only []string
		want []string
		err  error
	}{
		{nil, ScenarioNames(), nil},
		{[]string{"hotpath", "tokens"}, []string{"tokens", "hotpath"}, nil},
		{[]string{"tokens", "speed"}, nil, ErrUnknownScenario},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.only, ","), func(t *testing.T) {
			got, err := selectScenarios(tt.only)
			if !errors.Is(err, tt.err) {
				t.Fatalf("error %v, want %v", err, tt.err)
			}
			var names []string
			for _, s := range got {
				names = append(names, s.name)
			}
			if !slices.Equal(names, tt.want) {
				t.Errorf("ran %v, want %v", names, tt.want)
			}
		})
	}
}

func TestParseBenchmarks(t *testing.T) {
	out := `goos: linux
pkg: github.com/digitoll/digitoll-worker/contract
BenchmarkParseSubmission-2   	   13069	     18047 ns/op	  57.85 MB/s	    4241 B/op	      28 allocs/op
PASS
BenchmarkResultMsg   	   62563	      3721.5 ns/op	    1552 B/op	      19 allocs/op
BenchmarkNoMem-2   	   100	      3721 ns/op
ok  	github.com/digitoll/digitoll-worker/worker	0.245s
`
	got, err := parseBenchmarks(out)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]hotResult{
		"BenchmarkParseSubmission": {nsPerOp: 18047, bytesPerOp: 4241, allocsPerOp: 28},
		"BenchmarkResultMsg":       {nsPerOp: 3721.5, bytesPerOp: 1552, allocsPerOp: 19},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("parsed %v, want %v", got, want)
	}
}
