package chaos

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/digitoll/digitoll-worker/config"
	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/simulator"
	"github.com/digitoll/digitoll-worker/worker"
)

// workerBinary is the digitoll binary TestMain builds once for every test.
var workerBinary string

// Building the binary: another engineer may be halfway through an edit of
// cmd/ when the tests start, so a failed build is retried for a while.
const (
	buildPatience   = 3 * time.Minute
	buildRetryEvery = 10 * time.Second
)

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "digitoll-chaos-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	bin, err := buildWorker(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 1
	}
	workerBinary = bin
	return m.Run()
}

// buildWorker builds ./cmd/digitoll of this module into dir, retrying a
// failed build every buildRetryEvery for up to buildPatience.
func buildWorker(dir string) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "digitoll")
	deadline := time.Now().Add(buildPatience)
	for attempt := 1; ; attempt++ {
		cmd := exec.Command("go", "build", "-o", bin, "./cmd/digitoll")
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if err == nil {
			return bin, nil
		}
		if time.Now().Add(buildRetryEvery).After(deadline) {
			return "", fmt.Errorf("go build ./cmd/digitoll failed %d times in %s; the last attempt said:\n%s", attempt, buildPatience, out)
		}
		fmt.Fprintf(os.Stderr, "chaos: go build ./cmd/digitoll failed (attempt %d, the tree may be mid-edit); retrying in %s:\n%s",
			attempt, buildRetryEvery, out)
		<-time.After(buildRetryEvery)
	}
}

// moduleRoot is the directory of this module's go.mod.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("go env GOMOD names no go.mod: run the tests inside the module")
	}
	return filepath.Dir(gomod), nil
}

// seed is the seed of a test's random choices: DIGITOLL_CHAOS_SEED when
// set, so that a failed run's kill moments can be repeated, else the clock.
func seed(t *testing.T) *rand.Rand {
	t.Helper()
	s := uint64(time.Now().UnixNano())
	if v := os.Getenv("DIGITOLL_CHAOS_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("DIGITOLL_CHAOS_SEED=%q is not a number", v)
		}
		s = n
	}
	t.Logf("seed %d (repeat with DIGITOLL_CHAOS_SEED=%d)", s, s)
	return rand.New(rand.NewPCG(s, s^0x9e3779b97f4a7c15))
}

// rigConfig shapes one scenario's simulator and workers.
type rigConfig struct {
	// natsURLs are the servers workers and the test connect to.
	natsURLs []string
	// replicas of the streams (3 on a cluster).
	replicas int
	// concurrency of each worker process.
	concurrency int
	// validationDelay is the simulator's validation time.
	validationDelay time.Duration
	// tollTokenLifetime is the simulator's Toll token lifetime; short
	// lifetimes make the worker fetch tokens, and so meet a
	// Maskinporten outage, every few seconds.
	tollTokenLifetime time.Duration
	// env holds further worker settings, overriding the rig's.
	env map[string]string
}

// rig is one scenario: a simulator, a NATS connection of the test's own,
// and the worker processes started so far.
type rig struct {
	t   *testing.T
	dir string
	// key is the simulator integration's key, the default tenant's.
	key simulator.DemoKey
	// consumer is the durable consumer of the road submissions: the
	// default tenant's lane, from the environment or a tenants file.
	consumer string
	sim      *simulator.Server
	env      []string
	nc       *nats.Conn
	js       jetstream.JetStream

	mu      sync.Mutex
	kills   []time.Time
	started int
}

