package telemetry

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/digitoll/digitoll-worker/auth"
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
// (one grant and one exchange each), failed fetches, cache hits and the
// seconds until the cached token expires, per scope.
func (m *Metrics) WatchTokens(tenant string, src TokenStats) error {
	c := &tokenCollector{src: src, now: time.Now}
	labels := prometheus.Labels{"tenant": tenant}
	c.fetches = prometheus.NewDesc(namespace+"_token_fetches_total",
		"Token fetches (a Maskinporten grant and a Toll token exchange each).", []string{"scope"}, labels)
	c.failures = prometheus.NewDesc(namespace+"_token_fetch_failures_total",
		"Token fetches that failed.", []string{"scope"}, labels)
	c.hits = prometheus.NewDesc(namespace+"_token_cache_hits_total",
		"Token requests answered from the cache.", []string{"scope"}, labels)
	c.expiry = prometheus.NewDesc(namespace+"_token_expiry_seconds",
		"Seconds until the cached Toll token expires (absent while none is cached).", []string{"scope"}, labels)
	if err := m.reg.Register(c); err != nil {
		return fmt.Errorf("telemetry: token metrics of tenant %s: %w", tenant, err)
	}
	return nil
}

type tokenCollector struct {
	src                             TokenStats
	now                             func() time.Time
	fetches, failures, hits, expiry *prometheus.Desc
}

// Describe implements prometheus.Collector.
func (c *tokenCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.fetches
	ch <- c.failures
	ch <- c.hits
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
		if !st.Expiry.IsZero() {
			ch <- prometheus.MustNewConstMetric(c.expiry, prometheus.GaugeValue, st.Expiry.Sub(now).Seconds(), scope)
		}
	}
}

// WatchCertificate registers the seconds until a tenant's business
// certificate expires (x5c mode; a registered key in kid mode does not
// expire, so nothing is registered for it).
func (m *Metrics) WatchCertificate(tenant string, notAfter time.Time) error {
	g := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: namespace, Name: "certificate_expiry_seconds",
		Help:        "Seconds until the business certificate the grants are signed with expires.",
		ConstLabels: prometheus.Labels{"tenant": tenant},
	}, func() float64 { return time.Until(notAfter).Seconds() })
	if err := m.reg.Register(g); err != nil {
		return fmt.Errorf("telemetry: certificate metric of tenant %s: %w", tenant, err)
	}
	return nil
}

// ConsumerLookup finds a consumer with its current info;
// jetstream.JetStream implements it.
type ConsumerLookup interface {
	Consumer(ctx context.Context, stream, consumer string) (jetstream.Consumer, error)
}

// consumerInfoTTL is how long consumer counts are reused: scrapes of
// several Prometheus servers do not each cost a round trip to NATS.
const consumerInfoTTL = 5 * time.Second

// consumerInfoTimeout bounds the lookups of one scrape.
const consumerInfoTimeout = 2 * time.Second

// WatchConsumers registers the backlog of durable consumers of stream:
// messages waiting to be delivered, delivered but unacknowledged, and
// whether the consumer is paused, labelled by kind. consumers maps each
// kind label to its durable name. Counts are read from NATS at scrape
// time, reused for a few seconds; a consumer that cannot be read is left
// out of that scrape.
func (m *Metrics) WatchConsumers(js ConsumerLookup, stream string, consumers map[string]string) error {
	c := &consumerCollector{js: js, stream: stream, consumers: consumers, now: time.Now,
		pending: prometheus.NewDesc(namespace+"_consumer_pending_messages",
			"Submissions in the stream not yet delivered to the kind's consumer.", []string{"kind"}, nil),
		ackPending: prometheus.NewDesc(namespace+"_consumer_ack_pending_messages",
			"Submissions delivered to a worker and not yet acknowledged.", []string{"kind"}, nil),
		paused: prometheus.NewDesc(namespace+"_consumer_paused",
			"1 while the kind's consumer is paused (configuration fault or outage).", []string{"kind"}, nil),
	}
	if err := m.reg.Register(c); err != nil {
		return fmt.Errorf("telemetry: consumer metrics: %w", err)
	}
	return nil
}

type consumerCollector struct {
	js        ConsumerLookup
	stream    string
	consumers map[string]string
	now       func() time.Time

	pending, ackPending, paused *prometheus.Desc

	mu     sync.Mutex
	readAt time.Time
	cached []consumerCounts
}

type consumerCounts struct {
	kind                string
	pending, ackPending float64
	paused              bool
}

// Describe implements prometheus.Collector.
func (c *consumerCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.pending
	ch <- c.ackPending
	ch <- c.paused
}

// Collect implements prometheus.Collector.
func (c *consumerCollector) Collect(ch chan<- prometheus.Metric) {
	for _, cc := range c.counts() {
		ch <- prometheus.MustNewConstMetric(c.pending, prometheus.GaugeValue, cc.pending, cc.kind)
		ch <- prometheus.MustNewConstMetric(c.ackPending, prometheus.GaugeValue, cc.ackPending, cc.kind)
		paused := 0.0
		if cc.paused {
			paused = 1
		}
		ch <- prometheus.MustNewConstMetric(c.paused, prometheus.GaugeValue, paused, cc.kind)
	}
}

// counts returns the cached counts, reading them anew when they are older
// than consumerInfoTTL. The lock is held during the read so that
// concurrent scrapes share it.
func (c *consumerCollector) counts() []consumerCounts {
	c.mu.Lock()
	defer c.mu.Unlock()
	if now := c.now(); c.cached != nil && now.Sub(c.readAt) < consumerInfoTTL {
		return c.cached
	}
	ctx, cancel := context.WithTimeout(context.Background(), consumerInfoTimeout)
	defer cancel()
	kinds := make([]string, 0, len(c.consumers))
	for k := range c.consumers {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	out := make([]consumerCounts, 0, len(kinds))
	for _, k := range kinds {
		cons, err := c.js.Consumer(ctx, c.stream, c.consumers[k])
		if err != nil {
			continue
		}
		info := cons.CachedInfo()
		out = append(out, consumerCounts{kind: k, pending: float64(info.NumPending), ackPending: float64(info.NumAckPending), paused: info.Paused})
	}
	c.cached, c.readAt = out, c.now()
	return out
}
