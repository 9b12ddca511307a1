package routing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/failure"
	"github.com/digitoll/digitoll-worker/toll"
)

// Headers of a routing message, besides Nats-Msg-Id "<tenant>/<id>" and
// contract.HeaderResultTenant (Digitoll-Tenant). The body is the signal as
// Toll sent it.
const (
	// HeaderRouting is routingResult.routing: TO_CONTROL, TO_ENTRY or
	// another value Toll sends; absent if the signal has none.
	HeaderRouting = "Digitoll-Routing"
	// HeaderRoutingID is routingResult.id.
	HeaderRoutingID = "Digitoll-Routing-Id"
	// HeaderRoutingAfter is the marker the signal's page was fetched
	// after; absent for the first page of a feed. The poller reads it
	// back to find its place after a crash (see the package
	// documentation).
	HeaderRoutingAfter = "Digitoll-Routing-After"
)

// Defaults of Poller.
const (
	DefaultInterval         = 30 * time.Second
	DefaultPageSize         = 1000
	DefaultRetryMin         = time.Second
	DefaultRetryMax         = time.Minute
	DefaultConfigRetryDelay = 5 * time.Minute
)

// ErrInvalidConfig is wrapped by the errors Run returns for a bad Poller.
var ErrInvalidConfig = errors.New("invalid routing poller config")

// ErrAlreadyRunning is returned by Run while the Poller is running.
var ErrAlreadyRunning = errors.New("routing poller is already running")

// Toll reads a routing feed; *toll.Client is the implementation.
type Toll interface {
	// Routing returns at most one page of signals after marker (from the
	// start when marker is empty), in feed order.
	Routing(ctx context.Context, feed contract.Feed, marker string) ([]toll.RoutingSignal, error)
}

// Observer is told how polling goes, for metrics (*telemetry.Metrics
// implements it). Calls must be quick and safe for concurrent use: each
// feed is polled by a goroutine of its own.
type Observer interface {
	// Polled is called after a page of signals was published and its
	// marker saved; caughtUp means it was the feed's last page for now.
	Polled(tenant string, feed contract.Feed, signals int, caughtUp bool)
	// PollFailed is called when a poll failed and will be retried.
	PollFailed(tenant string, feed contract.Feed)
}

// nopObserver stands in for a nil Observer.
type nopObserver struct{}

func (nopObserver) Polled(string, contract.Feed, int, bool) {}
func (nopObserver) PollFailed(string, contract.Feed)        {}

// Poller carries one tenant's routing feeds into the stream
// DIGITOLL_ROUTING. Fill in the fields and call Run; zero values take the
// documented defaults. Run reads the fields once, when it starts.
type Poller struct {
	// JetStream publishes the signals and reads the stream's last
	// messages. Required.
	JetStream jetstream.JetStream
	// Markers is the MarkerBucket (EnsureBucket). Required.
	Markers jetstream.KeyValue
	// Tenant names the subjects and marker keys; a valid tenant name.
	Tenant string
	// Feeds are the feeds to poll; default both, house-consignment and
	// transport.
	Feeds []contract.Feed
	// Toll reads the feeds with the tenant's credentials. Required.
	Toll Toll
	// Interval is the pause after a page that was not full; default 30 s.
	Interval time.Duration
	// PageSize is how many signals Toll answers with at most; a page that
	// full is followed at once by the next. Default 1000, Toll's.
	PageSize int
	// RetryMin and RetryMax bound the exponential backoff after a
	// transient failure; default 1 s and 1 min. A longer Retry-After
	// from Toll wins.
	RetryMin, RetryMax time.Duration
	// ConfigRetryDelay is the pause after a configuration or permanent
	// failure, which an operator must fix; default 5 min.
	ConfigRetryDelay time.Duration
	// Logger receives the poller's logs; nil discards them.
	Logger *slog.Logger
	// Observer is told how polling goes; nil: nobody.
	Observer Observer

	running atomic.Bool
	// paused holds the feeds paused by a failure an operator must fix,
	// for Health.
	paused pausedFeeds
	// hooks let tests stop the poller where a crash matters.
	hooks hooks
}

