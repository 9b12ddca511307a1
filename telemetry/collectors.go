package telemetry

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/digitoll/digitoll-worker/auth"
	"github.com/digitoll/digitoll-worker/contract"
)

// TokenStats is what the token metrics read at scrape time; *auth.Cache
// implements it.
type TokenStats interface {
	// Scopes lists the scopes tokens were asked for.
	Scopes() []string
	// Stats reports the counters and the cached token's expiry of scope.
	Stats(scope string) auth.CacheStats
}

// WatchTokens registers the token metrics of one tenant's cache: fetches
// (one grant and one exchange each), failed fetches, cache hits, requests
// answered with the last failure during its backoff and the seconds until
// the cached token expires, per scope.
func (m *Metrics) WatchTokens(tenant string, src TokenStats) error {
	c := &tokenCollector{src: src, now: time.Now}
	labels := prometheus.Labels{"tenant": tenant}
	c.fetches = prometheus.NewDesc(namespace+"_token_fetches_total",
		"Token fetches (a Maskinporten grant and a Toll token exchange each).", []string{"scope"}, labels)
	c.failures = prometheus.NewDesc(namespace+"_token_fetch_failures_total",
		"Token fetches that failed.", []string{"scope"}, labels)
	c.hits = prometheus.NewDesc(namespace+"_token_cache_hits_total",
		"Token requests answered from the cache.", []string{"scope"}, labels)
	c.backoffs = prometheus.NewDesc(namespace+"_token_backoffs_total",
		"Token requests answered with the last failed fetch's error, without a fetch, during its backoff.", []string{"scope"}, labels)
	c.expiry = prometheus.NewDesc(namespace+"_token_expiry_seconds",
		"Seconds until the cached Toll token expires (absent while none is cached).", []string{"scope"}, labels)
	if err := m.reg.Register(c); err != nil {
		return fmt.Errorf("telemetry: token metrics of tenant %s: %w", tenant, err)
	}
	return nil
}

type tokenCollector struct {
	src                                       TokenStats
	now                                       func() time.Time
	fetches, failures, hits, backoffs, expiry *prometheus.Desc
}

// Describe implements prometheus.Collector.
func (c *tokenCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.fetches
	ch <- c.failures
	ch <- c.hits
	ch <- c.backoffs
	ch <- c.expiry
}

// Collect implements prometheus.Collector.
func (c *tokenCollector) Collect(ch chan<- prometheus.Metric) {
	now := c.now()
	for _, scope := range c.src.Scopes() {
		st := c.src.Stats(scope)
		ch <- prometheus.MustNewConstMetric(c.fetches, prometheus.CounterValue, float64(st.Fetches), scope)
		ch <- prometheus.MustNewConstMetric(c.failures, prometheus.CounterValue, float64(st.Failures), scope)
		ch <- prometheus.MustNewConstMetric(c.hits, prometheus.CounterValue, float64(st.Hits), scope)
		ch <- prometheus.MustNewConstMetric(c.backoffs, prometheus.CounterValue, float64(st.BackedOff), scope)
		if !st.Expiry.IsZero() {
			ch <- prometheus.MustNewConstMetric(c.expiry, prometheus.GaugeValue, st.Expiry.Sub(now).Seconds(), scope)
		}
	}
}

// WatchCertificates exports, at each scrape, the seconds until each
// tenant's business certificate expires, as src reports them then: a
// tenant re-keyed by a reload of the tenants file, or whose next key has
// taken over, shows its new certificate at once, and a removed tenant's
// series goes. A tenant without a certificate (its key registered by
// kid) is left out of src and has no series.
func (m *Metrics) WatchCertificates(src func() map[string]time.Time) error {
	c := &certificateCollector{src: src, desc: prometheus.NewDesc(namespace+"_certificate_expiry_seconds",
		"Seconds until the business certificate the grants are signed with expires.",
		[]string{"tenant"}, nil)}
	if err := m.reg.Register(c); err != nil {
		return fmt.Errorf("telemetry: certificate metrics: %w", err)
	}
	return nil
}

type certificateCollector struct {
	src  func() map[string]time.Time
	desc *prometheus.Desc
}

// Describe implements prometheus.Collector.
func (c *certificateCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect implements prometheus.Collector.
func (c *certificateCollector) Collect(ch chan<- prometheus.Metric) {
	for tenant, notAfter := range c.src() {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, time.Until(notAfter).Seconds(), tenant)
	}
}

// consumerInfoTTL is how long counts read from NATS are reused: scrapes
// of several Prometheus servers do not each cost a round trip to NATS.
const consumerInfoTTL = 5 * time.Second

// consumerInfoTimeout bounds the reads of one scrape.
const consumerInfoTimeout = 2 * time.Second

// LanePause is the pause state of one lane, a kind of one tenant's
// submissions, as WatchPauses reads it.
type LanePause struct {
	Kind, Tenant string
	// Paused is true while the lane's deliveries are held back.
	Paused bool
	// Reason is why, while paused (for instance "configuration" or
	// "outage").
	Reason string
}

