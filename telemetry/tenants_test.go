package telemetry

import (
	"maps"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/internal/natstest"
	"github.com/digitoll/digitoll-worker/internal/promtest"
)

var tenantLabelPattern = regexp.MustCompile(`tenant="([^"]*)"`)

// byTenant sums the series of name by their tenant label.
func byTenant(s promtest.Series, name string) map[string]float64 {
	out := map[string]float64{}
	for key, v := range s {
		if !strings.HasPrefix(key, name+"{") {
			continue
		}
		m := tenantLabelPattern.FindStringSubmatch(key)
		if m == nil {
			continue
		}
		out[m[1]] += v
	}
	return out
}

// series returns the series of name, with their values.
func series(s promtest.Series, name string) map[string]float64 {
	out := map[string]float64{}
	for key, v := range s {
		if strings.HasPrefix(key, name+"{") {
			out[key] = v
		}
	}
	return out
}

// The tenant label is a configured tenant's name, "other" beyond the
// limit, "unconfigured" for anything else, "all" with limit 0; and never a
// raw string a publisher chose.
func TestTenantLabels(t *testing.T) {
	tests := []struct {
		name    string
		limit   int      // -1: the default
		tenants []string // nil: SetTenants is never called
		sent    []string // the tenant of each delivery
		want    map[string]float64
	}{
		{"configured", -1, []string{"acme", "nordfrakt"},
			[]string{"acme", "acme", "nordfrakt", "evil", ""},
			map[string]float64{"acme": 2, "nordfrakt": 1, "unconfigured": 2}},
		{"over the limit", 2, []string{"acme", "nordfrakt", "polar", "tundra"},
			[]string{"acme", "nordfrakt", "polar", "tundra", "evil"},
			map[string]float64{"acme": 1, "nordfrakt": 1, "other": 2, "unconfigured": 1}},
		{"duplicates and invalid names do not count", 2, []string{"acme", "acme", "Not Valid", "nordfrakt", "polar"},
			[]string{"acme", "nordfrakt", "polar", "Not Valid"},
			map[string]float64{"acme": 1, "nordfrakt": 1, "other": 1, "unconfigured": 1}},
		{"limit 0", 0, []string{"acme"},
			[]string{"acme", "evil", ""},
			map[string]float64{"all": 3}},
		{"limit 0 without tenants", 0, nil,
			[]string{"acme", "evil"},
			map[string]float64{"all": 2}},
		{"no tenants set: the first seen by name", 2, nil,
			[]string{"acme", "nordfrakt", "acme", "polar", "", "Bad\xff", "a.b"},
			map[string]float64{"acme": 2, "nordfrakt": 1, "other": 1, "unconfigured": 3}},
		{"an empty set", -1, []string{},
			[]string{"acme"},
			map[string]float64{"unconfigured": 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var opts []Option
			if tt.limit >= 0 {
				opts = append(opts, WithTenantLabelLimit(tt.limit))
			}
			m := NewMetrics(opts...)
			if tt.tenants != nil {
				m.SetTenants(tt.tenants)
			}
			for _, tenant := range tt.sent {
				m.MessageStarted(contract.KindRoad, tenant)
			}
			if got := byTenant(scrape(t, m), "digitoll_messages_in_flight"); !maps.Equal(got, tt.want) {
				t.Errorf("in flight by tenant %v, want %v", got, tt.want)
			}
			for _, tenant := range tt.sent {
				m.MessageDone(contract.KindRoad, tenant, contract.OpCreate, "accepted", time.Second)
				m.Retried(contract.KindRoad, tenant, "transient")
				m.DeadLettered(contract.KindRoad, tenant, "malformed")
			}
			s := scrape(t, m)
			for _, name := range []string{"digitoll_messages_total", "digitoll_message_retries_total", "digitoll_dead_letters_total"} {
				if got := byTenant(s, name); !maps.Equal(got, tt.want) {
					t.Errorf("%s by tenant %v, want %v", name, got, tt.want)
				}
			}
			idle := map[string]float64{}
			for l := range tt.want {
				idle[l] = 0
			}
			if got := byTenant(s, "digitoll_messages_in_flight"); !maps.Equal(got, idle) {
				t.Errorf("in flight by tenant after the deliveries %v, want %v", got, idle)
			}
			// The histogram keeps kind and outcome only.
			key := promtest.Key("digitoll_message_duration_seconds_count", "kind", "road", "outcome", "accepted")
			if got := s[key]; got != float64(len(tt.sent)) {
				t.Errorf("%s = %v, want %d", key, got, len(tt.sent))
			}
		})
	}
}

