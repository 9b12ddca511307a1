package telemetry

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/digitoll/digitoll-worker/contract"
)

// namespace prefixes every metric of the worker.
const namespace = "digitoll"

// Histogram buckets, in seconds.
var (
	// httpBuckets suit one HTTP exchange: tens of milliseconds normally,
	// up to the 30 s client timeout.
	httpBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}
	// validationBuckets suit Toll's asynchronous validation: seconds
	// usually, about 45 s at worst, up to the 10 min poll timeout.
	validationBuckets = []float64{0.25, 0.5, 1, 2, 5, 10, 20, 45, 90, 180, 600}
	// messageBuckets suit one delivery, from a republished result
	// (milliseconds) to a long validation wait.
	messageBuckets = []float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}
)

// Metrics owns the worker's Prometheus registry and its collectors. It
// implements worker.Observer, handlers.Observer and routing.Observer, and
// is safe for concurrent use. Create it with NewMetrics.
type Metrics struct {
	reg *prometheus.Registry
	// tenants labels the message metrics by tenant (see SetTenants).
	tenants *tenantLabels

	messages        *prometheus.CounterVec
	messageDuration *prometheus.HistogramVec
	inFlight        *inFlight
	retries         *prometheus.CounterVec
	deadLetters     *prometheus.CounterVec
	callRetries     *prometheus.CounterVec
	validationWait  *prometheus.HistogramVec
	validationPolls *prometheus.CounterVec
	httpDuration    *prometheus.HistogramVec
	routingSignals  *prometheus.CounterVec
	routingFailures *prometheus.CounterVec
	routingLag      *routingLag
}

// NewMetrics returns metrics in a new registry that also holds the Go
// runtime and process collectors.
func NewMetrics(opts ...Option) *Metrics {
	tenants := &tenantLabels{limit: DefaultTenantLabelLimit}
	m := &Metrics{
		reg:     prometheus.NewRegistry(),
		tenants: tenants,
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "messages_total",
			Help: "Deliveries of submissions by how they ended: accepted, rejected, dead-lettered, retried (handed back for later), duplicate (result already recorded) or superseded (left to a later delivery).",
		}, []string{"kind", "tenant", "operation", "outcome"}),
		// No tenant label on the histogram: each label value costs a
		// series per bucket (15 here), so tenants × kinds × outcomes ×
		// buckets would dwarf every other metric; per-tenant rates are
		// in messages_total.
		messageDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "message_duration_seconds",
			Help:    "Time from taking a delivery to its ack, nak or hand-over.",
			Buckets: messageBuckets,
		}, []string{"kind", "outcome"}),
		inFlight: newInFlight(tenants.label),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "message_retries_total",
			Help: "Deliveries handed back for a later attempt, by cause: transient, configuration, after (waiting for an earlier submission), shutdown, lease.",
		}, []string{"kind", "tenant", "cause"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "dead_letters_total",
			Help: "Messages published to the DLQ, by reason.",
		}, []string{"kind", "tenant", "reason"}),
		callRetries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "toll_call_retries_total",
			Help: "Toll calls repeated within one delivery after a transient failure.",
		}, []string{"kind"}),
		validationWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "validation_wait_seconds",
			Help:    "Time spent polling Toll's validation status in one delivery, by verdict: success, failure, pending (handed back still pending) or error.",
			Buckets: validationBuckets,
		}, []string{"kind", "verdict"}),
		validationPolls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "validation_polls_total",
			Help: "Calls of Toll's validation status; over the count of digitoll_validation_wait_seconds, the polls per validation.",
		}, []string{"kind"}),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "http_request_duration_seconds",
			Help:    "HTTP calls to Toll and Maskinporten, until the response headers, by method, endpoint (path template) and status code (\"error\" when no response came).",
			Buckets: httpBuckets,
		}, []string{"method", "endpoint", "code"}),
		routingSignals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "routing_signals_total",
			Help: "Routing signals read from Toll's feeds and published.",
		}, []string{"tenant", "feed"}),
		routingFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "routing_poll_failures_total",
			Help: "Failed polls of Toll's routing feeds.",
		}, []string{"tenant", "feed"}),
		routingLag: newRoutingLag(time.Now),
	}
	for _, o := range opts {
		o(m)
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.messages, m.messageDuration, m.inFlight, m.retries, m.deadLetters, m.callRetries,
		m.validationWait, m.validationPolls, m.httpDuration, m.routingSignals, m.routingFailures, m.routingLag,
	)
	return m
}

