package app

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/digitoll/digitoll-worker/config"
	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/handlers"
	"github.com/digitoll/digitoll-worker/internal/buftest"
	"github.com/digitoll/digitoll-worker/internal/natstest"
	"github.com/digitoll/digitoll-worker/samples"
	"github.com/digitoll/digitoll-worker/simulator"
)

// manyTenants is how many tenants TestManyTenants serves, each with a key
// of its own.
const manyTenants = 50

const roadScope = "toll:movement/road/v2"

// tenantsFixture is the simulator, an embedded NATS server and a tenants
// file whose tenants each have their own key, registered in the simulator.
type tenantsFixture struct {
	// logs holds the services' log, as text lines.
	logs buftest.Buffer
	dir  string
	file string
	sim  *simulator.Server
	js   jetstream.JetStream
	// lines are the tenants file's entries so far.
	lines []string
}

func newTenantsFixture(t *testing.T) *tenantsFixture {
	t.Helper()
	dir := t.TempDir()
	sim, err := simulator.Start(simulator.Config{ValidationDelay: 20 * time.Millisecond}, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	_, js := natstest.Start(t, filepath.Join(dir, "nats"))
	return &tenantsFixture{dir: dir, file: filepath.Join(dir, "tenants.yaml"), sim: sim, js: js}
}

// clientID is the integration id of tenant name.
func clientID(name string) string { return "client-" + name }

// addTenant makes name's key, registers its integration in the simulator
// with scopes, and lists it in the file (kid mode for even i, x5c for odd).
func (f *tenantsFixture) addTenant(t *testing.T, i int, name string, kinds string, scopes ...string) {
	t.Helper()
	key, err := simulator.WriteDemoKey(filepath.Join(f.dir, "keys"), clientID(name))
	if err != nil {
		t.Fatal(err)
	}
	f.sim.AddClient(key.Client(scopes...))
	signing := fmt.Sprintf("keyFile: keys/%s\n    keyId: %s", filepath.Base(key.KeyFile), key.KeyID)
	if i%2 == 1 {
		signing = fmt.Sprintf("keyFile: keys/%s\n    certFile: keys/%s", filepath.Base(key.KeyFile), filepath.Base(key.CertFile))
	}
	f.lines = append(f.lines, fmt.Sprintf("  - name: %s\n    organisationNumber: \"%09d\"\n    clientId: %s\n    %s\n    kinds: [%s]\n",
		name, 100000000+i, clientID(name), signing, kinds))
}

// write writes the file atomically, as an operator's deployment would.
func (f *tenantsFixture) write(t *testing.T) {
	t.Helper()
	tmp := f.file + ".tmp"
	if err := os.WriteFile(tmp, []byte("tenants:\n"+strings.Join(f.lines, "")), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, f.file); err != nil {
		t.Fatal(err)
	}
}

// start runs the services of the tenants file until the test ends; extra
// are settings (name, value, name, value…) on top of the fixture's.
func (f *tenantsFixture) start(t *testing.T, extra ...string) *Services {
	t.Helper()
	vars := f.vars("32")
	vars["DIGITOLL_TENANTS_FILE"] = f.file
	for i := 0; i+1 < len(extra); i += 2 {
		vars[extra[i]] = extra[i+1]
	}
	svc := f.services(t, vars)
	svc.tenants.reload = 50 * time.Millisecond
	f.run(t, svc)
	return svc
}

// vars are the settings every fixture's services start from: the
// simulator's endpoints, no routing, and concurrency.
func (f *tenantsFixture) vars(concurrency string) map[string]string {
	return map[string]string{
		"DIGITOLL_ENV":                    "test",
		"DIGITOLL_MASKINPORTEN_ISSUER":    f.sim.Issuer(),
		"DIGITOLL_MASKINPORTEN_TOKEN_URL": f.sim.TokenURL(),
		"DIGITOLL_MASKINPORTEN_DISCOVERY": "false",
		"DIGITOLL_TOLL_BASE_URL":          f.sim.TollBaseURL(),
		"DIGITOLL_NATS_URL":               "nats://127.0.0.1:1",
		"DIGITOLL_CONCURRENCY":            concurrency,
		"DIGITOLL_ROUTING":                "off",
	}
}

// services builds the services vars configure, on the fixture's NATS,
// logging into f.logs.
func (f *tenantsFixture) services(t *testing.T, vars map[string]string) *Services {
	t.Helper()
	cfg, err := config.Load(flag.NewFlagSet("test", flag.ContinueOnError), nil, func(k string) string { return vars[k] })
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := EnsureStreams(t.Context(), f.js, cfg.NATS); err != nil {
		t.Fatal(err)
	}
	svc, err := newServices(t.Context(), cfg, f.js, Telemetry{}, slog.New(slog.NewTextHandler(&f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// tenancy builds the tenants of the fixture's file, with the simulator's
// endpoints and extra settings.
func (f *tenantsFixture) tenancy(t *testing.T, extra map[string]string) *tenancy {
	t.Helper()
	vars := map[string]string{
		"DIGITOLL_ENV": "test", "DIGITOLL_TENANTS_FILE": f.file, "DIGITOLL_NATS_URL": "nats://127.0.0.1:1",
		"DIGITOLL_MASKINPORTEN_ISSUER": f.sim.Issuer(), "DIGITOLL_TOLL_BASE_URL": f.sim.TollBaseURL(),
	}
	maps.Copy(vars, extra)
	cfg, err := config.Load(flag.NewFlagSet("test", flag.ContinueOnError), nil, func(k string) string { return vars[k] })
	if err != nil {
		t.Fatal(err)
	}
	ty, err := newTenancy(cfg, f.js, HTTPClient(cfg.Worker), nil, Telemetry{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return ty
}

// run runs svc until the test ends, and fails the test if it does not
// stop cleanly.
func (f *tenantsFixture) run(t *testing.T, svc *Services) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("services: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("services did not stop")
		}
	})
}

// lines returns the lines written so far.

// house is the sample road house consignment made unique by tenant and n.
func house(t *testing.T, tenant string, n int) (id string, body []byte) {
	t.Helper()
	all, err := samples.Load(contract.KindRoad)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range all {
		if s.Name != "03-house.json" {
			continue
		}
		var sub map[string]any
		if err := json.Unmarshal(s.Body, &sub); err != nil {
			t.Fatal(err)
		}
		id = fmt.Sprintf("house-%s-%d", tenant, n)
		sub["id"] = id
		chl := sub["declaration"].(map[string]any)["consignmentHouseLevel"].(map[string]any)
		chl["transportDocumentHouseLevel"].(map[string]any)["documentNumber"] = fmt.Sprintf("HWB-%s-%d", tenant, n)
		body, err := json.Marshal(sub)
		if err != nil {
			t.Fatal(err)
		}
		return id, body
	}
	t.Fatal("sample 03-house.json is missing")
	return "", nil
}

// publish sends tenant's n-th house consignment as kind and returns its id.
func (f *tenantsFixture) publish(t *testing.T, kind contract.Kind, tenant string, n int) string {
	t.Helper()
	id, body := house(t, tenant, n)
	if _, err := f.js.PublishMsg(t.Context(), &nats.Msg{Subject: contract.SubmitSubject(kind, tenant), Data: body},
		jetstream.WithMsgID(contract.MsgID(tenant, id))); err != nil {
		t.Fatal(err)
	}
	return id
}

// collector gathers the results, by tenant/id, as they arrive.
type collector struct {
	mu  sync.Mutex
	got map[string]contract.Result
}

func (f *tenantsFixture) collect(t *testing.T) *collector {
	t.Helper()
	c := &collector{got: map[string]contract.Result{}}
	cons, err := f.js.OrderedConsumer(t.Context(), contract.StreamResults, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		var r contract.Result
		if err := json.Unmarshal(m.Data(), &r); err != nil {
			t.Errorf("unreadable result: %v", err)
			return
		}
		c.mu.Lock()
		c.got[r.Tenant+"/"+r.ID] = r
		c.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cc.Stop)
	return c
}

// wait waits until every key has a result and returns them.
func (c *collector) wait(t *testing.T, keys ...string) map[string]contract.Result {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		c.mu.Lock()
		missing := 0
		out := map[string]contract.Result{}
		for _, k := range keys {
			if r, ok := c.got[k]; ok {
				out[k] = r
			} else {
				missing++
			}
		}
		c.mu.Unlock()
		if missing == 0 {
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d results missing", missing, len(keys))
		}
		<-tick.C
	}
}

// dlqReason reads the reason of the dead letter on subject.
func (f *tenantsFixture) dlqReason(t *testing.T, subject string) string {
	t.Helper()
	stream, err := f.js.Stream(t.Context(), contract.StreamDLQ)
	if err != nil {
		t.Fatal(err)
	}
	m, err := stream.GetLastMsgForSubject(t.Context(), subject)
	if err != nil {
		t.Fatalf("no dead letter on %s: %v", subject, err)
	}
	return m.Header.Get(contract.HeaderDLQReason)
}

// Every tenant's messages are carried out with its own integration and
// key; a tenant added to the file is served without a restart; a tenant
// that is not configured, or a kind a tenant may not use, dead-letters
// with reason "unsupported".
func TestManyTenants(t *testing.T) {
	f := newTenantsFixture(t)
	var names []string
	for i := range manyTenants {
		name := fmt.Sprintf("tenant-%02d", i)
		names = append(names, name)
		f.addTenant(t, i, name, "road", roadScope)
	}
	f.addTenant(t, manyTenants, "air-only", "air", "toll:movement/air")
	f.write(t)
	f.start(t)
	results := f.collect(t)

	const each = 3
	var keys []string
	for _, name := range names {
		for n := range each {
			keys = append(keys, name+"/"+f.publish(t, contract.KindRoad, name, n))
		}
	}
	for k, r := range results.wait(t, keys...) {
		if r.Status != contract.StatusAccepted {
			t.Errorf("%s: %s (%s %v)", k, r.Status, r.Note, r.Errors)
		}
	}
	st := f.sim.Stats()
	for _, name := range names {
		if g := st.Grants(clientID(name), roadScope); g != 1 {
			t.Errorf("tenant %s: %d grants signed as %s for %s, want 1", name, g, clientID(name), roadScope)
		}
	}

	// Not configured, and a kind the tenant may not use.
	unknown := "nobody/" + f.publish(t, contract.KindRoad, "nobody", 0)
	notAllowed := "air-only/" + f.publish(t, contract.KindRoad, "air-only", 0)
	for k, r := range results.wait(t, unknown, notAllowed) {
		if r.Status != contract.StatusDeadLettered {
			t.Errorf("%s: %s, want dead-lettered", k, r.Status)
		}
	}
	for _, subject := range []string{contract.DLQSubject(contract.KindRoad, "nobody"), contract.DLQSubject(contract.KindRoad, "air-only")} {
		if reason := f.dlqReason(t, subject); reason != "unsupported" {
			t.Errorf("%s: reason %q, want unsupported", subject, reason)
		}
	}

	// A tenant added at run time.
	f.addTenant(t, manyTenants+1, "newcomer", "road", roadScope)
	f.write(t)
	deadline := time.Now().Add(30 * time.Second)
	var r contract.Result
	for n := 0; ; n++ {
		if time.Now().After(deadline) {
			t.Fatalf("the added tenant's messages are still refused: %s %s", r.Status, r.Note)
		}
		// Until the reload, its messages dead-letter: publish anew until
		// one is accepted.
		key := "newcomer/" + f.publish(t, contract.KindRoad, "newcomer", n)
		r = results.wait(t, key)[key]
		if r.Status == contract.StatusAccepted {
			break
		}
	}
	if g := f.sim.Stats().Grants(clientID("newcomer"), roadScope); g != 1 {
		t.Errorf("newcomer: %d grants, want 1", g)
	}

	// Every line about a tenant's message, token or Toll call names the
	// tenant, once.
	named := 0
	for _, line := range f.logs.Lines() {
		if n := strings.Count(line, " tenant="); n > 1 {
			t.Errorf("a log line names its tenant %d times: %s", n, line)
		}
		for _, msg := range []string{`msg="toll call"`, `msg="toll token fetched"`, `msg="result published"`, `msg="sending declaration"`} {
			if strings.Contains(line, msg) {
				named++
				if !strings.Contains(line, " tenant=tenant-") && !strings.Contains(line, " tenant=newcomer") {
					t.Errorf("a log line about a tenant's work does not name it: %s", line)
				}
			}
		}
	}
	if named == 0 {
		t.Error("no log line about the tenants' work")
	}
}

// probeHandler is a handler whose probe answers err.
type probeHandler struct{ err error }

func (p probeHandler) Handle(context.Context, handlers.Request) (handlers.Outcome, error) {
	return handlers.Outcome{Status: contract.StatusAccepted}, nil
}

func (p probeHandler) Probe(context.Context) error { return p.err }

// A tenant's lane is probed with that tenant's handler only; a tenant not
// served, or no longer allowed the kind, has nothing to probe and passes,
// so that its lane resumes and dead-letters what it holds.
func TestByTenantProbeTenant(t *testing.T) {
	refused := errors.New("scope not granted")
	tab := &tenantTable{byName: map[string]*tenant{
		"ok":      {handlers: map[contract.Kind]kindHandler{contract.KindRoad: probeHandler{nil}}},
		"refused": {handlers: map[contract.Kind]kindHandler{contract.KindRoad: probeHandler{refused}}},
		"air":     {handlers: map[contract.Kind]kindHandler{contract.KindAir: probeHandler{refused}}},
	}, names: []string{"ok", "refused", "air"}}
	var p atomic.Pointer[tenantTable]
	p.Store(tab)
	b := &byTenant{kind: contract.KindRoad, table: &p}
	for tenant, want := range map[string]error{"ok": nil, "refused": refused, "air": nil, "ghost": nil} {
		if err := b.ProbeTenant(t.Context(), tenant); !errors.Is(err, want) || (want == nil && err != nil) {
			t.Errorf("ProbeTenant(%s) = %v, want %v", tenant, err, want)
		}
	}
}

// Reloading rebuilds only the tenants whose entry or key changed, keeps
// the others' services (and tokens), and leaves everything in place when
// the new file does not validate.
func TestTenancyReload(t *testing.T) {
	f := newTenantsFixture(t)
	f.addTenant(t, 0, "acme", "road", roadScope)
	f.write(t)
	ty := f.tenancy(t, nil)
	acme := ty.table.Load().byName["acme"]
	if changed, err := ty.Reload(); changed || err != nil {
		t.Fatalf("unchanged file: Reload() = %v, %v", changed, err)
	}

	// A broken file: reported once, the tenants stay.
	good := f.lines
	f.lines = append(f.lines, "  - name: Bad_Name\n")
	f.write(t)
	if _, err := ty.Reload(); err == nil || !strings.Contains(err.Error(), "Bad_Name") {
		t.Errorf("broken file: Reload() error %v", err)
	}
	if _, err := ty.Reload(); err != nil {
		t.Errorf("the same broken file reported again: %v", err)
	}
	if ty.table.Load().byName["acme"] != acme {
		t.Fatal("a broken file replaced the tenants")
	}

	// A tenant added: acme's services are kept.
	f.lines = good
	f.addTenant(t, 1, "beta", "road", roadScope)
	f.write(t)
	if changed, err := ty.Reload(); !changed || err != nil {
		t.Fatalf("tenant added: Reload() = %v, %v", changed, err)
	}
	tab := ty.table.Load()
	if tab.byName["acme"] != acme || tab.byName["beta"] == nil {
		t.Fatalf("after adding beta: acme kept %v, beta present %v", tab.byName["acme"] == acme, tab.byName["beta"] != nil)
	}
	beta := tab.byName["beta"]

	// acme's key replaced in place: acme is rebuilt, beta kept.
	if err := os.Remove(acme.cfg.KeyFile); err != nil {
		t.Fatal(err)
	}
	if _, err := simulator.WriteDemoKey(filepath.Dir(acme.cfg.KeyFile), clientID("acme")); err != nil {
		t.Fatal(err)
	}
	if changed, err := ty.Reload(); !changed || err != nil {
		t.Fatalf("key replaced: Reload() = %v, %v", changed, err)
	}
	tab = ty.table.Load()
	if tab.byName["acme"] == acme || tab.byName["beta"] != beta {
		t.Errorf("after acme's new key: acme rebuilt %v, beta kept %v", tab.byName["acme"] != acme, tab.byName["beta"] == beta)
	}

	// What validation polling learned is Toll's: every tenant's handlers,
	// the one rebuilt too, share the process's pacer.
	for _, name := range []string{"acme", "beta"} {
		m, ok := tab.byName[name].handlers[contract.KindRoad].(*handlers.Movement)
		if !ok || ty.pacer == nil || m.Poll.Pacer != ty.pacer {
			t.Errorf("%s's road handler: a movement handler %v, pacing with the tenancy's pacer %v", name, ok, ok && ty.pacer != nil && m.Poll.Pacer == ty.pacer)
		}
	}
}

// A tenant that starts using a kind no tenant used when the worker started
// is served after the reload, without a restart.
func TestTenantStartsUsingAKind(t *testing.T) {
	f := newTenantsFixture(t)
	f.addTenant(t, 0, "acme", "road", roadScope, "toll:movement/air")
	f.write(t)
	f.start(t)
	results := f.collect(t)

	all, err := samples.Load(contract.KindAir)
	if err != nil {
		t.Fatal(err)
	}
	var flight map[string]any
	for _, s := range all {
		if s.Name == "01-flight.json" {
			if err := json.Unmarshal(s.Body, &flight); err != nil {
				t.Fatal(err)
			}
		}
	}
	if flight == nil {
		t.Fatal("sample air/01-flight.json is missing")
	}
	publishFlight := func(n int) string {
		id := fmt.Sprintf("flight-%d", n)
		flight["id"] = id
		body, err := json.Marshal(flight)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.js.PublishMsg(t.Context(), &nats.Msg{Subject: contract.SubmitSubject(contract.KindAir, "acme"), Data: body},
			jetstream.WithMsgID(contract.MsgID("acme", id))); err != nil {
			t.Fatal(err)
		}
		return "acme/" + id
	}

	// Not yet one of its kinds: dead-lettered.
	first := publishFlight(0)
	if r := results.wait(t, first)[first]; r.Status != contract.StatusDeadLettered {
		t.Fatalf("air before the tenant may use it: %s, want dead-lettered", r.Status)
	}

	f.lines[0] = strings.Replace(f.lines[0], "kinds: [road]", "kinds: [road, air]", 1)
	f.write(t)
	deadline := time.Now().Add(30 * time.Second)
	for n := 1; ; n++ {
		key := publishFlight(n)
		r := results.wait(t, key)[key]
		if r.Status == contract.StatusAccepted {
			break
		}
		if r.Status != contract.StatusDeadLettered || time.Now().After(deadline) {
			t.Fatalf("air after the reload: %s (%s %v), want accepted", r.Status, r.Note, r.Errors)
		}
	}
}

// DIGITOLL_VALIDATION_POLLING decides whether the handlers pace their
// validation polling: adaptive (the default) gives them a pacer, fixed
// none.
func TestValidationPollingSetting(t *testing.T) {
	f := newTenantsFixture(t)
	f.addTenant(t, 0, "acme", "road", roadScope)
	f.write(t)
	for _, tc := range []struct {
		setting string
		paced   bool
	}{{"", true}, {"adaptive", true}, {"fixed", false}} {
		t.Run("polling "+tc.setting, func(t *testing.T) {
			ty := f.tenancy(t, map[string]string{"DIGITOLL_VALIDATION_POLLING": tc.setting})
			m, ok := ty.table.Load().byName["acme"].handlers[contract.KindRoad].(*handlers.Movement)
			if !ok {
				t.Fatal("acme's road handler is not a movement handler")
			}
			if paced := m.Poll.Pacer != nil; paced != tc.paced {
				t.Errorf("the road handler paces its polling: %v, want %v", paced, tc.paced)
			}
		})
	}
}