// pausedFeeds is the reason each paused feed is paused, safe for
// concurrent use: each feed's goroutine writes its own entry, Health reads.
type pausedFeeds struct {
	mu     sync.Mutex
	reason map[contract.Feed]string
}

func (p *pausedFeeds) set(feed contract.Feed, reason string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.reason == nil {
		p.reason = map[contract.Feed]string{}
	}
	p.reason[feed] = reason
}

func (p *pausedFeeds) clear(feed contract.Feed) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.reason, feed)
}

// Health is nil while every feed is polling or retrying a transient
// failure, and an error naming each feed paused by a failure only an
// operator can fix (the entry scope not granted, a signal without an id),
// with the reason, until a poll of that feed succeeds again. It is the
// routing check of the worker's /readyz.
func (p *Poller) Health() error {
	p.paused.mu.Lock()
	defer p.paused.mu.Unlock()
	if len(p.paused.reason) == 0 {
		return nil
	}
	feeds := slices.Sorted(maps.Keys(p.paused.reason))
	parts := make([]string, len(feeds))
	for i, f := range feeds {
		parts[i] = fmt.Sprintf("feed %s paused: %s", f, p.paused.reason[f])
	}
	return errors.New(strings.Join(parts, "; "))
}

// hooks are called, when set, at the points of a page where a crash
// leaves different records behind.
type hooks struct {
	// published is called after each PubAck.
	published func(feed contract.Feed, id string, ack *jetstream.PubAck)
	// beforeSave is called after a page is published, before its marker
	// is saved; an error stops the page there.
	beforeSave func(feed contract.Feed, marker string) error
	// saved is called after a marker is saved.
	saved func(feed contract.Feed, marker string)
}

// settings are a Poller's fields with defaults applied, fixed for a Run.
type settings struct {
	js          jetstream.JetStream
	kv          jetstream.KeyValue
	tenant      string
	feeds       []contract.Feed
	toll        Toll
	interval    time.Duration
	pageSize    int
	retryMin    time.Duration
	retryMax    time.Duration
	configRetry time.Duration
	logger      *slog.Logger
	observer    Observer
	hooks       hooks
	paused      *pausedFeeds
}

func (p *Poller) settings() (*settings, error) {
	s := &settings{
		js: p.JetStream, kv: p.Markers, tenant: p.Tenant, feeds: slices.Clone(p.Feeds), toll: p.Toll,
		interval: p.Interval, pageSize: p.PageSize, retryMin: p.RetryMin, retryMax: p.RetryMax,
		configRetry: p.ConfigRetryDelay, logger: p.Logger, observer: p.Observer, hooks: p.hooks,
		paused: &p.paused,
	}
	var problems []string
	if s.js == nil {
		problems = append(problems, "no JetStream")
	}
	if s.kv == nil {
		problems = append(problems, "no marker bucket")
	}
	if s.toll == nil {
		problems = append(problems, "no Toll client")
	}
	if !contract.ValidTenant(s.tenant) {
		problems = append(problems, fmt.Sprintf("tenant %q is not 1-63 characters of a-z, 0-9 and '-'", s.tenant))
	}
	if len(s.feeds) == 0 {
		s.feeds = []contract.Feed{contract.FeedHouseConsignment, contract.FeedTransport}
	}
	for i, f := range s.feeds {
		if f != contract.FeedHouseConsignment && f != contract.FeedTransport {
			problems = append(problems, fmt.Sprintf("unknown feed %q", f))
		} else if slices.Contains(s.feeds[:i], f) {
			problems = append(problems, fmt.Sprintf("feed %q listed twice", f))
		}
	}
	if s.interval < 0 || s.pageSize < 0 || s.retryMin < 0 || s.retryMax < 0 || s.configRetry < 0 {
		problems = append(problems, "negative interval, page size or retry delay")
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("%w: %s", ErrInvalidConfig, strings.Join(problems, "; "))
	}
	s.interval = orDefault(s.interval, DefaultInterval)
	s.retryMin = orDefault(s.retryMin, DefaultRetryMin)
	s.retryMax = max(orDefault(s.retryMax, DefaultRetryMax), s.retryMin)
	s.configRetry = orDefault(s.configRetry, DefaultConfigRetryDelay)
	if s.pageSize == 0 {
		s.pageSize = DefaultPageSize
	}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	if s.observer == nil {
		s.observer = nopObserver{}
	}
	return s, nil
}