// Handler serves the registry in the Prometheus text format. A collector
// that fails (NATS unreachable for consumer counts) leaves out its series
// rather than failing the scrape.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError, Registry: m.reg})
}

// Registry is the registry the metrics live in, for registering further
// collectors and for tests that gather directly.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// label turns an empty value (an operation of a message that did not
// parse) into "none", so that series are readable.
func label(v string) string {
	if v == "" {
		return "none"
	}
	return v
}

// MessageStarted counts a delivery of tenant's as in flight
// (worker.Observer).
func (m *Metrics) MessageStarted(kind contract.Kind, tenant string) {
	m.inFlight.started(kind, tenant)
}

// MessageDone counts a finished delivery by kind, tenant, operation and
// outcome and how long it took (worker.Observer).
func (m *Metrics) MessageDone(kind contract.Kind, tenant string, op contract.Operation, outcome string, d time.Duration) {
	m.inFlight.done(kind, tenant)
	m.messages.WithLabelValues(string(kind), m.tenants.label(tenant), label(string(op)), label(outcome)).Inc()
	m.messageDuration.WithLabelValues(string(kind), label(outcome)).Observe(d.Seconds())
}

// Retried counts a delivery handed back for later (worker.Observer).
func (m *Metrics) Retried(kind contract.Kind, tenant string, cause string) {
	m.retries.WithLabelValues(string(kind), m.tenants.label(tenant), label(cause)).Inc()
}

// DeadLettered counts a message published to the DLQ (worker.Observer).
func (m *Metrics) DeadLettered(kind contract.Kind, tenant string, reason string) {
	m.deadLetters.WithLabelValues(string(kind), m.tenants.label(tenant), label(reason)).Inc()
}

// CallRetried counts a Toll call repeated within a delivery
// (handlers.Observer).
func (m *Metrics) CallRetried(kind contract.Kind) {
	m.callRetries.WithLabelValues(string(kind)).Inc()
}

// ValidationWaited records one delivery's polling of Toll's validation
// status and its status calls (handlers.Observer).
func (m *Metrics) ValidationWaited(kind contract.Kind, verdict string, d time.Duration, polls int) {
	m.validationWait.WithLabelValues(string(kind), label(verdict)).Observe(d.Seconds())
	m.validationPolls.WithLabelValues(string(kind)).Add(float64(polls))
}

// Polled records a page of a routing feed; caughtUp means the page was
// the feed's last (routing.Observer).
func (m *Metrics) Polled(tenant string, feed contract.Feed, signals int, caughtUp bool) {
	m.routingSignals.WithLabelValues(tenant, string(feed)).Add(float64(signals))
	if caughtUp {
		m.routingLag.caughtUp(tenant, string(feed))
	}
}

// PollFailed counts a failed poll of a routing feed (routing.Observer).
func (m *Metrics) PollFailed(tenant string, feed contract.Feed) {
	m.routingFailures.WithLabelValues(tenant, string(feed)).Inc()
}

// observeHTTP records one HTTP exchange; status 0 means no response.
func (m *Metrics) observeHTTP(method, endpoint string, status int, d time.Duration) {
	m.httpDuration.WithLabelValues(method, endpoint, statusLabel(status)).Observe(d.Seconds())
}

// statusLabel is the code label of an HTTP status: the code itself (a
// bounded set, and 404 "not ready" must stay apart from 400 "rejected"),
// "error" when no response came, "other" for anything outside HTTP's
// range.
func statusLabel(status int) string {
	switch {
	case status == 0:
		return "error"
	case status < 100 || status > 599:
		return "other"
	}
	return strconv.Itoa(status)
}

