package routing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/failure"
	"github.com/digitoll/digitoll-worker/simulator"
	"github.com/digitoll/digitoll-worker/toll"
)

func TestResumeFrom(t *testing.T) {
	tests := []struct {
		name       string
		marker     string
		last       *published
		want       string
		fromStream bool
	}{
		{"nothing yet", "", nil, "", false},
		{"marker, stream empty (aged out)", "m3", nil, "m3", false},
		{"marker is the last message", "m3", &published{id: "m3", after: "m0"}, "m3", false},
		{"crash before the first marker", "", &published{id: "m2"}, "m2", true},
		{"crash before a later marker", "m3", &published{id: "m5", after: "m3"}, "m5", true},
		{"marker lost, stream knows", "", &published{id: "m5", after: "m3"}, "m5", true},
		{"last message older than the marker", "m9", &published{id: "m5", after: "m3"}, "m9", false},
		{"first-page message, marker further", "m9", &published{id: "m2"}, "m9", false},
		{"message without routing headers", "m3", &published{}, "m3", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, fromStream := resumeFrom(tc.marker, tc.last)
			if got != tc.want || fromStream != tc.fromStream {
				t.Errorf("resumeFrom(%q, %+v) = %q, %v; want %q, %v", tc.marker, tc.last, got, fromStream, tc.want, tc.fromStream)
			}
		})
	}
}

func TestPublishesEveryPageInOrder(t *testing.T) {
	e := newEnv(t)
	c := e.client(t, "acme-client", scopeEntry)
	e.addSignals(t, "acme-client", house, 10)
	want := feedSignals(t, c, house)
	if len(want) != 10 {
		t.Fatalf("feed holds %d signals, want 10", len(want))
	}
	before := e.sim.Stats().Requests(simulator.RouteRoutingHouseConsignment)

	r := start(t, e.poller("acme", c))
	waitFor(t, "the marker of the last signal", func() bool { return e.marker(t, "acme", house) == want[9].ID })
	r.stop(t)

	checkExactlyOnce(t, "acme", e.messages(t, contract.RoutingSubject(house, "acme")), want)
	if got := e.sim.Stats().Requests(simulator.RouteRoutingHouseConsignment) - before; got < 4 {
		t.Errorf("%d feed requests, want at least 4 for pages of 3, 3, 3 and 1", got)
	}
	if msgs := e.messages(t, contract.RoutingSubject(transport, "acme")); len(msgs) != 0 {
		t.Errorf("transport subject holds %d messages of an empty feed", len(msgs))
	}
}

// A poller stopped after its first page and a new one started after more
// signals arrived publish every signal exactly once between them.
func TestRestartInTheMiddleOfAFeed(t *testing.T) {
	e := newEnv(t)
	c := e.client(t, "acme-client", scopeEntry)
	e.addSignals(t, "acme-client", house, 10)

	ctx, cancel := context.WithCancel(context.Background())
	first := e.poller("acme", c, house)
	first.hooks.saved = func(contract.Feed, string) { cancel() }
	startCtx(t, ctx, cancel, first).waitDone(t)

	before := feedSignals(t, c, house)
	if got := e.marker(t, "acme", house); got != before[pageSize-1].ID {
		t.Fatalf("after the first page the marker is %q, want %q", got, before[pageSize-1].ID)
	}
	if n := len(e.messages(t, contract.RoutingSubject(house, "acme"))); n != pageSize {
		t.Fatalf("after the first page the stream holds %d messages, want %d", n, pageSize)
	}

	e.addSignals(t, "acme-client", house, 5)
	want := feedSignals(t, c, house)
	second := e.poller("acme", c, house)
	dups := countDuplicates(second)
	r := start(t, second)
	waitFor(t, "the marker of the last signal", func() bool { return e.marker(t, "acme", house) == want[len(want)-1].ID })
	r.stop(t)

	checkExactlyOnce(t, "acme", e.messages(t, contract.RoutingSubject(house, "acme")), want)
	if n := dups(); n != 0 {
		t.Errorf("the second poller published %d signals again (dropped as duplicates)", n)
	}
}