func newRig(t *testing.T, cfg rigConfig) *rig {
	t.Helper()
	dir := t.TempDir()
	key, err := simulator.WriteDemoKey(dir, config.SimClientID)
	if err != nil {
		t.Fatal(err)
	}
	sim, err := simulator.Start(simulator.Config{
		ValidationDelay:   cfg.validationDelay,
		TollTokenLifetime: cfg.tollTokenLifetime,
		Clients:           []simulator.Client{key.Client("toll:movement/road/v2")},
	}, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })

	urls := strings.Join(cfg.natsURLs, ",")
	nc, err := nats.Connect(urls, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond), nats.Name("chaos-test"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	// The test publishes before the first worker is up, so it creates
	// the streams the way the worker does.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := worker.EnsureStreams(ctx, js, worker.StreamOptions{Replicas: max(cfg.replicas, 1)}); err != nil {
		t.Fatal(err)
	}

	env := []string{}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DIGITOLL_") {
			env = append(env, kv)
		}
	}
	for k, v := range map[string]string{
		"DIGITOLL_ENV":                    "test",
		"DIGITOLL_MASKINPORTEN_ISSUER":    sim.Issuer(),
		"DIGITOLL_MASKINPORTEN_TOKEN_URL": sim.TokenURL(),
		"DIGITOLL_TOLL_BASE_URL":          sim.TollBaseURL(),
		"DIGITOLL_CLIENT_ID":              key.ClientID,
		"DIGITOLL_KEY_FILE":               key.KeyFile,
		"DIGITOLL_CERT_FILE":              key.CertFile,
		"DIGITOLL_NATS_URL":               urls,
		"DIGITOLL_KINDS":                  "road",
		"DIGITOLL_CONCURRENCY":            strconv.Itoa(cfg.concurrency),
		"DIGITOLL_ACK_WAIT":               "3s",
		"DIGITOLL_SHUTDOWN_GRACE":         "2s",
		"DIGITOLL_HTTP_TIMEOUT":           "5s",
		"DIGITOLL_STREAM_REPLICAS":        strconv.Itoa(max(cfg.replicas, 1)),
		"DIGITOLL_HTTP_ADDR":              "127.0.0.1:0",
		"DIGITOLL_LOG_FORMAT":             "json",
		"DIGITOLL_LOG_LEVEL":              "info",
		// A call is presumed alive for an HTTP timeout plus the time to
		// record its answer; a short lease keeps a kill's unanswered
		// calls from waiting the production minute.
		"DIGITOLL_SEND_LEASE": "10s",
	} {
		if _, ok := cfg.env[k]; !ok {
			env = append(env, k+"="+v)
		}
	}
	for k, v := range cfg.env {
		env = append(env, k+"="+v)
	}
	return &rig{t: t, dir: dir, key: key, consumer: worker.LaneConsumerName(contract.KindRoad, contract.DefaultTenant), sim: sim, env: env, nc: nc, js: js}
}

// tenantsFile writes a tenants file serving the default tenant with the
// rig's integration, so that workers given it serve the tenant from the
// file rather than the environment (the same lane), and returns the
// setting that names it.
func (r *rig) tenantsFile() string {
	r.t.Helper()
	path := filepath.Join(r.dir, "tenants.yaml")
	content := fmt.Sprintf("tenants:\n  - name: %s\n    organisationNumber: \"912345678\"\n    clientId: %s\n    keyFile: %s\n    certFile: %s\n    kinds: [road]\n",
		contract.DefaultTenant, r.key.ClientID, r.key.KeyFile, r.key.CertFile)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		r.t.Fatal(err)
	}
	return "DIGITOLL_TENANTS_FILE=" + path
}

// workerProc is one `digitoll run` process.
type workerProc struct {
	name       string
	cmd        *exec.Cmd
	stdoutPath string
	stderrPath string
	// exited is closed when the process has been waited for.
	exited   chan struct{}
	waitErr  error
	readyURL string
}

