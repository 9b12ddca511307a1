package main

import (
	"context"
	"strings"
	"testing"
)

// The bench's own scenarios are smoke-tested in package bench; here only
// the command line: its usage, and that a wrong scenario name is a usage
// error before anything starts.
func TestBenchCommandLine(t *testing.T) {
	tests := []struct {
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{[]string{"bench", "--help"}, 0, "--only", ""},
		{[]string{"bench", "--only", "speed"}, 2, "", `unknown scenario "speed"`},
		{[]string{"bench", "extra"}, 2, "", `unexpected argument "extra"`},
		{[]string{"bench", "--help"}, 0, "--rounds", ""},
		{[]string{"bench", "--help"}, 0, "--real-logger", ""},
		{[]string{"bench", "--rounds", "-1"}, 2, "", "--rounds -1: want 0 or more"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			env, out, errOut := testEnv(nil)
			if code := run(context.Background(), env, tt.args); code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, out, errOut)
			}
			if !strings.Contains(out.String(), tt.stdout) || !strings.Contains(errOut.String(), tt.stderr) {
				t.Errorf("stdout:\n%s\nstderr:\n%s\nwant %q and %q in them", out, errOut, tt.stdout, tt.stderr)
			}
		})
	}
}