var errCrash = errors.New("simulated crash")

// crash installs hooks on p that cancel its run at some point of a page.
type crash func(p *Poller, cancel context.CancelFunc)

// crashBeforeSave crashes p once it has published its page-th page, before
// it saves the marker.
func crashBeforeSave(page int) crash {
	return func(p *Poller, cancel context.CancelFunc) {
		pages := 0
		p.hooks.beforeSave = func(contract.Feed, string) error {
			if pages++; pages == page {
				cancel()
				return errCrash
			}
			return nil
		}
	}
}

// crashAfterPublish crashes p once it has published n signals, so that
// the next publish fails.
func crashAfterPublish(n int) crash {
	return func(p *Poller, cancel context.CancelFunc) {
		published := 0
		p.hooks.published = func(contract.Feed, string, *jetstream.PubAck) {
			if published++; published == n {
				cancel()
			}
		}
	}
}

// A crash after signals were published but before the marker was saved
// loses nothing and repeats nothing on restart, without relying on the
// stream's duplicate window: the restarted poller must not publish any
// signal again, so no PubAck may say Duplicate.
func TestCrashBeforeTheMarkerIsSaved(t *testing.T) {
	tests := []struct {
		name  string
		crash crash
		// marker is how many signals the saved marker covers, stream how
		// many are in the stream at least, after the crash.
		marker, stream int
	}{
		{"after the first page", crashBeforeSave(1), 0, 3},
		{"after the second page", crashBeforeSave(2), 3, 6},
		{"in the middle of the third page", crashAfterPublish(7), 6, 7},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			c := e.client(t, "acme-client", scopeEntry)
			e.addSignals(t, "acme-client", house, 10)
			all := feedSignals(t, c, house)
			subject := contract.RoutingSubject(house, "acme")

			ctx, cancel := context.WithCancel(context.Background())
			first := e.poller("acme", c, house)
			tc.crash(first, cancel)
			startCtx(t, ctx, cancel, first).waitDone(t)

			wantMarker := ""
			if tc.marker > 0 {
				wantMarker = all[tc.marker-1].ID
			}
			if got := e.marker(t, "acme", house); got != wantMarker {
				t.Fatalf("after the crash the marker is %q, want %q", got, wantMarker)
			}
			if n := len(e.messages(t, subject)); n < tc.stream {
				t.Fatalf("after the crash the stream holds %d messages, want at least %d", n, tc.stream)
			}

			e.addSignals(t, "acme-client", house, 2)
			all = feedSignals(t, c, house)
			second := e.poller("acme", c, house)
			dups := countDuplicates(second)
			r := start(t, second)
			waitFor(t, "the marker of the last signal", func() bool { return e.marker(t, "acme", house) == all[len(all)-1].ID })
			r.stop(t)

			checkExactlyOnce(t, "acme", e.messages(t, subject), all)
			if n := dups(); n != 0 {
				t.Errorf("the restarted poller published %d signals again (dropped as duplicates)", n)
			}
			if !strings.Contains(e.logs.String(), "published after the saved marker") {
				t.Error("no log line says the poller resumed after signals the marker did not cover")
			}
		})
	}
}

// A poller that resumes after signals the marker did not cover and
// crashes again before its first page is saved still leaves records from
// which the next one finds its place.
func TestRepeatedCrashes(t *testing.T) {
	e := newEnv(t)
	c := e.client(t, "acme-client", scopeEntry)
	e.addSignals(t, "acme-client", house, 10)
	all := feedSignals(t, c, house)
	subject := contract.RoutingSubject(house, "acme")

	// The first saves page 1 and publishes page 2; the second resumes
	// after page 2 and publishes one signal of page 3.
	dupTotal := 0
	for i, crash := range []crash{crashBeforeSave(2), crashAfterPublish(1)} {
		ctx, cancel := context.WithCancel(context.Background())
		p := e.poller("acme", c, house)
		crash(p, cancel)
		dups := countDuplicates(p)
		startCtx(t, ctx, cancel, p).waitDone(t)
		dupTotal += dups()
		if n, want := len(e.messages(t, subject)), 6+i; n < want {
			t.Fatalf("after crash %d the stream holds %d messages, want at least %d", i+1, n, want)
		}
	}
	last := e.poller("acme", c, house)
	dups := countDuplicates(last)
	r := start(t, last)
	waitFor(t, "the marker of the last signal", func() bool { return e.marker(t, "acme", house) == all[len(all)-1].ID })
	r.stop(t)

	checkExactlyOnce(t, "acme", e.messages(t, subject), all)
	if n := dupTotal + dups(); n != 0 {
		t.Errorf("%d signals were published again (dropped as duplicates)", n)
	}
}

