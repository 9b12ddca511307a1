package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// modulePath identifies this module's go.mod.
const modulePath = "github.com/digitoll/digitoll-worker"

// hotBenchmark is one Go benchmark of the per-message code.
type hotBenchmark struct {
	pkg, name, what string
}

// hotBenchmarks are run by the hotpath scenario; each does what the
// worker does once per message.
func hotBenchmarks() []hotBenchmark {
	return []hotBenchmark{
		{"./contract", "BenchmarkParseSubmission", "parse a submission"},
		{"./worker", "BenchmarkResultMsg", "build a result message"},
		{"./toll", "BenchmarkDeclare", "Toll request path (Declare)"},
	}
}

// benchLine matches a result line of `go test -bench -benchmem`.
var benchLine = regexp.MustCompile(`^(Benchmark\w+?)(?:-\d+)?\s+\d+\s+([\d.]+) ns/op(?:\s+[\d.]+ MB/s)?\s+(\d+) B/op\s+(\d+) allocs/op`)

// hotResult is one parsed benchmark line.
type hotResult struct {
	nsPerOp     float64
	bytesPerOp  int64
	allocsPerOp int64
}

// hotPath runs the per-message benchmarks with `go test -bench
// -benchmem` in the module's source and reports time, bytes and
// allocations per message. It needs the go command and the source; a
// built binary elsewhere skips it.
func hotPath(ctx context.Context, r *runner) ([]Figure, error) {
	dir := r.cfg.ModuleDir
	if dir == "" {
		dir = findModule()
	}
	goCmd, err := exec.LookPath("go")
	if dir == "" || err != nil {
		return []Figure{{Scenario: "hotpath", Metric: "go test -bench", Measured: "—", Verdict: Skipped,
			Note: "hotpath: needs the go command and this module's source (run from the repository, or set the module directory)."}}, nil
	}
	var names []string
	pkgs := map[string]bool{}
	var pkgList []string
	for _, b := range hotBenchmarks() {
		names = append(names, b.name)
		if !pkgs[b.pkg] {
			pkgs[b.pkg] = true
			pkgList = append(pkgList, b.pkg)
		}
	}
	args := []string{"test", "-run", "^$", "-bench", "^(" + strings.Join(names, "|") + ")$", "-benchmem", "-benchtime", r.cfg.Sizes.HotPathBenchtime}
	args = append(args, r.cfg.GoTestFlags...)
	args = append(args, pkgList...)
	cmd := exec.CommandContext(ctx, goCmd, args...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, lastLines(out.String(), 20))
	}
	results, err := parseBenchmarks(out.String())
	if err != nil {
		return nil, err
	}
	var figs []Figure
	for i, b := range hotBenchmarks() {
		res, ok := results[b.name]
		if !ok {
			return nil, fmt.Errorf("go test printed no result for %s:\n%s", b.name, lastLines(out.String(), 20))
		}
		f := Figure{
			Scenario: "hotpath", Metric: b.what + ", allocs/message",
			Measured: fmt.Sprintf("%d allocs, %d B, %s", res.allocsPerOp, res.bytesPerOp, nanos(res.nsPerOp)),
			Value:    float64(res.allocsPerOp), Verdict: Info,
		}
		if i == 0 {
			f.Note = fmt.Sprintf("hotpath: go test -bench -benchmem -benchtime %s %s (%s); per message. Declare includes the loopback HTTP exchange with a local server and that server's own allocations.",
				r.cfg.Sizes.HotPathBenchtime, strings.Join(pkgList, " "), strings.Join(names, ", "))
		}
		figs = append(figs, f)
	}
	return figs, nil
}

// parseBenchmarks reads the result lines of `go test -bench -benchmem`.
func parseBenchmarks(out string) (map[string]hotResult, error) {
	results := map[string]hotResult{}
	for _, line := range strings.Split(out, "\n") {
		m := benchLine.FindStringSubmatch(strings.TrimSpace(line))
		if m == nil {
			continue
		}
		ns, err1 := strconv.ParseFloat(m[2], 64)
		b, err2 := strconv.ParseInt(m[3], 10, 64)
		allocs, err3 := strconv.ParseInt(m[4], 10, 64)
		if err := errors.Join(err1, err2, err3); err != nil {
			return nil, fmt.Errorf("benchmark line %q: %w", line, err)
		}
		results[m[1]] = hotResult{nsPerOp: ns, bytesPerOp: b, allocsPerOp: allocs}
	}
	return results, nil
}

// findModule looks for this module's go.mod from the working directory
// upward and returns its directory, or "" if there is none.
func findModule() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for range 64 {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil {
			first, _, _ := strings.Cut(string(b), "\n")
			if strings.TrimSpace(first) == "module "+modulePath {
				return dir
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
	return ""
}

func nanos(ns float64) string {
	if ns >= 1000 {
		return fmt.Sprintf("%.1f µs", ns/1000)
	}
	return fmt.Sprintf("%.0f ns", ns)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
