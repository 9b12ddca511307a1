package main

import (
	"context"
	"encoding/json"
	"maps"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/digitoll/digitoll-worker/config"
	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/embednats"
	"github.com/digitoll/digitoll-worker/internal/buftest"
	"github.com/digitoll/digitoll-worker/internal/natstest"
	"github.com/digitoll/digitoll-worker/samples"
	"github.com/digitoll/digitoll-worker/simulator"
)

// composeServicePorts are the container ports the services of
// docker-compose.yml are reached on inside the compose network.
var composeServicePorts = map[string]string{"nats": "4222", "simulator": "8090", "worker": "8081"}

// docker-compose.yml as a whole works: the simulator, the worker, the
// health checks and the publish tool run with the compose file's own
// commands and environment, as written, and the road samples come back
// accepted. Without Docker, each service runs here through the CLI's entry
// point; a compose host name (simulator:8090) becomes localhost on a port of
// the test's choosing, a listener on every interface (0.0.0.0:8090) that
// port on 127.0.0.1, and /run/secrets/<name> a key pair made for the test.
// The host names stay names rather than 127.0.0.1 on purpose: a simulator
// that advertises its listen address instead of the name its clients use
// refuses every grant, and only a name that differs from the address shows
// it.
func TestComposeSettingsDeclareEndToEnd(t *testing.T) {
	cf := readCompose(t)
	dir := t.TempDir()
	key, err := simulator.WriteDemoKey(dir, config.SimClientID)
	if err != nil {
		t.Fatal(err)
	}
	secretFiles := map[string]string{}
	for name := range cf.Secrets {
		switch {
		case strings.Contains(name, "key"):
			secretFiles[name] = key.KeyFile
		case strings.Contains(name, "cert"):
			secretFiles[name] = key.CertFile
		default:
			t.Fatalf("secret %s is neither the key nor the certificate", name)
		}
	}
	hostPorts := map[string]string{}
	for svc := range composeServicePorts {
		hostPorts[svc] = freePort(t)
	}
	// settings are a service's environment (or health check) with the
	// compose network mapped onto this host.
	settings := func(svc string, vars map[string]string) map[string]string {
		var pairs []string
		for other, port := range composeServicePorts {
			pairs = append(pairs, other+":"+port, "localhost:"+hostPorts[other])
		}
		if port, ok := composeServicePorts[svc]; ok {
			pairs = append(pairs, "0.0.0.0:"+port, "127.0.0.1:"+hostPorts[svc], "127.0.0.1:"+port, "127.0.0.1:"+hostPorts[svc])
		}
		for name, file := range secretFiles {
			pairs = append(pairs, "/run/secrets/"+name, file)
		}
		r := strings.NewReplacer(pairs...)
		out := map[string]string{}
		for k, v := range vars {
			out[k] = r.Replace(v)
		}
		return out
	}
	// start runs a service's command as `digitoll <command>` until the
	// test ends.
	start := func(svc string) *buftest.Buffer {
		s := cf.Services[svc]
		env, out, errOut := testEnv(settings(svc, s.Environment))
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan int, 1)
		go func() { done <- run(ctx, env, s.Command) }()
		t.Cleanup(func() {
			cancel()
			if code := <-done; code != 0 {
				t.Errorf("%s exited %d\nstdout:\n%s\nstderr:\n%s", svc, code, out, errOut)
			}
		})
		return errOut
	}
	// healthy waits until the service's compose health check passes.
	healthy := func(svc string, log *buftest.Buffer) {
		s := cf.Services[svc]
		hc := s.Healthcheck.Test
		if len(hc) < 3 || hc[1] != "/usr/local/bin/digitoll" {
			t.Fatalf("%s: health check %v does not run digitoll", svc, hc)
		}
		vars := settings(svc, s.Environment)
		args := strings.Split(settings(svc, map[string]string{"": strings.Join(hc[2:], "\x00")})[""], "\x00")
		var last string
		waitFor(t, 30*time.Second, svc+" to be healthy", func() bool {
			env, out, errOut := testEnv(vars)
			code := run(t.Context(), env, args)
			last = out.String() + errOut.String()
			return code == 0
		})
		t.Logf("%s healthy: %s", svc, strings.TrimSpace(last))
	}

	// NATS as the nats service runs it: JetStream with a store.
	if !contains(cf.Services["nats"].Command, "--jetstream") {
		t.Fatal("the nats service runs without --jetstream")
	}
	natsPort, _ := strconv.Atoi(hostPorts["nats"])
	srv, err := embednats.Start(embednats.Options{Dir: filepath.Join(dir, "nats"), Host: "127.0.0.1", Port: natsPort})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)

	simLog := start("simulator")
	healthy("simulator", simLog)
	workerLog := start("worker")
	healthy("worker", workerLog)

	// The publish tool as `docker compose run --rm publish` runs it, with
	// its ./samples volume where the container sees it.
	pub := cf.Services["publish"]
	mounts := map[string]string{}
	for _, v := range pub.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) >= 2 && strings.HasPrefix(parts[0], "./") {
			mounts[parts[1]] = filepath.Join("../..", parts[0])
		}
	}
	args := make([]string, len(pub.Command))
	for i, a := range pub.Command {
		args[i] = a
		for target, src := range mounts {
			if rest, ok := strings.CutPrefix(a, target); ok {
				args[i] = src + rest
			}
		}
	}
	env, out, errOut := testEnv(settings("publish", pub.Environment))
	if code := run(t.Context(), env, args); code != 0 {
		t.Fatalf("publish %v exited %d\n%s%s", args, code, out, errOut)
	}

	// Every road sample gets its result: accepted with an MRN, but the
	// one whose date is deliberately broken.
	want := map[string]bool{}
	all, err := samples.Load(contract.KindRoad)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range all {
		var sub struct{ ID string }
		if err := json.Unmarshal(s.Body, &sub); err != nil || sub.ID == "" {
			t.Fatalf("sample %s: no id (%v)", s.Name, err)
		}
		want[sub.ID] = strings.Contains(s.Name, "bad")
	}
	js := natstest.Connect(t, srv)
	cons, err := resultConsumer(t.Context(), js, contract.ResultSubject(contract.KindRoad, contract.DefaultTenant), jetstream.DeliverAllPolicy)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]contract.Result{}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	// A worker that pauses the road lane will not answer: stop waiting.
	go func() {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for ctx.Err() == nil && !strings.Contains(workerLog.String(), `"msg":"pausing `) {
			select {
			case <-ctx.Done():
			case <-tick.C:
			}
		}
		cancel()
	}()
	err = eachResult(ctx, cons, func(r contract.Result, _ []byte) bool {
		got[r.ID] = r
		return len(got) < len(want)
	})
	if len(got) < len(want) {
		t.Fatalf("%d of %d results (%v): %v\nworker log:\n%s\nsimulator log:\n%s", len(got), len(want), slices.Sorted(maps.Keys(got)), err, workerLog, simLog)
	}
	for id, bad := range want {
		r, ok := got[id]
		switch {
		case !ok:
			t.Errorf("%s: no result", id)
		case bad && r.Status != contract.StatusRejected:
			t.Errorf("%s: %s, want rejected", id, r.Status)
		case !bad && (r.Status != contract.StatusAccepted || !contract.ValidMRN(r.MRN)):
			t.Errorf("%s: %s %q, want accepted with an MRN (errors %v)", id, r.Status, r.MRN, r.Errors)
		}
	}
}

// freePort is a loopback TCP port free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}