// countDuplicates makes p count PubAcks that report a duplicate, after
// calling the published hook p already has.
func countDuplicates(p *Poller) func() int {
	var mu sync.Mutex
	n := 0
	prev := p.hooks.published
	p.hooks.published = func(feed contract.Feed, id string, ack *jetstream.PubAck) {
		if prev != nil {
			prev(feed, id, ack)
		}
		if ack.Duplicate {
			mu.Lock()
			n++
			mu.Unlock()
		}
	}
	return func() int {
		mu.Lock()
		defer mu.Unlock()
		return n
	}
}

func TestTenantsHaveTheirOwnFeeds(t *testing.T) {
	e := newEnv(t)
	acme := e.client(t, "acme-client", scopeEntry)
	globex := e.client(t, "globex-client", scopeEntry)
	e.addSignals(t, "acme-client", house, 4)
	e.addSignals(t, "acme-client", transport, 1)
	e.addSignals(t, "globex-client", house, 2)
	want := map[string]map[contract.Feed][]toll.RoutingSignal{
		"acme":   {house: feedSignals(t, acme, house), transport: feedSignals(t, acme, transport)},
		"globex": {house: feedSignals(t, globex, house), transport: nil},
	}

	ra := start(t, e.poller("acme", acme))
	rg := start(t, e.poller("globex", globex))
	for tenant, feeds := range want {
		for feed, signals := range feeds {
			if len(signals) == 0 {
				continue
			}
			waitFor(t, tenant+" "+string(feed)+" to catch up", func() bool {
				return e.marker(t, tenant, feed) == signals[len(signals)-1].ID
			})
		}
	}
	ra.stop(t)
	rg.stop(t)

	for tenant, feeds := range want {
		for feed, signals := range feeds {
			t.Run(tenant+"/"+string(feed), func(t *testing.T) {
				checkExactlyOnce(t, tenant, e.messages(t, contract.RoutingSubject(feed, tenant)), signals)
			})
		}
	}
}

// A Toll that answers only 503 for a while holds the poller up, and
// nothing is lost or repeated once it recovers.
func TestTransientFailuresLoseNothing(t *testing.T) {
	e := newEnv(t)
	c := e.client(t, "acme-client", scopeEntry)
	e.addSignals(t, "acme-client", house, 7)
	want := feedSignals(t, c, house)

	e.sim.SetFaults(simulator.Faults{ErrorRate: 1})
	p := e.poller("acme", c, house)
	obs := &pollObserver{}
	p.Observer = obs
	r := start(t, p)
	waitFor(t, "the poller to retry through 503s", func() bool {
		return e.sim.Stats().Requests(simulator.RouteRoutingHouseConsignment) >= 5
	})
	if n := len(e.messages(t, contract.RoutingSubject(house, "acme"))); n != 0 {
		t.Fatalf("%d messages published while Toll answered only 503", n)
	}
	e.sim.SetFaults(simulator.Faults{})
	waitFor(t, "the marker of the last signal", func() bool { return e.marker(t, "acme", house) == want[len(want)-1].ID })
	r.stop(t)

	checkExactlyOnce(t, "acme", e.messages(t, contract.RoutingSubject(house, "acme")), want)
	if !strings.Contains(e.logs.String(), "transient failure, retrying") {
		t.Error("no log line for the transient failures")
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if obs.failures == 0 || obs.signals != len(want) || !obs.caughtUp {
		t.Errorf("observer heard of %d failures, %d signals, caught up %v; want failures, %d signals, caught up",
			obs.failures, obs.signals, obs.caughtUp, len(want))
	}
}

// pollObserver adds up what a poller reports about feed acme/house.
type pollObserver struct {
	mu       sync.Mutex
	failures int
	signals  int
	caughtUp bool
}

func (o *pollObserver) Polled(tenant string, feed contract.Feed, signals int, caughtUp bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if tenant == "acme" && feed == house {
		o.signals += signals
		o.caughtUp = o.caughtUp || caughtUp
	}
}

func (o *pollObserver) PollFailed(tenant string, feed contract.Feed) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if tenant == "acme" && feed == house {
		o.failures++
	}
}

