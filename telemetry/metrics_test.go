package telemetry

import (
	"math"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/digitoll/digitoll-worker/auth"
	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/internal/promtest"
)

func scrape(t *testing.T, m *Metrics) promtest.Series {
	t.Helper()
	srv := httptest.NewServer(m.Handler())
	t.Cleanup(srv.Close)
	s, _ := promtest.Scrape(t, srv.URL)
	return s
}

// What the worker, the handlers and the routing poller report shows up
// under the documented names and labels.
func TestObserverMetrics(t *testing.T) {
	m := NewMetrics()
	road, air := contract.KindRoad, contract.KindAir
	m.MessageStarted(road, "acme")
	m.MessageStarted(road, "")
	m.MessageStarted(air, "acme")
	m.MessageDone(road, "acme", contract.OpCreate, "accepted", 2*time.Second)
	m.MessageDone(road, "", "", "dead-lettered", time.Millisecond)
	m.Retried(air, "acme", "configuration")
	m.DeadLettered(road, "", "malformed")
	m.CallRetried(road)
	m.CallRetried(road)
	m.ValidationWaited(road, "success", 1500*time.Millisecond, 3)
	m.Polled("default", contract.FeedTransport, 3, false)
	m.Polled("default", contract.FeedTransport, 2, true)
	m.PollFailed("default", contract.FeedHouseConsignment)

	s := scrape(t, m)
	for key, want := range map[string]float64{
		promtest.Key("digitoll_messages_in_flight", "kind", "road", "tenant", "acme"):                                                      0,
		promtest.Key("digitoll_messages_in_flight", "kind", "road", "tenant", "unconfigured"):                                              0,
		promtest.Key("digitoll_messages_in_flight", "kind", "air", "tenant", "acme"):                                                       1,
		promtest.Key("digitoll_messages_total", "kind", "road", "tenant", "acme", "operation", "create", "outcome", "accepted"):            1,
		promtest.Key("digitoll_messages_total", "kind", "road", "tenant", "unconfigured", "operation", "none", "outcome", "dead-lettered"): 1,
		promtest.Key("digitoll_message_duration_seconds_sum", "kind", "road", "outcome", "accepted"):                                       2,
		promtest.Key("digitoll_message_retries_total", "kind", "air", "tenant", "acme", "cause", "configuration"):                          1,
		promtest.Key("digitoll_dead_letters_total", "kind", "road", "tenant", "unconfigured", "reason", "malformed"):                       1,
		promtest.Key("digitoll_toll_call_retries_total", "kind", "road"):                                                                   2,
		promtest.Key("digitoll_validation_wait_seconds_count", "kind", "road", "verdict", "success"):                                       1,
		promtest.Key("digitoll_validation_wait_seconds_sum", "kind", "road", "verdict", "success"):                                         1.5,
		promtest.Key("digitoll_validation_polls_total", "kind", "road"):                                                                    3,
		promtest.Key("digitoll_routing_signals_total", "tenant", "default", "feed", "transport"):                                           5,
		promtest.Key("digitoll_routing_poll_failures_total", "tenant", "default", "feed", "house-consignment"):                             1,
	} {
		if got, ok := s[key]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", key, got, ok, want)
		}
	}
	if lag, ok := s[promtest.Key("digitoll_routing_lag_seconds", "tenant", "default", "feed", "transport")]; !ok || lag < 0 || lag > 60 {
		t.Errorf("routing lag %v (present %v), want a few seconds at most", lag, ok)
	}
	if _, ok := s[promtest.Key("digitoll_routing_lag_seconds", "tenant", "default", "feed", "house-consignment")]; ok {
		t.Error("a feed never caught up has a lag")
	}
	if s.Sum("go_goroutines") == 0 {
		t.Error("the Go runtime collector is missing")
	}
}

// fakeTokens is a token cache as the metrics see it.
type fakeTokens map[string]auth.CacheStats

func (f fakeTokens) Scopes() []string {
	out := []string{}
	for s := range f {
		out = append(out, s)
	}
	return out
}
func (f fakeTokens) Stats(scope string) auth.CacheStats { return f[scope] }

func TestTokenAndCertificateMetrics(t *testing.T) {
	m := NewMetrics()
	expiry := time.Now().Add(10 * time.Minute)
	if err := m.WatchTokens("acme", fakeTokens{
		"toll:movement/road/v2": {Fetches: 2, Failures: 1, Hits: 40, Expiry: expiry},
		"toll:movement/air":     {Fetches: 1, Failures: 1, BackedOff: 7},
	}); err != nil {
		t.Fatal(err)
	}
	certs := map[string]time.Time{"acme": time.Now().Add(30 * 24 * time.Hour)}
	if err := m.WatchCertificates(func() map[string]time.Time { return certs }); err != nil {
		t.Fatal(err)
	}
	// A second tenant registers beside the first; the same tenant twice
	// is a wiring mistake.
	if err := m.WatchTokens("other", fakeTokens{}); err != nil {
		t.Fatalf("second tenant: %v", err)
	}
	if err := m.WatchTokens("acme", fakeTokens{}); err == nil {
		t.Error("registering a tenant's token metrics twice succeeded")
	}

	s := scrape(t, m)
	road := []string{"tenant", "acme", "scope", "toll:movement/road/v2"}
	for key, want := range map[string]float64{
		promtest.Key("digitoll_token_fetches_total", road...):                                               2,
		promtest.Key("digitoll_token_fetch_failures_total", road...):                                        1,
		promtest.Key("digitoll_token_cache_hits_total", road...):                                            40,
		promtest.Key("digitoll_token_fetch_failures_total", "tenant", "acme", "scope", "toll:movement/air"): 1,
		promtest.Key("digitoll_token_backoffs_total", "tenant", "acme", "scope", "toll:movement/air"):       7,
	} {
		if got := s[key]; got != want {
			t.Errorf("%s = %v, want %v", key, got, want)
		}
	}
	if got := s[promtest.Key("digitoll_token_expiry_seconds", road...)]; got < 590 || got > 600 {
		t.Errorf("token expiry %v s, want about 600", got)
	}
	if _, ok := s[promtest.Key("digitoll_token_expiry_seconds", "tenant", "acme", "scope", "toll:movement/air")]; ok {
		t.Error("a scope without a cached token has an expiry")
	}
	if got := s[promtest.Key("digitoll_certificate_expiry_seconds", "tenant", "acme")]; math.Abs(got-30*24*3600) > 60 {
		t.Errorf("certificate expiry %v s, want 30 days", got)
	}

	// Read at each scrape: a tenant re-keyed by a reload shows its new
	// certificate, a removed one has no series left.
	certs = map[string]time.Time{"other": time.Now().Add(90 * 24 * time.Hour)}
	s = scrape(t, m)
	if got := s[promtest.Key("digitoll_certificate_expiry_seconds", "tenant", "other")]; math.Abs(got-90*24*3600) > 60 {
		t.Errorf("re-keyed certificate expiry %v s, want 90 days", got)
	}
	if got, ok := s[promtest.Key("digitoll_certificate_expiry_seconds", "tenant", "acme")]; ok {
		t.Errorf("a tenant no longer served still reports a certificate expiry of %v s", got)
	}
}