// startWorker starts a worker process and waits until its /readyz says
// 200; env ("KEY=value") overrides the rig's settings for this process.
// Its output goes to files in the test's directory; the test's cleanup
// kills its process group if it is still running.
func (r *rig) startWorker(env ...string) *workerProc {
	r.t.Helper()
	r.mu.Lock()
	r.started++
	name := fmt.Sprintf("worker-%d", r.started)
	r.mu.Unlock()
	w := &workerProc{
		name:       name,
		stdoutPath: filepath.Join(r.dir, name+".stdout"),
		stderrPath: filepath.Join(r.dir, name+".stderr"),
		exited:     make(chan struct{}),
	}
	stdout, err := os.Create(w.stdoutPath)
	if err != nil {
		r.t.Fatal(err)
	}
	stderr, err := os.Create(w.stderrPath)
	if err != nil {
		stdout.Close()
		r.t.Fatal(err)
	}
	cmd := exec.Command(workerBinary, "run")
	cmd.Dir = r.dir
	// The last of repeated keys wins.
	cmd.Env = append(append([]string(nil), r.env...), env...)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	// Its own process group, so that a SIGKILL reaches whatever it may
	// start and nothing outlives the test.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = cmd.Start()
	stdout.Close()
	stderr.Close()
	if err != nil {
		r.t.Fatalf("start %s: %v", name, err)
	}
	w.cmd = cmd
	go func() {
		w.waitErr = cmd.Wait()
		close(w.exited)
	}()
	r.t.Cleanup(func() {
		if w.running() {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
		select {
		case <-w.exited:
		case <-time.After(10 * time.Second):
			r.t.Errorf("%s (pid %d) did not exit after SIGKILL", name, cmd.Process.Pid)
		}
	})
	r.waitReady(w, 30*time.Second)
	return w
}

var readinessLine = regexp.MustCompile(`readiness at (http://\S+/readyz)`)

// waitReady waits for the process to print its readiness URL and for that
// URL to answer 200.
func (r *rig) waitReady(w *workerProc, limit time.Duration) {
	r.t.Helper()
	waitFor(r.t, limit, w.name+" to print its readiness URL", func() (bool, error) {
		if !w.running() {
			return false, fmt.Errorf("%s exited (%v)\n%s", w.name, w.waitErr, w.tail(40))
		}
		b, err := os.ReadFile(w.stdoutPath)
		if err != nil {
			return false, err
		}
		m := readinessLine.FindSubmatch(b)
		if m == nil {
			return false, nil
		}
		w.readyURL = string(m[1])
		return true, nil
	})
	waitFor(r.t, limit, w.name+" to be ready", func() (bool, error) {
		if !w.running() {
			return false, fmt.Errorf("%s exited (%v)\n%s", w.name, w.waitErr, w.tail(40))
		}
		code, _, err := w.readiness()
		return err == nil && code == http.StatusOK, nil
	})
}

func (w *workerProc) running() bool {
	select {
	case <-w.exited:
		return false
	default:
		return true
	}
}

var readinessClient = &http.Client{Timeout: 2 * time.Second}

// readiness asks /readyz once.
func (w *workerProc) readiness() (int, string, error) {
	resp, err := readinessClient.Get(w.readyURL)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, strings.TrimSpace(string(body)), err
}

// kill sends SIGKILL to the worker's process group, notes the moment for
// the invariant checks and waits until the process is gone.
func (r *rig) kill(w *workerProc) {
	r.t.Helper()
	r.mu.Lock()
	r.kills = append(r.kills, time.Now())
	r.mu.Unlock()
	if err := syscall.Kill(-w.cmd.Process.Pid, syscall.SIGKILL); err != nil {
		r.t.Fatalf("kill %s: %v", w.name, err)
	}
	select {
	case <-w.exited:
	case <-time.After(10 * time.Second):
		r.t.Fatalf("%s did not die of SIGKILL", w.name)
	}
}

// stop ends the worker with SIGTERM, as an orchestrator would, and checks
// that it exits 0 within its shutdown grace.
func (r *rig) stop(w *workerProc) {
	r.t.Helper()
	if !w.running() {
		r.t.Errorf("%s exited before it was stopped (%v)\n%s", w.name, w.waitErr, w.tail(40))
		return
	}
	if err := syscall.Kill(-w.cmd.Process.Pid, syscall.SIGTERM); err != nil {
		r.t.Fatalf("stop %s: %v", w.name, err)
	}
	select {
	case <-w.exited:
		if w.waitErr != nil {
			r.t.Errorf("%s exited with %v on SIGTERM\n%s", w.name, w.waitErr, w.tail(40))
		}
	case <-time.After(30 * time.Second):
		r.t.Errorf("%s did not stop within 30 s of SIGTERM", w.name)
	}
}

// logs is the process's stderr (its JSON log lines).
func (w *workerProc) logs() string {
	b, err := os.ReadFile(w.stderrPath)
	if err != nil {
		return fmt.Sprintf("(reading %s: %v)", w.stderrPath, err)
	}
	return string(b)
}

// tail is the last n lines of the process's stderr.
func (w *workerProc) tail(n int) string {
	lines := strings.Split(strings.TrimRight(w.logs(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return w.name + " stderr (last lines):\n" + strings.Join(lines, "\n")
}

// countLines counts the log lines containing s.
func (w *workerProc) countLines(s string) int {
	n := 0
	sc := bufio.NewScanner(strings.NewReader(w.logs()))
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		if strings.Contains(sc.Text(), s) {
			n++
		}
	}
	return n
}

// checkNoPanic fails the test if the worker's output shows a panic or a
// fatal runtime error.
func (r *rig) checkNoPanic(workers ...*workerProc) {
	r.t.Helper()
	for _, w := range workers {
		logs := w.logs()
		for _, bad := range []string{"panic:", "fatal error:", "goroutine 1 ["} {
			if strings.Contains(logs, bad) {
				r.t.Errorf("%s printed %q:\n%s", w.name, bad, w.tail(60))
				break
			}
		}
	}
}

// killTimes are the moments of every SIGKILL so far.
func (r *rig) killTimes() []time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Time(nil), r.kills...)
}

// publish publishes each submission to its subject, with Nats-Msg-Id
// <tenant>/<id> (poison without an id gets a made-up one, so that two of
// them are not taken for duplicates).
func (r *rig) publish(ctx context.Context, subs []submission) {
	r.t.Helper()
	for i, s := range subs {
		msgID := contract.MsgID(contract.DefaultTenant, s.id)
		if s.id == "" {
			msgID = fmt.Sprintf("chaos/poison/%d", i)
		}
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		ack, err := r.js.PublishMsg(pctx, &nats.Msg{Subject: s.subject, Data: s.body}, jetstream.WithMsgID(msgID))
		cancel()
		if err != nil {
			r.t.Fatalf("publish %s: %v", s.label(), err)
		}
		if ack.Duplicate {
			r.t.Fatalf("publish %s: JetStream took it for a duplicate", s.label())
		}
	}
}

// streamMsgs is the number of messages stream holds, asked of the server.
func (r *rig) streamMsgs(ctx context.Context, stream string) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	s, err := r.js.Stream(ctx, stream)
	if err != nil {
		return 0, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, err
	}
	return info.State.Msgs, nil
}