// routingLag reports, per feed, the seconds since the feed was last read
// to its end: 0 to the poll interval while polling works, growing while
// Toll or the stream is unreachable or the poller is behind.
type routingLag struct {
	desc *prometheus.Desc
	now  func() time.Time

	mu   sync.Mutex
	last map[[2]string]time.Time // by tenant, feed
}

func newRoutingLag(now func() time.Time) *routingLag {
	return &routingLag{
		desc: prometheus.NewDesc(namespace+"_routing_lag_seconds",
			"Seconds since the routing feed was last read to its end.", []string{"tenant", "feed"}, nil),
		now:  now,
		last: map[[2]string]time.Time{},
	}
}

func (r *routingLag) caughtUp(tenant, feed string) {
	r.mu.Lock()
	r.last[[2]string{tenant, feed}] = r.now()
	r.mu.Unlock()
}

// Describe implements prometheus.Collector.
func (r *routingLag) Describe(ch chan<- *prometheus.Desc) { ch <- r.desc }

// Collect implements prometheus.Collector.
func (r *routingLag) Collect(ch chan<- prometheus.Metric) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	for k, t := range r.last {
		ch <- prometheus.MustNewConstMetric(r.desc, prometheus.GaugeValue, now.Sub(t).Seconds(), k[0], k[1])
	}
}

// inFlight reports the deliveries being worked on by kind and tenant
// label. It counts by the raw tenant and labels at scrape time, so that a
// delivery started before SetTenants changed its tenant's label and
// finished after it does not leave one label one too high and the other
// one too low. Lanes are forgotten when their count returns to zero, so
// memory is bounded by the deliveries in flight whatever tenants are
// sent; a (kind, label) pair once reported stays, at 0, like any gauge.
type inFlight struct {
	desc  *prometheus.Desc
	label func(tenant string) string

	mu    sync.Mutex
	lanes map[lane]int
	// known are the (kind, label) pairs reported so far, bounded by the
	// kinds times the tenant labels.
	known map[lane]struct{}
}

// lane is a kind and a tenant, raw or as labelled.
type lane struct{ kind, tenant string }

func newInFlight(label func(string) string) *inFlight {
	return &inFlight{
		desc: prometheus.NewDesc(namespace+"_messages_in_flight",
			"Deliveries being worked on now.", []string{"kind", "tenant"}, nil),
		label: label,
		lanes: map[lane]int{},
		known: map[lane]struct{}{},
	}
}

func (f *inFlight) started(kind contract.Kind, tenant string) {
	// Labelled now too, so that a delivery shorter than the scrape
	// interval still makes its pair known (reported at 0).
	l := lane{string(kind), f.label(tenant)}
	f.mu.Lock()
	f.lanes[lane{string(kind), tenant}]++
	if _, ok := f.known[l]; !ok {
		f.known[l] = struct{}{}
	}
	f.mu.Unlock()
}

// done ends a delivery; one without a matching started changes nothing,
// rather than drive the gauge below zero.
func (f *inFlight) done(kind contract.Kind, tenant string) {
	k := lane{string(kind), tenant}
	f.mu.Lock()
	if n := f.lanes[k]; n > 1 {
		f.lanes[k] = n - 1
	} else {
		delete(f.lanes, k)
	}
	f.mu.Unlock()
}

// Describe implements prometheus.Collector.
func (f *inFlight) Describe(ch chan<- *prometheus.Desc) { ch <- f.desc }

// Collect implements prometheus.Collector.
func (f *inFlight) Collect(ch chan<- prometheus.Metric) {
	f.mu.Lock()
	sums := make(map[lane]float64, len(f.known))
	for l := range f.known {
		sums[l] = 0
	}
	for k, n := range f.lanes {
		l := lane{k.kind, f.label(k.tenant)}
		sums[l] += float64(n)
		f.known[l] = struct{}{}
	}
	f.mu.Unlock()
	for l, n := range sums {
		ch <- prometheus.MustNewConstMetric(f.desc, prometheus.GaugeValue, n, l.kind, l.tenant)
	}
}
