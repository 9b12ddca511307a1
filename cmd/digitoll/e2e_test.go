package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/digitoll/digitoll-worker/config"
	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/embednats"
	"github.com/digitoll/digitoll-worker/internal/buftest"
	"github.com/digitoll/digitoll-worker/internal/schematest"
	"github.com/digitoll/digitoll-worker/samples"
	"github.com/digitoll/digitoll-worker/simulator"
)

// The demo is the README's first command: it must print accepted results
// with MRNs for the transport, master and house, and a rejection for the
// deliberately broken house, and exit 0.
func TestDemoDeclaresTheSamples(t *testing.T) {
	env, out, errOut := testEnv(nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if code := run(ctx, env, []string{"demo", "--validation-delay", "200ms", "--timeout", "90s"}); code != 0 {
		t.Fatalf("demo exited %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	var accepted, rejected, routed, uploaded int
	for _, line := range strings.Split(out.String(), "\n") {
		switch {
		case strings.Contains(line, " accepted      document/default "):
			uploaded++
		case strings.Contains(line, " TO_ENTRY ") && strings.Contains(line, " routing/default "):
			routed++
		case strings.Contains(line, " accepted ") && strings.Contains(line, " MRN "):
			accepted++
		case strings.Contains(line, " rejected ") && strings.Contains(line, "documentIssueDate"):
			rejected++
		}
	}
	// Road: transport, master and house accepted, the broken house
	// rejected; air: flight, master and house accepted; entry: the road
	// transport presented under its MRN; document: the invoice uploaded.
	if accepted != 7 || rejected != 1 || uploaded != 1 {
		t.Errorf("accepted %d (want 7 with MRN), rejected %d (want 1 naming documentIssueDate), uploaded %d (want 1)\n%s", accepted, rejected, uploaded, out)
	}
	// Toll routes the accepted road and air transports and houses.
	if routed != 4 {
		t.Errorf("%d routing signals, want 4\n%s", routed, out)
	}
	for _, kind := range []string{"road/default", "air/default", "entry/default", "document/default"} {
		if !strings.Contains(out.String(), " accepted      "+kind) {
			t.Errorf("no accepted %s result:\n%s", kind, out)
		}
	}
	if !strings.Contains(out.String(), "All results are in.") {
		t.Errorf("demo did not finish:\n%s", out)
	}
}

// `digitoll run` configured exactly as for Toll's test environment, with
// the three URLs pointed at the simulator and NATS at a server of its own,
// answers every submission on digitoll.submit.road.default with exactly
// one result on digitoll.result.road.default.
func TestRunAnswersEverySubmissionOnce(t *testing.T) {
	f := startRun(t, nil)
	sim, js, errOut := f.sim, f.js, f.errOut
	ctx := t.Context()

	const n = 40
	bodies := houseVariants(t, n)
	bad := []byte(`{"id":"bad-date","operation":"create","level":"house-consignment","declaration":{"documentIssueDate":"yesterday"}}`)
	bodies["bad-date"] = bad
	for id, body := range bodies {
		if _, err := js.PublishMsg(ctx, &nats.Msg{Subject: contract.SubmitSubject(contract.KindRoad, contract.DefaultTenant), Data: body},
			jetstream.WithMsgID(contract.MsgID(contract.DefaultTenant, id))); err != nil {
			t.Fatal(err)
		}
	}

	results := map[string][]contract.Result{}
	cons, err := resultConsumer(ctx, js, contract.ResultSubject(contract.KindRoad, contract.DefaultTenant), jetstream.DeliverAllPolicy)
	if err != nil {
		t.Fatal(err)
	}
	followCtx, stop := context.WithTimeout(ctx, 60*time.Second)
	defer stop()
	resultSchema := schematest.Compile(t, schematest.Result)
	if err := eachResult(followCtx, cons, func(r contract.Result, raw []byte) bool {
		if err := schematest.Validate(resultSchema, raw); err != nil {
			t.Errorf("result of %s does not match docs/schemas/%s: %v", r.ID, schematest.Result, err)
		}
		results[r.ID] = append(results[r.ID], r)
		return len(results) < len(bodies)
	}); err != nil {
		t.Fatal(err)
	}
	if len(results) != len(bodies) {
		t.Fatalf("%d of %d ids have results\nworker log:\n%s", len(results), len(bodies), errOut)
	}
	for id, rs := range results {
		r := rs[0]
		switch {
		case id == "bad-date":
			if r.Status != contract.StatusRejected || len(r.Errors) == 0 {
				t.Errorf("%s: %+v, want rejected with errors", id, r)
			}
		case r.Status != contract.StatusAccepted || !contract.ValidMRN(r.MRN) || r.RequestID == "":
			t.Errorf("%s: %+v, want accepted with an MRN", id, r)
		}
		if r.Tenant != contract.DefaultTenant || r.Kind != contract.KindRoad {
			t.Errorf("%s: tenant %q kind %q", id, r.Tenant, r.Kind)
		}
		if id != "bad-date" && r.Metadata["variant"] != strings.TrimPrefix(id, "house-") {
			t.Errorf("%s: metadata not carried: %v", id, r.Metadata)
		}
	}
	// Exactly one each: the results stream holds one message per id.
	st, err := js.Stream(ctx, contract.StreamResults)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != uint64(len(bodies)) {
		t.Errorf("results stream holds %d messages for %d submissions", info.State.Msgs, len(bodies))
	}
	// And each was sent to Toll once: nothing retried, nothing repeated.
	if got := sim.Stats().Requests("POST /toll/api/movement/road/v2/house-consignment"); got != len(bodies) {
		t.Errorf("Toll saw %d house POSTs for %d submissions", got, len(bodies))
	}

	f.stop(t)
}

// runFixture is `digitoll run` in this process, configured exactly as for
// Toll's test environment with the three URLs pointed at a simulator, and
// NATS at a server of its own.
type runFixture struct {
	sim *simulator.Server
	// key is the integration's key the simulator knows (the worker uses
	// it unless extra settings name another).
	key    simulator.DemoKey
	srv    *embednats.Server
	js     jetstream.JetStream
	out    *buftest.Buffer
	errOut *buftest.Buffer
	cancel context.CancelFunc
	done   chan int
}

// startRun starts the fixture with extra settings and waits until the
// worker reports ready.
func startRun(t *testing.T, extra map[string]string) *runFixture {
	t.Helper()
	dir := t.TempDir()
	key, err := simulator.WriteDemoKey(dir, config.SimClientID)
	if err != nil {
		t.Fatal(err)
	}
	sim, err := simulator.Start(simulator.Config{
		ValidationDelay: 150 * time.Millisecond,
		Clients:         []simulator.Client{key.Client(splitList(simScopes)...)},
	}, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	srv, err := embednats.Start(embednats.Options{Dir: filepath.Join(dir, "nats"), Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)

	vars := map[string]string{
		"DIGITOLL_ENV":                    "test",
		"DIGITOLL_MASKINPORTEN_ISSUER":    sim.Issuer(),
		"DIGITOLL_MASKINPORTEN_TOKEN_URL": sim.TokenURL(),
		"DIGITOLL_TOLL_BASE_URL":          sim.TollBaseURL(),
		"DIGITOLL_CLIENT_ID":              key.ClientID,
		"DIGITOLL_KEY_FILE":               key.KeyFile,
		"DIGITOLL_CERT_FILE":              key.CertFile,
		"DIGITOLL_NATS_URL":               srv.ClientURL(),
		"DIGITOLL_CONCURRENCY":            "16",
		"DIGITOLL_HTTP_ADDR":              "127.0.0.1:0",
	}
	for k, v := range extra {
		vars[k] = v
	}
	env, out, errOut := testEnv(vars)
	ctx, cancel := context.WithCancel(context.Background())
	f := &runFixture{sim: sim, key: key, srv: srv, out: out, errOut: errOut, cancel: cancel, done: make(chan int, 1)}
	go func() { f.done <- run(ctx, env, []string{"run"}) }()
	t.Cleanup(func() {
		cancel()
		<-f.done
	})

	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	if f.js, err = jetstream.New(nc); err != nil {
		t.Fatal(err)
	}
	readyz := regexp.MustCompile(`readiness at (http://\S+/readyz)`)
	waitFor(t, 30*time.Second, "the worker to serve readiness", func() bool { return readyz.MatchString(out.String()) })
	readyURL := readyz.FindStringSubmatch(out.String())[1]
	waitFor(t, 30*time.Second, "the worker to be ready", func() bool {
		resp, err := http.Get(readyURL)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return f
}

// stop cancels run and expects a clean exit.
func (f *runFixture) stop(t *testing.T) {
	t.Helper()
	f.cancel()
	select {
	case code := <-f.done:
		f.done <- code // for the cleanup
		if code != 0 {
			t.Errorf("run exited %d on shutdown\n%s", code, f.errOut)
		}
	case <-time.After(45 * time.Second):
		t.Fatal("run did not stop after its context was cancelled")
	}
}

// publish sends a submission of kind with its contract Nats-Msg-Id.
func (f *runFixture) publish(t *testing.T, kind contract.Kind, id string, body []byte) {
	t.Helper()
	if _, err := f.js.PublishMsg(t.Context(), &nats.Msg{Subject: contract.SubmitSubject(kind, contract.DefaultTenant), Data: body},
		jetstream.WithMsgID(contract.MsgID(contract.DefaultTenant, id))); err != nil {
		t.Fatal(err)
	}
}

// results reads results until every id in want has one, or fails.
func (f *runFixture) results(t *testing.T, want int) map[string]contract.Result {
	t.Helper()
	cons, err := resultConsumer(t.Context(), f.js, "digitoll.result.>", jetstream.DeliverAllPolicy)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]contract.Result{}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	if err := eachResult(ctx, cons, func(r contract.Result, _ []byte) bool {
		got[r.ID] = r
		return len(got) < want
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) < want {
		t.Fatalf("%d of %d results arrived\nworker log:\n%s", len(got), want, f.errOut)
	}
	return got
}

// houseVariants makes n house consignments from the sample, each with its
// own id and document number so that Toll accepts them all.
func houseVariants(t *testing.T, n int) map[string][]byte {
	t.Helper()
	all, err := samples.Load(contract.KindRoad)
	if err != nil {
		t.Fatal(err)
	}
	var house []byte
	for _, s := range all {
		if s.Name == "03-house.json" {
			house = s.Body
		}
	}
	if house == nil {
		t.Fatal("sample 03-house.json is missing")
	}
	out := map[string][]byte{}
	for i := 0; i < n; i++ {
		var sub map[string]any
		if err := json.Unmarshal(house, &sub); err != nil {
			t.Fatal(err)
		}
		variant := fmt.Sprintf("%04d", i)
		id := "house-" + variant
		sub["id"] = id
		sub["metadata"] = map[string]string{"variant": variant}
		decl := sub["declaration"].(map[string]any)
		chl := decl["consignmentHouseLevel"].(map[string]any)
		chl["transportDocumentHouseLevel"].(map[string]any)["documentNumber"] = "HWB-E2E-" + variant
		b, err := json.Marshal(sub)
		if err != nil {
			t.Fatal(err)
		}
		out[id] = b
	}
	return out
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", limit, what)
		}
		<-tick.C
	}
}