// waitResults waits until the results stream holds at least n messages.
// Errors (NATS restarting under the test) only mean "not yet".
func (r *rig) waitResults(n uint64, limit time.Duration) {
	r.t.Helper()
	waitFor(r.t, limit, fmt.Sprintf("%d results", n), func() (bool, error) {
		got, err := r.streamMsgs(context.Background(), contract.StreamResults)
		return err == nil && got >= n, nil
	})
}

// quiesce waits until every submission is acknowledged: the work-queue
// stream is empty and the road consumer has nothing pending or in flight.
// Results are published before their submission is acked, so after this
// no further result can appear.
func (r *rig) quiesce(limit time.Duration) {
	r.t.Helper()
	var last string
	waitFor(r.t, limit, "every submission to be acknowledged", func() (bool, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		msgs, err := r.streamMsgs(ctx, contract.StreamSubmit)
		if err != nil {
			return false, nil
		}
		c, err := r.js.Consumer(ctx, contract.StreamSubmit, r.consumer)
		if err != nil {
			return false, nil
		}
		info, err := c.Info(ctx)
		if err != nil {
			return false, nil
		}
		last = fmt.Sprintf("stream %d, pending %d, ack pending %d", msgs, info.NumPending, info.NumAckPending)
		return msgs == 0 && info.NumPending == 0 && info.NumAckPending == 0, nil
	}, func() string { return last })
}