// A delivery in flight while its tenant's label changes is reported under
// the new label, and finishing it brings every label back to 0, never
// below.
func TestInFlightFollowsTheTenants(t *testing.T) {
	m := NewMetrics()
	m.SetTenants([]string{"acme"})
	m.MessageStarted(contract.KindRoad, "acme")
	m.MessageStarted(contract.KindRoad, "acme")
	if got, want := byTenant(scrape(t, m), "digitoll_messages_in_flight"), map[string]float64{"acme": 2}; !maps.Equal(got, want) {
		t.Errorf("in flight %v, want %v", got, want)
	}
	m.SetTenants([]string{"nordfrakt"})
	if got, want := byTenant(scrape(t, m), "digitoll_messages_in_flight"), map[string]float64{"acme": 0, "unconfigured": 2}; !maps.Equal(got, want) {
		t.Errorf("in flight once acme is removed %v, want %v", got, want)
	}
	for range 3 { // one more than started
		m.MessageDone(contract.KindRoad, "acme", contract.OpCreate, "accepted", time.Second)
	}
	if got, want := byTenant(scrape(t, m), "digitoll_messages_in_flight"), map[string]float64{"acme": 0, "unconfigured": 0}; !maps.Equal(got, want) {
		t.Errorf("in flight at the end %v, want %v", got, want)
	}
}

// SetTenants while deliveries are observed and scraped: every delivery is
// counted once, under a label of the bounded set (run with -race).
func TestSetTenantsConcurrently(t *testing.T) {
	m := NewMetrics(WithTenantLabelLimit(2))
	sets := [][]string{{"acme", "nordfrakt"}, {"nordfrakt", "polar", "acme"}, {}}
	sent := []string{"acme", "nordfrakt", "polar", "evil", ""}
	const observers, each = 8, 300
	// Set before the observers start: until then the first names seen
	// are labelled as given, "evil" included.
	m.SetTenants(sets[0])
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range observers * each {
			m.SetTenants(sets[i%len(sets)])
		}
	})
	wg.Go(func() {
		for range 20 {
			if _, err := m.Registry().Gather(); err != nil {
				t.Errorf("gather: %v", err)
				return
			}
		}
	})
	for o := range observers {
		wg.Go(func() {
			for i := range each {
				tenant := sent[(o+i)%len(sent)]
				m.MessageStarted(contract.KindAir, tenant)
				m.Retried(contract.KindAir, tenant, "transient")
				m.MessageDone(contract.KindAir, tenant, contract.OpCreate, "retried", time.Millisecond)
			}
		})
	}
	wg.Wait()

	s := scrape(t, m)
	allowed := []string{"acme", "nordfrakt", "polar", TenantOther, TenantUnconfigured}
	for _, name := range []string{"digitoll_messages_total", "digitoll_message_retries_total"} {
		total := 0.0
		for l, n := range byTenant(s, name) {
			if !slices.Contains(allowed, l) {
				t.Errorf("%s has tenant label %q", name, l)
			}
			total += n
		}
		if total != observers*each {
			t.Errorf("%s counts %v deliveries, want %d", name, total, observers*each)
		}
	}
	for l, n := range byTenant(s, "digitoll_messages_in_flight") {
		if n != 0 {
			t.Errorf("in flight %v for %q after every delivery ended", n, l)
		}
	}
}

// Pauses are reported per kind and tenant label; lanes sharing a label are
// paused if any of them is, once per reason.
func TestPauseMetrics(t *testing.T) {
	key := func(kind, tenant, reason string) string {
		return promtest.Key("digitoll_tenant_paused", "kind", kind, "tenant", tenant, "reason", reason)
	}
	tests := []struct {
		name    string
		limit   int
		tenants []string
		lanes   []LanePause
		want    map[string]float64
	}{
		{"by tenant", 10, []string{"acme", "nordfrakt"}, []LanePause{
			{Kind: "road", Tenant: "acme", Paused: true, Reason: "configuration"},
			{Kind: "road", Tenant: "nordfrakt"},
			{Kind: "air", Tenant: "acme"},
		}, map[string]float64{
			key("road", "acme", "configuration"): 1,
			key("road", "nordfrakt", "none"):     0,
			key("air", "acme", "none"):           0,
		}},
		{"shared labels", 1, []string{"acme", "nordfrakt", "polar"}, []LanePause{
			{Kind: "road", Tenant: "acme"},
			{Kind: "road", Tenant: "nordfrakt", Paused: true, Reason: "outage"},
			{Kind: "road", Tenant: "polar"},
			{Kind: "road", Tenant: "evil", Paused: true, Reason: "configuration"},
			{Kind: "road", Tenant: "rogue", Paused: true, Reason: "outage"},
		}, map[string]float64{
			key("road", "acme", "none"):                  0,
			key("road", "other", "outage"):               1,
			key("road", "unconfigured", "configuration"): 1,
			key("road", "unconfigured", "outage"):        1,
		}},
		{"no tenant label", 0, []string{"acme"}, []LanePause{
			{Kind: "road", Tenant: "acme", Paused: true, Reason: "configuration"},
			{Kind: "road", Tenant: "nordfrakt"},
			{Kind: "entry", Tenant: "acme"},
		}, map[string]float64{
			key("road", "all", "configuration"): 1,
			key("entry", "all", "none"):         0,
		}},
		{"no lanes", 10, nil, nil, map[string]float64{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := NewMetrics(WithTenantLabelLimit(tt.limit))
			if tt.tenants != nil {
				m.SetTenants(tt.tenants)
			}
			if err := m.WatchPauses(func() []LanePause { return tt.lanes }); err != nil {
				t.Fatal(err)
			}
			if got := series(scrape(t, m), "digitoll_tenant_paused"); !maps.Equal(got, tt.want) {
				t.Errorf("paused series %v, want %v", got, tt.want)
			}
		})
	}
}