// Declarations with the simulator's control trigger are routed TO_CONTROL,
// and the routing value travels in the Digitoll-Routing header.
func TestRoutingValueHeader(t *testing.T) {
	e := newEnv(t)
	c := e.client(t, "acme-client", scopeEntry, scopeRoad)
	mrns := map[string]string{}
	for _, tc := range []struct{ doc, goods string }{
		{"HWB-CHECK", simulator.TriggerControl},
		{"HWB-FREE", "brake discs"},
	} {
		mrns[declareHouse(t, c, tc.doc, tc.goods)] = tc.doc
	}

	r := start(t, e.poller("acme", c, house))
	var msgs []*jetstream.RawStreamMsg
	waitFor(t, "two routing messages", func() bool {
		msgs = e.messages(t, contract.RoutingSubject(house, "acme"))
		return len(msgs) == 2
	})
	r.stop(t)

	wantRouting := map[string]string{"HWB-CHECK": simulator.RoutingToControl, "HWB-FREE": simulator.RoutingToEntry}
	for _, m := range msgs {
		var s struct {
			MRN   string `json:"entrySummaryDeclarationMRN"`
			House struct {
				ReferenceNumber string `json:"referenceNumber"`
			} `json:"transportDocumentHouseLevel"`
		}
		if err := json.Unmarshal(m.Data, &s); err != nil {
			t.Fatal(err)
		}
		doc := mrns[s.MRN]
		if doc == "" || s.House.ReferenceNumber != doc {
			t.Errorf("signal %s: MRN and house document do not match a declaration", m.Data)
			continue
		}
		if got := m.Header.Get(HeaderRouting); got != wantRouting[doc] {
			t.Errorf("%s: %s = %q, want %q", doc, HeaderRouting, got, wantRouting[doc])
		}
	}
}

// declareHouse declares a road house consignment through c, waits for its
// SUCCESS and returns its MRN.
func declareHouse(t *testing.T, c *toll.Client, doc, goods string) string {
	t.Helper()
	body := fmt.Appendf(nil, `{"documentIssueDate":"2025-01-15T08:05:00Z",
 "consignmentHouseLevel":{"containerIndicator":0,"totalGrossMass":120.5,"numberOfPackages":3,"goodsDescription":%q,
   "transportDocumentHouseLevel":{"documentNumber":%q,"type":"N750"},
   "consignmentMasterLevel":{"carrierIdentificationNumber":"999999999","transportDocumentMasterLevel":{"documentNumber":"MAWB-0001","type":"N741"}},
   "consignor":{"name":"Sender AB","typeOfPerson":2,"address":{"city":"Göteborg","country":"SE"}},
   "consignee":{"name":"Receiver AS","identificationNumber":"888888888","typeOfPerson":2,"address":{"city":"Oslo","country":"NO"}}}}`, goods, doc)
	ctx := testCtx(t)
	id, err := c.Declare(ctx, toll.RoadV2(), contract.OpCreate, contract.LevelHouseConsignment, "", body)
	if err != nil {
		t.Fatal(err)
	}
	var v toll.Validation
	waitFor(t, "validation of "+doc, func() bool {
		v, err = c.ValidationStatus(ctx, toll.RoadV2(), contract.LevelHouseConsignment, id)
		if err != nil && !errors.Is(err, toll.ErrNotReady) {
			t.Fatal(err)
		}
		return err == nil
	})
	if v.Status != toll.ValidationSuccess {
		t.Fatalf("%s: %+v, want SUCCESS", doc, v)
	}
	return v.MRN
}