// waitFor polls cond every 20 ms until it holds, fails the test when cond
// returns an error or limit passes. describe, if given, adds the last
// observed state to the timeout message.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() (bool, error), describe ...func() string) {
	t.Helper()
	deadline := time.Now().Add(limit)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, err := cond()
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			msg := fmt.Sprintf("timed out after %s waiting for %s", limit, what)
			for _, d := range describe {
				msg += " (" + d() + ")"
			}
			t.Fatal(msg)
		}
		<-tick.C
	}
}

// readAll reads every message of stream with an ordered consumer: as many
// as the stream held when asked, within limit.
func (r *rig) readAll(stream string, limit time.Duration) []jetstream.Msg {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	var want uint64
	var infoErr error
	waitFor(r.t, limit, "the size of "+stream, func() (bool, error) {
		want, infoErr = r.streamMsgs(ctx, stream)
		return infoErr == nil, nil
	}, func() string { return fmt.Sprint(infoErr) })
	out := make([]jetstream.Msg, 0, want)
	if want == 0 {
		return out
	}
	// Right after a node of a cluster is lost the stream may have no
	// leader for a while: making the consumer, a fetch or a batch then
	// fails (no responders, no response from the stream, no heartbeat,
	// cluster not available, …). Every error is asked again until limit;
	// only one that lasts fails the test, with its text.
	var cons jetstream.Consumer
	var lastErr error
	retry := func(err error) {
		lastErr = err
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
	for uint64(len(out)) < want {
		if ctx.Err() != nil {
			r.t.Fatalf("read %d of %d messages of %s within %s (last error: %v)", len(out), want, stream, limit, lastErr)
		}
		if cons == nil {
			c, err := r.js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy})
			if err != nil {
				retry(fmt.Errorf("ordered consumer: %w", err))
				continue
			}
			cons = c
		}
		batch, err := cons.Fetch(int(want)-len(out), jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			retry(fmt.Errorf("fetch: %w", err))
			continue
		}
		for m := range batch.Messages() {
			out = append(out, m)
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			retry(fmt.Errorf("fetch: %w", err))
		}
	}
	return out
}

// submission is one message a scenario publishes and what it expects of it.
type submission struct {
	id      string
	subject string
	body    []byte
	// docNumber is the house's transport document number, by which the
	// simulator's POSTs are matched to the id; "" when it has none.
	docNumber string
	// want is the status of its one result; "" means no result at all
	// (a message without a usable id or tenant).
	want contract.Status
	// dlqReason is the reason its dead letter must carry; "" means it
	// must not be dead-lettered.
	dlqReason string
	// note says what a poison message is, for failure messages.
	note string
}

func (s submission) label() string {
	switch {
	case s.note != "":
		return s.note
	case s.id != "":
		return s.id
	default:
		return "(no id)"
	}
}

// houses makes n road house consignments from the sample, each with its
// own id and transport document number so that Toll accepts them all.
func houses(t *testing.T, prefix string, n int) []submission {
	t.Helper()
	tmpl := houseTemplate(t)
	subject := contract.SubmitSubject(contract.KindRoad, contract.DefaultTenant)
	out := make([]submission, n)
	for i := range n {
		variant := fmt.Sprintf("%s-%05d", prefix, i)
		id := "chaos-" + variant
		doc := "HWB-" + strings.ToUpper(variant)
		out[i] = submission{
			id:        id,
			subject:   subject,
			body:      tmpl.render(t, id, doc, variant),
			docNumber: doc,
			want:      contract.StatusAccepted,
		}
	}
	return out
}