// The backlog is read from the submit stream's per-subject counts, by kind
// and tenant label, and shrinks as messages are acknowledged.
func TestBacklogMetrics(t *testing.T) {
	_, js := natstest.Start(t, filepath.Join(t.TempDir(), "nats"))
	ctx := t.Context()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: contract.StreamSubmit,
		Subjects: []string{contract.SubjectsSubmit}, Retention: jetstream.WorkQueuePolicy}); err != nil {
		t.Fatal(err)
	}
	for subject, n := range map[string]int{
		"digitoll.submit.road.acme":       3,
		"digitoll.submit.road.nordfrakt":  1, // beyond the limit
		"digitoll.submit.air.evil":        2, // not configured
		"digitoll.submit.road.BAD":        1, // not a tenant
		"digitoll.submit.road.acme.extra": 1, // not a submission subject, but of kind road
		"digitoll.submit.ship.acme":       1, // no such kind
	} {
		for range n {
			if _, err := js.Publish(ctx, subject, []byte("{}")); err != nil {
				t.Fatal(err)
			}
		}
	}

	m := NewMetrics(WithTenantLabelLimit(1))
	m.SetTenants([]string{"acme", "nordfrakt"})
	if err := m.WatchBacklog(js, contract.StreamSubmit); err != nil {
		t.Fatal(err)
	}
	key := func(kind, tenant string) string {
		return promtest.Key("digitoll_backlog_messages", "kind", kind, "tenant", tenant)
	}
	want := map[string]float64{
		key("road", "acme"):         3,
		key("road", "other"):        1,
		key("air", "unconfigured"):  2,
		key("road", "unconfigured"): 2,
		key("none", "unconfigured"): 1,
	}
	if got := series(scrape(t, m), "digitoll_backlog_messages"); !maps.Equal(got, want) {
		t.Errorf("backlog %v, want %v", got, want)
	}

	// A stream that cannot be read leaves the series out.
	missing := NewMetrics()
	if err := missing.WatchBacklog(js, "NO_SUCH_STREAM"); err != nil {
		t.Fatal(err)
	}
	if got := series(scrape(t, missing), "digitoll_backlog_messages"); len(got) != 0 {
		t.Errorf("backlog of a missing stream %v, want no series", got)
	}

	// Counts are reused within the TTL; acknowledged messages leave the
	// work queue, and a drained pair stays at 0.
	now := time.Unix(1000, 0)
	c := newBacklogCollector(js, contract.StreamSubmit, m.tenants.label, func() time.Time { return now })
	acme := lane{"road", "acme"}
	if got := c.counts()[acme]; got != 3 {
		t.Fatalf("road/acme backlog %v, want 3", got)
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, contract.StreamSubmit, jetstream.ConsumerConfig{
		Durable: "road-acme", FilterSubject: "digitoll.submit.road.acme", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(3, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	acked := 0
	for msg := range batch.Messages() {
		if err := msg.DoubleAck(ctx); err != nil {
			t.Fatal(err)
		}
		acked++
	}
	if acked != 3 {
		t.Fatalf("acknowledged %d messages, want 3", acked)
	}
	if got := c.counts()[acme]; got != 3 {
		t.Errorf("road/acme backlog within the TTL %v, want the cached 3", got)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		now = now.Add(consumerInfoTTL)
		counts := c.counts()
		n, ok := counts[acme]
		if ok && n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("road/acme backlog %v (present %v) after acknowledging all, want 0", n, ok)
		}
	}
}