// Without the entry scope the poller logs an error line, publishes
// nothing, and carries on once the scope is granted.
func TestConfigurationFailureWaitsForTheFix(t *testing.T) {
	e := newEnv(t)
	c := e.client(t, "acme-client", scopeRoad)
	e.addSignals(t, "acme-client", house, 2)

	r := start(t, e.poller("acme", c, house))
	waitFor(t, "an error line about the configuration", func() bool {
		return strings.Contains(e.logs.String(), "level=ERROR msg=\"routing feed paused by a config failure")
	})
	if n := len(e.messages(t, contract.RoutingSubject(house, "acme"))); n != 0 {
		t.Fatalf("%d messages published without the entry scope", n)
	}

	e.sim.GrantScope("acme-client", scopeEntry)
	// The poller and this test share c's token cache, which waits out a
	// backoff after the refused fetches: read the feed once the poller
	// has got through.
	waitFor(t, "the poller to publish both signals", func() bool {
		return len(e.messages(t, contract.RoutingSubject(house, "acme"))) == 2
	})
	want := feedSignals(t, c, house)
	waitFor(t, "the marker of the last signal", func() bool { return e.marker(t, "acme", house) == want[len(want)-1].ID })
	r.stop(t)
	checkExactlyOnce(t, "acme", e.messages(t, contract.RoutingSubject(house, "acme")), want)
}

func TestRunChecksItsConfig(t *testing.T) {
	e := newEnv(t)
	c := e.client(t, "acme-client", scopeEntry)
	good := func() *Poller { return e.poller("acme", c) }
	tests := []struct {
		name   string
		change func(p *Poller)
	}{
		{"no JetStream", func(p *Poller) { p.JetStream = nil }},
		{"no bucket", func(p *Poller) { p.Markers = nil }},
		{"no Toll", func(p *Poller) { p.Toll = nil }},
		{"bad tenant", func(p *Poller) { p.Tenant = "Acme Corp" }},
		{"unknown feed", func(p *Poller) { p.Feeds = []contract.Feed{"entry"} }},
		{"feed twice", func(p *Poller) { p.Feeds = []contract.Feed{house, house} }},
		{"negative interval", func(p *Poller) { p.Interval = -time.Second }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := good()
			tc.change(p)
			if err := p.Run(t.Context()); !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("Run: %v, want ErrInvalidConfig", err)
			}
		})
	}

	p := good()
	r := start(t, p)
	waitFor(t, "the poller to run", func() bool { return p.running.Load() })
	if err := p.Run(t.Context()); !errors.Is(err, ErrAlreadyRunning) {
		t.Errorf("second Run: %v, want ErrAlreadyRunning", err)
	}
	r.stop(t)
}

func TestEnsureBucketIsIdempotent(t *testing.T) {
	e := newEnv(t)
	kv, err := EnsureBucket(testCtx(t), e.js, 1)
	if err != nil {
		t.Fatal(err)
	}
	if kv.Bucket() != MarkerBucket {
		t.Errorf("bucket %q, want %q", kv.Bucket(), MarkerBucket)
	}
	if _, err := EnsureBucket(testCtx(t), e.js, -1); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("negative replicas: %v, want ErrInvalidConfig", err)
	}
}