// foundMarker is in the note of a result accepted because the worker
// found the declaration at Toll after an answer was lost
// (handlers.Movement.lookup); such a result need not carry the requestId
// of the last POST.
const foundMarker = "answer to an attempt was lost"

// figures are a scenario's numbers, logged in one line.
type figures struct {
	messages     int
	kills        int
	lost         int // ids without a result
	duplicated   int // results beyond the first, summed over ids
	deadLettered int // DLQ entries
	resends      int // POSTs beyond the first for an id
	found        int // results accepted after finding the declaration at Toll
	unresolved   int // results unresolved: Toll may hold it, no lookup exists
	notSent      int // rejected on `after` without a Toll call
	// falseRejected counts results rejected although Toll accepted a
	// POST of the declaration; the goal is 0.
	falseRejected int
}

func (f figures) String() string {
	return fmt.Sprintf("messages=%d kills=%d lost=%d duplicated=%d dead-lettered=%d resends=%d found=%d unresolved=%d not-sent=%d false-rejected=%d",
		f.messages, f.kills, f.lost, f.duplicated, f.deadLettered, f.resends, f.found, f.unresolved, f.notSent, f.falseRejected)
}

// resendPolicy says whether a repeated POST for one document number is
// allowed: the worker may only re-send when it died during the call, so
// scenarios without kills pass noResends.
type resendPolicy int

const (
	noResends resendPolicy = iota
	// resendsAcrossKills allows a repeat when a SIGKILL fell between the
	// earlier POST and the repeat.
	resendsAcrossKills
	// resendsAllowed allows any repeat: Toll's answers are lost on
	// purpose, and a repeat is the only way to an answer where Toll
	// offers no lookup.
	resendsAllowed
)

// errorBudget caps how many violations of one kind are printed.
const errorBudget = 10