// orDefault returns d, or def when d is zero.
func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// Run polls every feed, each in a goroutine of its own, until ctx is done,
// then waits for them and returns nil. Failures do not end it: they are
// retried (see the package documentation). It returns an error wrapping
// ErrInvalidConfig for a bad Poller, and ErrAlreadyRunning if called
// again while running.
func (p *Poller) Run(ctx context.Context) error {
	s, err := p.settings()
	if err != nil {
		return err
	}
	if !p.running.CompareAndSwap(false, true) {
		return ErrAlreadyRunning
	}
	defer p.running.Store(false)
	var wg sync.WaitGroup
	for _, feed := range s.feeds {
		f := &feedPoller{
			settings: s,
			feed:     feed,
			subject:  contract.RoutingSubject(feed, s.tenant),
			key:      MarkerKey(s.tenant, feed),
			log:      s.logger.With("tenant", s.tenant, "feed", string(feed)),
		}
		wg.Go(func() { f.run(ctx) })
	}
	wg.Wait()
	return nil
}

// feedPoller polls one feed of one tenant.
type feedPoller struct {
	*settings
	feed    contract.Feed
	subject string
	key     string
	log     *slog.Logger
	// restarted is set when the poller went back to the start of the
	// feed because Toll did not know its marker, until a page after a
	// marker is read again: a marker refused even then is not the feed's
	// reset, and restarting again would only repeat the first page.
	restarted bool
}

// run polls until ctx is done. After any failure it forgets its place and
// reads it again from the records, which are the only truth after a
// publish or save whose outcome is unknown.
func (f *feedPoller) run(ctx context.Context) {
	retry := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(f.retryMin),
		backoff.WithMaxInterval(f.retryMax),
		// Never give up: a feed cannot be skipped, only waited for.
		backoff.WithMaxElapsedTime(0),
	)
	var pl *place
	started := false
	// Bounded by ctx: every pass ends in wait, which returns ctx's error
	// once it is done.
	for {
		pause, err := f.step(ctx, &pl)
		if pl != nil && !started {
			started = true
			f.log.InfoContext(ctx, "routing feed: polling", "marker", pl.marker)
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			pl = nil
			pause = f.failed(ctx, err, retry)
		} else {
			retry.Reset()
			f.paused.clear(f.feed)
		}
		if wait(ctx, pause) != nil {
			return
		}
	}
}

// step reads the place if it is not known, then carries one page, and
// returns the pause before the next.
func (f *feedPoller) step(ctx context.Context, pl **place) (time.Duration, error) {
	if *pl == nil {
		p, err := f.readPlace(ctx)
		if err != nil {
			return 0, err
		}
		*pl = p
	}
	after := (*pl).marker
	n, err := f.page(ctx, *pl)
	if errors.Is(err, toll.ErrUnknownMarker) && after != "" && !f.restarted {
		return 0, f.restart(ctx, *pl, err)
	}
	if err != nil {
		return 0, err
	}
	if after != "" {
		f.restarted = false
	}
	caughtUp := n < f.pageSize
	f.observer.Polled(f.tenant, f.feed, n, caughtUp)
	if !caughtUp {
		return 0, nil
	}
	return f.interval, nil
}

// restart moves pl to the start of the feed, whose marker Toll does not
// know (cause): the feed was reset, as a restarted simulator's is, and
// what it holds now can only be read from its beginning. The empty marker
// is saved first, so that a crash before the first page resumes there too
// (an empty marker defers to the stream only for signals fetched after
// it, see resumeFrom). Signals already published may come again: within
// the stream's duplicate window their Nats-Msg-Id drops them, after it
// they are stored a second time.
func (f *feedPoller) restart(ctx context.Context, pl *place, cause error) error {
	f.log.WarnContext(ctx, "routing feed: Toll does not know the marker (the feed was reset); reading the feed again from the beginning, so signals may repeat",
		"marker", pl.marker, "error", cause.Error())
	if err := f.save(ctx, pl, ""); err != nil {
		return err
	}
	f.restarted = true
	return nil
}

