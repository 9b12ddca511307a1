package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A second `digitoll run` on the DIGITOLL_NATS_DIR of a running one stops
// at once with a message naming the directory and the process, without
// opening the store the first one is writing; the first one runs on.
func TestSecondRunOnTheSameNATSDirRefuses(t *testing.T) {
	_, vars := workerAgainstSim(t, splitList(simScopes)...)
	natsDir := filepath.Join(t.TempDir(), "nats")
	vars["DIGITOLL_NATS_DIR"] = natsDir
	vars["DIGITOLL_NATS_PORT"] = "-1"
	vars["DIGITOLL_HTTP_ADDR"] = "127.0.0.1:0"
	env, out, errOut := testEnv(vars)
	done := runInBackground(t, env, "run")
	waitFor(t, 30*time.Second, "the first worker to start its NATS server", func() bool {
		return strings.Contains(out.String(), "readiness at")
	})

	env2, out2, errOut2 := testEnv(vars)
	ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	if code := run(ctx2, env2, []string{"run"}); code != 1 {
		t.Fatalf("second run exited %d, want 1\nstdout:\n%s\nstderr:\n%s", code, out2, errOut2)
	}
	want := fmt.Sprintf("DIGITOLL_NATS_DIR %s is in use by another digitoll process (pid %d)", natsDir, os.Getpid())
	if !strings.Contains(errOut2.String(), want) {
		t.Errorf("second run said:\n%s\nwant it to say %q", errOut2, want)
	}
	if strings.Contains(out2.String(), "embedded NATS") {
		t.Errorf("second run started a server:\n%s", out2)
	}
	select {
	case code := <-done:
		done <- code
		t.Fatalf("the first run exited %d\n%s", code, errOut)
	default:
	}
}

// A run whose embedded server's port is taken stops at once, naming the
// setting to change, instead of waiting for a server that cannot start.
func TestRunOnAPortInUseNamesTheSetting(t *testing.T) {
	_, vars := workerAgainstSim(t, splitList(simScopes)...)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	addr := ln.Addr().String()
	vars["DIGITOLL_NATS_DIR"] = filepath.Join(t.TempDir(), "nats")
	vars["DIGITOLL_NATS_PORT"] = strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	env, out, errOut := testEnv(vars)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if code := run(ctx, env, []string{"run"}); code != 1 {
		t.Fatalf("run exited %d, want 1\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	for _, want := range []string{"DIGITOLL_NATS_PORT", addr} {
		if !strings.Contains(errOut.String(), want) {
			t.Errorf("run said:\n%s\nwant it to name %q", errOut, want)
		}
	}
}
