package main

import (
	"context"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestReadVersion(t *testing.T) {
	tests := []struct {
		name string
		bi   *debug.BuildInfo
		ok   bool
		want string
	}{
		{"no build information", nil, false, "digitoll unknown (commit unknown) built with unknown"},
		{"tagged release", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.4.0"}, Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "1a2b3c"}, {Key: "vcs.time", Value: "2026-11-30T09:12:00Z"}, {Key: "vcs.modified", Value: "false"},
		}}, true, "digitoll v1.4.0 (commit 1a2b3c, 2026-11-30T09:12:00Z) built with go1.26.8"},
		{"dirty checkout", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "1a2b3c"}, {Key: "vcs.modified", Value: "true"},
		}}, true, "digitoll (devel) (commit 1a2b3c-dirty) built with go1.26.8"},
		{"built without VCS stamping", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}}, true,
			"digitoll (devel) (commit unknown) built with go1.26.8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b strings.Builder
			printVersion(&b, readVersion(tt.bi, tt.ok))
			if got := strings.TrimSpace(b.String()); got != tt.want {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestVersionCommand(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		env, out, errOut := testEnv(nil)
		if code := run(context.Background(), env, args); code != 0 {
			t.Fatalf("%v: exit %d, stderr %s", args, code, errOut)
		}
		// A test binary has build information: its Go version at least.
		if !strings.HasPrefix(out.String(), "digitoll ") || !strings.Contains(out.String(), runtime.Version()) {
			t.Errorf("%v printed %q", args, out)
		}
	}
	env, out, _ := testEnv(nil)
	run(context.Background(), env, []string{"help"})
	if !strings.Contains(out.String(), "version") {
		t.Errorf("usage does not list version:\n%s", out)
	}
}