// WatchPauses registers digitoll_tenant_paused{kind,tenant,reason}: 1
// while a lane is paused, with the pause's reason, else 0 with reason
// "none". src is called at every scrape and must be quick. Tenants are
// labelled by the rule of SetTenants; lanes that share a label (the
// tenants beyond the limit, say) are reported together: 1 for each reason
// any of them is paused for, else 0.
func (m *Metrics) WatchPauses(src func() []LanePause) error {
	c := &pauseCollector{src: src, label: m.tenants.label,
		desc: prometheus.NewDesc(namespace+"_tenant_paused",
			"1 while the tenant's submissions of the kind are paused (configuration fault or outage), by reason; 0 with reason none otherwise.",
			[]string{"kind", "tenant", "reason"}, nil),
	}
	if err := m.reg.Register(c); err != nil {
		return fmt.Errorf("telemetry: pause metrics: %w", err)
	}
	return nil
}

type pauseCollector struct {
	src   func() []LanePause
	label func(tenant string) string
	desc  *prometheus.Desc
}

// Describe implements prometheus.Collector.
func (c *pauseCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect implements prometheus.Collector.
func (c *pauseCollector) Collect(ch chan<- prometheus.Metric) {
	// reasons holds, per labelled lane, the reasons its lanes are paused
	// for; an empty set means none is paused.
	reasons := map[lane]map[string]bool{}
	for _, p := range c.src() {
		l := lane{label(p.Kind), c.label(p.Tenant)}
		if reasons[l] == nil {
			reasons[l] = map[string]bool{}
		}
		if p.Paused {
			reasons[l][label(p.Reason)] = true
		}
	}
	for l, rs := range reasons {
		if len(rs) == 0 {
			ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, 0, l.kind, l.tenant, "none")
			continue
		}
		for r := range rs {
			ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, 1, l.kind, l.tenant, r)
		}
	}
}

// StreamLookup finds a stream; jetstream.JetStream implements it.
type StreamLookup interface {
	Stream(ctx context.Context, stream string) (jetstream.Stream, error)
}

// WatchBacklog registers digitoll_backlog_messages{kind,tenant}: the
// submissions in stream (a WorkQueue stream, which holds exactly the
// messages not yet acknowledged: waiting, in progress or handed back) by
// kind and tenant label, from the stream's per-subject counts. They are
// read at scrape time and reused for a few seconds; when they cannot be
// read the scrape leaves the series out. A subject that is not
// digitoll.submit.<kind>.<tenant> is counted under its kind if it names
// one (else kind "none") and tenant TenantUnconfigured. A pair once
// reported stays, at 0 once drained.
func (m *Metrics) WatchBacklog(js StreamLookup, stream string) error {
	if err := m.reg.Register(newBacklogCollector(js, stream, m.tenants.label, time.Now)); err != nil {
		return fmt.Errorf("telemetry: backlog metrics: %w", err)
	}
	return nil
}

func newBacklogCollector(js StreamLookup, stream string, label func(string) string, now func() time.Time) *backlogCollector {
	return &backlogCollector{js: js, stream: stream, label: label, now: now,
		desc: prometheus.NewDesc(namespace+"_backlog_messages",
			"Submissions in the stream not yet acknowledged (waiting, in progress or handed back), by kind and tenant.",
			[]string{"kind", "tenant"}, nil),
		known: map[lane]struct{}{},
	}
}

type backlogCollector struct {
	js     StreamLookup
	stream string
	label  func(tenant string) string
	now    func() time.Time
	desc   *prometheus.Desc

	mu     sync.Mutex
	readAt time.Time
	cached map[lane]float64
	// known are the pairs reported so far, bounded by the kinds times
	// the tenant labels.
	known map[lane]struct{}
}

// Describe implements prometheus.Collector.
func (c *backlogCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect implements prometheus.Collector.
func (c *backlogCollector) Collect(ch chan<- prometheus.Metric) {
	for l, n := range c.counts() {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, n, l.kind, l.tenant)
	}
}

// counts returns the cached counts by labelled lane, reading them anew
// when they are older than consumerInfoTTL; nil when they cannot be read.
// The lock is held during the read so that concurrent scrapes share it.
func (c *backlogCollector) counts() map[lane]float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if now := c.now(); c.cached != nil && now.Sub(c.readAt) < consumerInfoTTL {
		return c.cached
	}
	ctx, cancel := context.WithTimeout(context.Background(), consumerInfoTimeout)
	defer cancel()
	s, err := c.js.Stream(ctx, c.stream)
	if err != nil {
		return nil
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(contract.SubjectsSubmit))
	if err != nil {
		return nil
	}
	out := make(map[lane]float64, len(c.known))
	for l := range c.known {
		out[l] = 0
	}
	for subject, n := range info.State.Subjects {
		l := c.lane(subject)
		out[l] += float64(n)
		c.known[l] = struct{}{}
	}
	c.cached, c.readAt = out, c.now()
	return out
}

// lane labels the submissions of subject.
func (c *backlogCollector) lane(subject string) lane {
	if kind, tenant, err := contract.ParseSubmitSubject(subject); err == nil {
		return lane{string(kind), c.label(tenant)}
	}
	kind := "none"
	if parts := strings.Split(subject, "."); len(parts) > 2 {
		if k, err := contract.ParseKind(parts[2]); err == nil {
			kind = string(k)
		}
	}
	return lane{kind, c.label("")}
}