// check verifies the invariants for subs after the scenario quiesced and
// returns its figures. It reads the results and the DLQ in full.
func (r *rig) check(subs []submission, policy resendPolicy) figures {
	r.t.Helper()
	f := figures{messages: len(subs), kills: len(r.killTimes())}
	var violations []string
	report := func(kind, format string, args ...any) {
		violations = append(violations, kind+": "+fmt.Sprintf(format, args...))
	}

	// Invariant 1: exactly one result per id.
	results := map[string][]contract.Result{}
	resultMsgs := r.readAll(contract.StreamResults, 30*time.Second)
	for _, m := range resultMsgs {
		var res contract.Result
		if err := json.Unmarshal(m.Data(), &res); err != nil {
			report("unreadable result", "%v: %s", err, m.Data())
			continue
		}
		results[res.ID] = append(results[res.ID], res)
	}
	wantResults := 0
	byID := map[string]submission{}
	for _, s := range subs {
		if s.want == "" {
			continue
		}
		wantResults++
		byID[s.id] = s
		switch n := len(results[s.id]); {
		case n == 0:
			f.lost++
			report("lost", "%s has no result", s.label())
		case n > 1:
			f.duplicated += n - 1
			report("duplicated", "%s has %d results: %v", s.label(), n, statuses(results[s.id]))
		}
	}
	for id, rs := range results {
		if _, ok := byID[id]; !ok {
			report("unexpected result", "result(s) for id %q that no submission expects: %v", id, statuses(rs))
		}
	}
	if len(resultMsgs) != wantResults {
		report("results stream", "holds %d results for %d submissions that should have one", len(resultMsgs), wantResults)
	}

	// Invariant 2: the result follows the last POST; repeats only across
	// a kill, and a rejection only as the answer to such a repeat.
	posts := map[string][]simulator.Declaration{}
	for _, d := range r.sim.Stats().Declarations() {
		if d.Method == http.MethodPost {
			posts[d.DocumentNumber] = append(posts[d.DocumentNumber], d)
		}
	}
	kills := r.killTimes()
	for _, s := range subs {
		if s.dlqReason != "" {
			if n := len(posts[s.docNumber]); s.docNumber != "" && n > 0 {
				report("sent", "%s reached Toll %d times though it cannot be processed", s.label(), n)
			}
			continue
		}
		rs := results[s.id]
		if s.docNumber == "" || len(rs) == 0 {
			continue
		}
		res, ps := rs[len(rs)-1], posts[s.docNumber]
		if len(ps) == 0 && res.Status == contract.StatusRejected && len(res.Errors) > 0 && res.Errors[0].Path == "after" {
			// Not sent: what it follows in `after` was not accepted.
			f.notSent++
			continue
		}
		if len(ps) == 0 {
			report("no POST", "%s: Toll never received its declaration, yet the result is %s", s.label(), res.Status)
			continue
		}
		if extra := len(ps) - 1; extra > 0 {
			f.resends += extra
			for i := 1; i < len(ps); i++ {
				if policy == resendsAllowed || policy == resendsAcrossKills && killBetween(kills, ps[i-1].At, ps[i].At) {
					continue
				}
				report("re-sent", "%s: POST %d (requestId %s at %s) repeats POST %d (requestId %s at %s) with no worker killed between",
					s.label(), i+1, ps[i].RequestID, ps[i].At.Format("15:04:05.000"), i, ps[i-1].RequestID, ps[i-1].At.Format("15:04:05.000"))
			}
		}
		last := ps[len(ps)-1]
		// tollMRN is the MRN of the POST Toll accepted, "" if none.
		tollMRN := ""
		for _, p := range ps {
			if p.Status == simulator.StatusSuccess {
				tollMRN = p.MRN
			}
		}
		switch {
		case s.want == contract.StatusRejected:
			if res.Status != contract.StatusRejected || len(res.Errors) == 0 {
				report("status", "%s: %s %v, want rejected with errors", s.label(), res.Status, res.Errors)
			}
		case res.Status == contract.StatusAccepted:
			if !contract.ValidMRN(res.MRN) {
				report("status", "%s: accepted without a valid MRN (%q)", s.label(), res.MRN)
			}
			if res.MRN != tollMRN {
				report("wrong MRN", "%s: accepted with MRN %s, but Toll accepted %s under %q (POSTs: %s)",
					s.label(), res.MRN, s.docNumber, tollMRN, requestIDs(ps))
			}
			found := strings.Contains(res.Note, foundMarker)
			if found {
				f.found++
			}
			if res.RequestID != last.RequestID && !found {
				report("not the last POST", "%s: accepted with requestId %s, but Toll's last POST for %s was %s (POSTs: %s)",
					s.label(), res.RequestID, s.docNumber, last.RequestID, requestIDs(ps))
			}
		case res.Status == contract.StatusUnresolved:
			f.unresolved++
			if len(ps) < 2 || tollMRN == "" {
				report("unresolved", "%s: unresolved, but Toll received %d POST(s) and accepted %q (POSTs: %s)",
					s.label(), len(ps), tollMRN, requestIDs(ps))
			}
			if res.RequestID != last.RequestID || len(res.Errors) == 0 || res.Note == "" {
				report("unresolved", "%s: unresolved with requestId %s (last POST %s), errors %v, note %q: want the repeat's requestId, Toll's errors and a note",
					s.label(), res.RequestID, last.RequestID, res.Errors, res.Note)
			}
		case res.Status == contract.StatusRejected && tollMRN != "":
			f.falseRejected++
			report("false rejected", "%s: rejected (note %q, errors %v) though Toll accepted it as %s (POSTs: %s)",
				s.label(), res.Note, res.Errors, tollMRN, requestIDs(ps))
		default:
			report("status", "%s: %s (note %q, errors %v), want %s", s.label(), res.Status, res.Note, res.Errors, s.want)
		}
	}
	for _, s := range subs {
		if s.want != contract.StatusDeadLettered {
			continue
		}
		if rs := results[s.id]; len(rs) > 0 && rs[0].Status != contract.StatusDeadLettered {
			report("status", "%s: %s, want dead-lettered", s.label(), rs[0].Status)
		}
	}

	// Invariant 4: the DLQ holds exactly the poison, with its reason.
	dlq := r.readAll(contract.StreamDLQ, 30*time.Second)
	f.deadLettered = len(dlq)
	unmatched := map[int]bool{}
	for i, s := range subs {
		if s.dlqReason != "" {
			unmatched[i] = true
		}
	}
	for _, m := range dlq {
		reason := m.Headers().Get(contract.HeaderDLQReason)
		found := -1
		for i := range unmatched {
			if bytes.Equal(subs[i].body, m.Data()) && subs[i].subject == m.Headers().Get(contract.HeaderOriginalSubject) {
				found = i
				break
			}
		}
		if found < 0 {
			report("dead letter", "unexpected dead letter (reason %q, error %q) from %s: %.200s",
				reason, m.Headers().Get(contract.HeaderDLQError), m.Headers().Get(contract.HeaderOriginalSubject), m.Data())
			continue
		}
		delete(unmatched, found)
		if reason != subs[found].dlqReason {
			report("dead letter", "%s dead-lettered with reason %q, want %q", subs[found].label(), reason, subs[found].dlqReason)
		}
	}
	for i := range unmatched {
		report("dead letter", "%s is not in the DLQ", subs[i].label())
	}

	printed := map[string]int{}
	for _, v := range violations {
		kind := v[:strings.Index(v, ":")]
		printed[kind]++
		if printed[kind] <= errorBudget {
			r.t.Error(v)
		}
	}
	for kind, n := range printed {
		if n > errorBudget {
			r.t.Errorf("%s: %d more like these", kind, n-errorBudget)
		}
	}
	return f
}