// failed logs err and returns the pause before trying again.
func (f *feedPoller) failed(ctx context.Context, err error, retry *backoff.ExponentialBackOff) time.Duration {
	f.observer.PollFailed(f.tenant, f.feed)
	switch class := failure.Classify(err); class {
	case failure.Transient:
		pause := retry.NextBackOff()
		if ra, ok := failure.RetryAfter(err); ok && ra > pause {
			pause = ra
		}
		f.log.WarnContext(ctx, "routing feed: transient failure, retrying", "error", err.Error(), "retry_in", pause)
		return pause
	default:
		f.paused.set(f.feed, "a "+class.String()+" failure that only an operator can fix: "+err.Error())
		f.log.ErrorContext(ctx, "routing feed paused by a "+class.String()+" failure that only an operator can fix",
			"error", err.Error(), "retry_in", f.configRetry)
		return f.configRetry
	}
}

// page carries the page after pl's marker into the stream and moves pl to
// its last signal. It returns the page's length.
func (f *feedPoller) page(ctx context.Context, pl *place) (int, error) {
	signals, err := f.toll.Routing(ctx, f.feed, pl.marker)
	if err != nil {
		return 0, err
	}
	if len(signals) == 0 {
		return 0, nil
	}
	for _, s := range signals {
		if s.ID == pl.marker {
			// Toll pages strictly after the marker; should a page ever
			// start with the marker's own signal, it is published
			// already.
			continue
		}
		if err := f.publish(ctx, s, pl.marker); err != nil {
			return 0, err
		}
	}
	last := signals[len(signals)-1].ID
	if f.hooks.beforeSave != nil {
		if err := f.hooks.beforeSave(f.feed, last); err != nil {
			return 0, err
		}
	}
	if err := f.save(ctx, pl, last); err != nil {
		return 0, err
	}
	if f.hooks.saved != nil {
		f.hooks.saved(f.feed, last)
	}
	f.log.DebugContext(ctx, "routing feed: page published", "signals", len(signals), "marker", last)
	return len(signals), nil
}

// publish stores one signal and waits for its PubAck. after is the marker
// its page was fetched after.
func (f *feedPoller) publish(ctx context.Context, s toll.RoutingSignal, after string) error {
	if s.ID == "" || !headerSafe(s.ID) || !headerSafe(s.Routing) {
		return fmt.Errorf("routing signal %q: its id or routing value %q is empty or holds control characters, which a NATS header cannot carry: %w", s.ID, s.Routing, failure.ErrPermanent)
	}
	msg := &nats.Msg{Subject: f.subject, Data: s.Raw, Header: nats.Header{}}
	msg.Header.Set(HeaderRoutingID, s.ID)
	if s.Routing != "" {
		msg.Header.Set(HeaderRouting, s.Routing)
	}
	if after != "" {
		msg.Header.Set(HeaderRoutingAfter, after)
	}
	msg.Header.Set(contract.HeaderResultTenant, f.tenant)
	ack, err := f.js.PublishMsg(ctx, msg,
		jetstream.WithMsgID(contract.MsgID(f.tenant, s.ID)),
		jetstream.WithExpectStream(contract.StreamRouting))
	if err != nil {
		return fmt.Errorf("publish routing signal %s to %s: %w", s.ID, f.subject, err)
	}
	if f.hooks.published != nil {
		f.hooks.published(f.feed, s.ID, ack)
	}
	return nil
}

// headerSafe reports whether v can be a NATS header value: no control
// characters, which would break the header block.
func headerSafe(v string) bool {
	return !strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f })
}

// wait pauses for d or until ctx is done, and returns ctx's error in the
// latter case.
func wait(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