// A simulator restarted beside a kept NATS store has a fresh feed that
// does not know the saved marker: the poller reads the new feed from its
// beginning, says so in one warning, and publishes the new signals beside
// the old ones, none lost to the duplicate window.
func TestUnknownMarkerRestartsTheFeed(t *testing.T) {
	e := newEnv(t)
	c := e.client(t, "acme-client", scopeEntry)
	e.addSignals(t, "acme-client", house, 4)
	before := feedSignals(t, c, house)
	r := start(t, e.poller("acme", c, house))
	waitFor(t, "the marker of the last signal", func() bool { return e.marker(t, "acme", house) == before[len(before)-1].ID })
	r.stop(t)

	// The simulator restarts: same client, a new feed.
	sim, err := simulator.Start(simulator.Config{RoutingPageSize: pageSize}, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	e.sim = sim
	c = e.client(t, "acme-client", scopeEntry)
	e.addSignals(t, "acme-client", house, 5)
	after := feedSignals(t, c, house)
	p := e.poller("acme", c, house)
	r = start(t, p)
	waitFor(t, "the marker of the new feed's last signal", func() bool { return e.marker(t, "acme", house) == after[len(after)-1].ID })
	r.stop(t)

	if n := strings.Count(e.logs.String(), `level=WARN msg="routing feed: Toll does not know the marker`); n != 1 {
		t.Errorf("%d warnings about the unknown marker, want 1:\n%s", n, e.logs)
	}
	if strings.Contains(e.logs.String(), "level=ERROR") {
		t.Errorf("the feed was paused:\n%s", e.logs)
	}
	if err := p.Health(); err != nil {
		t.Errorf("Health after the restart: %v", err)
	}
	checkExactlyOnce(t, "acme", e.messages(t, contract.RoutingSubject(house, "acme")), append(before, after...))
}

// markerRefusingToll answers its feed from the start, and refuses every
// marker: a marker refused again after going back to the start is not a
// reset feed, and the poller pauses instead of repeating the first page.
type markerRefusingToll struct {
	calls atomic.Int32
}

func (m *markerRefusingToll) Routing(_ context.Context, _ contract.Feed, marker string) ([]toll.RoutingSignal, error) {
	m.calls.Add(1)
	if marker != "" {
		return nil, fmt.Errorf("%w %q: HTTP 400: %w", toll.ErrUnknownMarker, marker, failure.ErrPermanent)
	}
	return []toll.RoutingSignal{{ID: "only", Routing: "TO_ENTRY", Raw: []byte(`{"routingResult":{"id":"only","routing":"TO_ENTRY"}}`)}}, nil
}

func TestMarkerRefusedAfterARestartPauses(t *testing.T) {
	e := newEnv(t)
	if _, err := e.kv.Create(testCtx(t), MarkerKey("acme", house), []byte("gone")); err != nil {
		t.Fatal(err)
	}
	p := e.poller("acme", &markerRefusingToll{}, house)
	r := start(t, p)
	waitFor(t, "Health to report the paused feed", func() bool { return p.Health() != nil })
	r.stop(t)
	if err := p.Health(); !strings.Contains(err.Error(), "feed house-consignment paused") || !strings.Contains(err.Error(), "does not know the marker") {
		t.Errorf("Health: %v", err)
	}
	if n := strings.Count(e.logs.String(), `msg="routing feed: Toll does not know the marker`); n != 1 {
		t.Errorf("%d restarts from the beginning, want 1:\n%s", n, e.logs)
	}
	if n := len(e.messages(t, contract.RoutingSubject(house, "acme"))); n != 1 {
		t.Errorf("%d messages, want the one signal once", n)
	}
}

// A feed paused by a configuration failure shows in Health, naming the
// feed and why, until a poll succeeds again.
func TestHealthReportsAPausedFeed(t *testing.T) {
	e := newEnv(t)
	c := e.client(t, "acme-client", scopeRoad)
	p := e.poller("acme", c, house, transport)
	if err := p.Health(); err != nil {
		t.Fatalf("Health before Run: %v", err)
	}
	start(t, p)
	waitFor(t, "Health to report both feeds paused", func() bool {
		err := p.Health()
		return err != nil && strings.Contains(err.Error(), "feed house-consignment paused") && strings.Contains(err.Error(), "feed transport paused")
	})
	if err := p.Health(); !strings.Contains(err.Error(), "config failure") {
		t.Errorf("Health does not say why: %v", err)
	}
	e.sim.GrantScope("acme-client", scopeEntry)
	waitFor(t, "Health to clear once the scope is granted", func() bool { return p.Health() == nil })
}