// killBetween reports whether a kill fell between a POST at from and its
// repeat at to. The earlier POST may be stamped by the simulator a moment
// after the process that sent it was killed (its bytes were on their way),
// hence the slack.
func killBetween(kills []time.Time, from, to time.Time) bool {
	const slack = 2 * time.Second
	for _, k := range kills {
		if !k.Before(from.Add(-slack)) && !k.After(to) {
			return true
		}
	}
	return false
}

func statuses(rs []contract.Result) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = string(r.Status)
		if r.Note != "" {
			out[i] += " (" + r.Note + ")"
		}
	}
	return out
}

func requestIDs(ds []simulator.Declaration) string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.RequestID + "@" + d.At.Format("15:04:05.000") + "/" + d.Status
	}
	return strings.Join(out, ", ")
}

// dumpOnFailure prints the end of every worker's log if the test failed
// and copies the full logs out of the test's directory (which is removed)
// so that a violation can be traced to what the workers said. With
// DIGITOLL_CHAOS_LOGS=<dir> the logs of every test, passed or failed, are
// kept under <dir>/<test>.
func (r *rig) dumpOnFailure(workers func() []*workerProc) {
	r.t.Cleanup(func() {
		keepAll := os.Getenv("DIGITOLL_CHAOS_LOGS")
		if !r.t.Failed() && keepAll == "" {
			return
		}
		var keep string
		var err error
		if keepAll != "" {
			keep = filepath.Join(keepAll, strings.ReplaceAll(r.t.Name(), "/", "_"))
			err = os.MkdirAll(keep, 0o700)
		} else {
			keep, err = os.MkdirTemp("", "digitoll-chaos-logs-")
		}
		for _, w := range workers() {
			if w == nil {
				continue
			}
			if r.t.Failed() {
				r.t.Log(w.tail(30))
			}
			if err == nil {
				_ = os.WriteFile(filepath.Join(keep, w.name+".log"), []byte(w.logs()), 0o600)
			}
		}
		if err == nil {
			r.t.Logf("full worker logs: %s", keep)
		}
	})
}
