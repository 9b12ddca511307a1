package main

import (
	"context"
	"strings"
	"testing"

	"github.com/digitoll/digitoll-worker/internal/buftest"
)

func testEnv(vars map[string]string) (*environment, *buftest.Buffer, *buftest.Buffer) {
	out, errOut := &buftest.Buffer{}, &buftest.Buffer{}
	// An embedded server on the default port 4222 cannot start while
	// anything else on the machine (another test binary, a digitoll run by
	// hand) holds it: unless a test says otherwise, it takes a free port.
	const port, anyPort = "DIGITOLL_NATS_PORT", "-1"
	getenv := func(k string) string {
		if v, ok := vars[k]; ok || k != port {
			return v
		}
		return anyPort
	}
	environ := func() []string {
		var kv []string
		for k, v := range vars {
			kv = append(kv, k+"="+v)
		}
		if _, ok := vars[port]; !ok {
			kv = append(kv, port+"="+anyPort)
		}
		return kv
	}
	return &environment{stdout: out, stderr: errOut, getenv: getenv, environ: environ}, out, errOut
}

func TestCommandLine(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		env        map[string]string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{"no command prints usage", nil, nil, 2, "Usage: digitoll <command>", ""},
		{"help", []string{"help"}, nil, 0, "Commands:", ""},
		{"unknown command", []string{"frobnicate"}, nil, 2, "", `unknown command "frobnicate"`},
		{"run --help lists settings", []string{"run", "--help"}, nil, 0, "DIGITOLL_CLIENT_ID", ""},
		{"run with a bad flag", []string{"run", "--bogus"}, nil, 2, "", "flag provided but not defined: -bogus"},
		{"run without configuration names the setting", []string{"run"}, nil, 1, "", "DIGITOLL_CLIENT_ID"},
		{"run with a bad value names the setting", []string{"run", "--concurrency", "lots"}, nil, 1, "", "DIGITOLL_CONCURRENCY (--concurrency)"},
		{"run with an extra argument", []string{"run", "extra"}, nil, 2, "", `unexpected argument "extra"`},
		{"run in sim mode without the simulator's key", []string{"run", "--env", "sim"}, map[string]string{"DIGITOLL_SIM_DIR": "/nonexistent"}, 1, "", "DIGITOLL_KEY_FILE"},
		{"sim --help", []string{"sim", "--help"}, nil, 0, "-validation-delay duration", ""},
		{"sim with a bad env duration", []string{"sim"}, map[string]string{"DIGITOLL_SIM_VALIDATION_DELAY": "soon"}, 1, "", "DIGITOLL_SIM_VALIDATION_DELAY"},
		{"sim with an argument", []string{"sim", "now"}, nil, 2, "", `unexpected argument "now"`},
		{"publish without files", []string{"publish"}, nil, 2, "", "name at least one file"},
		{"publish with a bad kind", []string{"publish", "--kind", "sea", "x.json"}, nil, 2, "", "unknown kind"},
		{"publish a missing file", []string{"publish", "no-such-file.json"}, nil, 1, "", "no-such-file.json"},
		{"results with a bad tenant", []string{"results", "--tenant", "ACME"}, nil, 2, "", "not a tenant name"},
		{"demo with an argument", []string{"demo", "please"}, nil, 2, "", `unexpected argument "please"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, out, errOut := testEnv(tt.env)
			code := run(context.Background(), env, tt.args)
			if code != tt.wantCode {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.wantCode, out, errOut)
			}
			if !strings.Contains(out.String(), tt.wantStdout) {
				t.Errorf("stdout lacks %q:\n%s", tt.wantStdout, out)
			}
			if !strings.Contains(errOut.String(), tt.wantStderr) {
				t.Errorf("stderr lacks %q:\n%s", tt.wantStderr, errOut)
			}
		})
	}
}
