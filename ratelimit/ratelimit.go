// Package ratelimit keeps the worker's calls to Toll under a rate of its
// own choosing, per API, and slows down when Toll says it is too fast.
//
// Toll documents no rate limits; it may still answer 429. A worker with
// hundreds of messages in flight, most of them polling validation status,
// would otherwise turn one busy minute into a storm of 429s and retries.
// Transport is an http.RoundTripper that gives each API a token bucket
// (golang.org/x/time/rate). A 429 halves that API's rate (once per round
// of requests, not once per answer), stops the API for its Retry-After,
// and after a hold period the rate climbs back linearly to the configured
// one. Other APIs are not slowed: road's 429s do not hold up documents.
package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Defaults of Config.
const (
	DefaultHold          = 30 * time.Second
	DefaultRecovery      = 2 * time.Minute
	DefaultMaxRetryAfter = 5 * time.Minute
	// minRateShare floors a halved rate at this share of the configured
	// one, so that an API keeps being tried and can recover.
	minRateShare = 1.0 / 64
	// maxBlockWaits bounds how often one request waits out a Retry-After
	// that a newer 429 extended while it waited.
	maxBlockWaits = 8
)

// ErrInvalidConfig is wrapped by the errors of New.
var ErrInvalidConfig = errors.New("invalid rate limit config")

// Config configures a Transport.
type Config struct {
	// Base is the Toll API root, e.g. "https://api.toll.no/api". Only
	// requests below it are limited; the API of a request is the first
	// two path segments below it (movement/road, movement/air,
	// movement/presentation, movement/routing, goodsdeclaration/document,
	// access/external), so a declaration API and its query API share one
	// bucket. Required.
	Base string
	// Rate is the requests per second allowed to each API. Required,
	// above 0.
	Rate float64
	// Burst is how many requests an idle API may receive at once;
	// default the larger of 1 and Rate/2.
	Burst int
	// Hold is how long a halved rate stays before it recovers; default
	// DefaultHold.
	Hold time.Duration
	// Recovery is how long the rate takes after Hold to climb back
	// linearly to Rate; default DefaultRecovery.
	Recovery time.Duration
	// MaxRetryAfter caps how long one Retry-After stops an API; default
	// DefaultMaxRetryAfter.
	MaxRetryAfter time.Duration
	// Logger receives a line whenever an API is slowed down; nil
	// discards.
	Logger *slog.Logger
	// Now is the clock of the limits; nil means time.Now.
	Now func() time.Time
	// CallerWaits says that the caller calls Wait before each request,
	// so RoundTrip only watches answers for 429. A caller that must get
	// a short-lived credential for the request (a Toll token) waits
	// first and fetches the credential after, so that the wait cannot
	// outlive the credential.
	CallerWaits bool
}

// Transport limits the requests it passes to the next RoundTripper. Safe
// for concurrent use.
type Transport struct {
	next http.RoundTripper
	cfg  Config
	host string
	// prefix is the base URL's path with a trailing slash.
	prefix string

	mu   sync.Mutex
	apis map[string]*api
}

// api is the limit of one API.
type api struct {
	lim *rate.Limiter
	// lowered is the rate set by the last decrease, at decreasedAt; zero
	// time: never decreased, or recovered since.
	lowered     float64
	decreasedAt time.Time
	// blockedUntil is the end of the last Retry-After.
	blockedUntil time.Time
}

// New returns a Transport that limits the requests below cfg.Base before
// passing them to next (http.DefaultTransport when nil).
func New(next http.RoundTripper, cfg Config) (*Transport, error) {
	u, err := url.Parse(cfg.Base)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("%w: Base %q is not an absolute URL", ErrInvalidConfig, cfg.Base)
	}
	if cfg.Rate <= 0 {
		return nil, fmt.Errorf("%w: Rate %g is not above 0", ErrInvalidConfig, cfg.Rate)
	}
	if cfg.Burst < 0 || cfg.Hold < 0 || cfg.Recovery < 0 || cfg.MaxRetryAfter < 0 {
		return nil, fmt.Errorf("%w: negative Burst, Hold, Recovery or MaxRetryAfter", ErrInvalidConfig)
	}
	if cfg.Burst == 0 {
		cfg.Burst = max(1, int(cfg.Rate/2))
	}
	if cfg.Hold == 0 {
		cfg.Hold = DefaultHold
	}
	if cfg.Recovery == 0 {
		cfg.Recovery = DefaultRecovery
	}
	if cfg.MaxRetryAfter == 0 {
		cfg.MaxRetryAfter = DefaultMaxRetryAfter
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if next == nil {
		next = http.DefaultTransport
	}
	return &Transport{
		next:   next,
		cfg:    cfg,
		host:   u.Host,
		prefix: strings.TrimSuffix(u.Path, "/") + "/",
		apis:   map[string]*api{},
	}, nil
}

// LimitedError is returned for a request that could not be sent before its
// context's deadline because its API is slowed down. RetryAfter tells when
// the API takes requests again; the failure package reads it.
type LimitedError struct {
	API  string
	Wait time.Duration
}

// Error says which API is limited and for how long.
func (e *LimitedError) Error() string {
	return fmt.Sprintf("ratelimit: %s takes no request for %s, past the request's deadline", e.API, e.Wait.Round(time.Millisecond))
}

// RetryAfter is how long until the API takes requests again.
func (e *LimitedError) RetryAfter() time.Duration { return e.Wait }

// RoundTrip waits until the request's API may be called, sends the
// request, and slows the API down when the answer is 429.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	name := t.apiOf(req.URL)
	if name == "" {
		return t.next.RoundTrip(req)
	}
	if !t.cfg.CallerWaits {
		if err := t.wait(req.Context(), name); err != nil {
			// A RoundTripper closes the body, also when it sends nothing.
			if req.Body != nil {
				req.Body.Close()
			}
			return nil, err
		}
	}
	sent := t.cfg.Now()
	resp, err := t.next.RoundTrip(req)
	if err == nil && resp.StatusCode == http.StatusTooManyRequests {
		t.slowDown(name, sent, retryAfter(resp.Header.Get("Retry-After"), t.cfg.Now()))
	}
	return resp, err
}

// Wait blocks until a request to u may be sent: past its API's
// Retry-After, and with a token of its bucket. Requests outside Base do
// not wait. Callers that set CallerWaits call it before each request.
func (t *Transport) Wait(ctx context.Context, u *url.URL) error {
	name := t.apiOf(u)
	if name == "" {
		return nil
	}
	return t.wait(ctx, name)
}

// wait blocks until name may receive a request: past its Retry-After, and
// with a token of its bucket.
func (t *Transport) wait(ctx context.Context, name string) error {
	for range maxBlockWaits {
		t.mu.Lock()
		now := t.cfg.Now()
		a := t.apiLocked(name, now)
		if blocked := a.blockedUntil.Sub(now); blocked > 0 {
			t.mu.Unlock()
			if err := sleep(ctx, name, blocked); err != nil {
				return err
			}
			continue
		}
		r := a.lim.ReserveN(now, 1)
		delay := r.DelayFrom(now)
		t.mu.Unlock()
		if err := sleep(ctx, name, delay); err != nil {
			r.CancelAt(t.cfg.Now())
			return err
		}
		return nil
	}
	return &LimitedError{API: name, Wait: t.cfg.MaxRetryAfter}
}

// sleep waits d, or fails at once with a *LimitedError when ctx's deadline
// comes first, or with ctx's error when it is cancelled.
func sleep(ctx context.Context, name string, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < d {
		return &LimitedError{API: name, Wait: d}
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// slowDown halves name's rate, unless the request was sent before the
// last decrease (its 429 belongs to the round already answered), and stops
// the API for retryAfter.
func (t *Transport) slowDown(name string, sent time.Time, retryAfter time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.cfg.Now()
	a := t.apiLocked(name, now)
	if a.decreasedAt.IsZero() || sent.After(a.decreasedAt) {
		a.lowered = max(a.rateAt(now, t.cfg)/2, t.cfg.Rate*minRateShare)
		a.decreasedAt = now
		a.lim.SetLimitAt(now, rate.Limit(a.lowered))
		t.cfg.Logger.Warn("Toll answered 429: slowing down", "api", name, "rate", a.lowered, "retryAfter", retryAfter, "recoversAfter", t.cfg.Hold)
	}
	if retryAfter > 0 {
		until := now.Add(min(retryAfter, t.cfg.MaxRetryAfter))
		if until.After(a.blockedUntil) {
			a.blockedUntil = until
		}
	}
}

// State is what a Transport currently allows one API.
type State struct {
	// Rate is the requests per second allowed now.
	Rate float64
	// Slowed tells whether Rate is below the configured rate after a 429.
	Slowed bool
	// BlockedUntil is when the last Retry-After ends; zero if none.
	BlockedUntil time.Time
}

// State returns what the Transport allows the API named name (e.g.
// "movement/road") now; an API not called yet has the configured rate.
func (t *Transport) State(name string) State {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.cfg.Now()
	a, ok := t.apis[name]
	if !ok {
		return State{Rate: t.cfg.Rate}
	}
	r := a.rateAt(now, t.cfg)
	s := State{Rate: r, Slowed: r < t.cfg.Rate}
	if a.blockedUntil.After(now) {
		s.BlockedUntil = a.blockedUntil
	}
	return s
}

// apiLocked returns name's limit with its rate brought up to date. t.mu
// is held.
func (t *Transport) apiLocked(name string, now time.Time) *api {
	a, ok := t.apis[name]
	if !ok {
		a = &api{lim: rate.NewLimiter(rate.Limit(t.cfg.Rate), t.cfg.Burst)}
		t.apis[name] = a
		return a
	}
	r := a.rateAt(now, t.cfg)
	if r >= t.cfg.Rate {
		a.decreasedAt, a.lowered = time.Time{}, 0
	}
	if rate.Limit(r) != a.lim.Limit() {
		a.lim.SetLimitAt(now, rate.Limit(r))
	}
	return a
}

// rateAt is the rate allowed at now: the lowered rate during Hold after
// the last decrease, then rising linearly to the configured rate over
// Recovery.
func (a *api) rateAt(now time.Time, cfg Config) float64 {
	if a.decreasedAt.IsZero() {
		return cfg.Rate
	}
	since := now.Sub(a.decreasedAt) - cfg.Hold
	if since <= 0 {
		return a.lowered
	}
	if since >= cfg.Recovery {
		return cfg.Rate
	}
	return a.lowered + (cfg.Rate-a.lowered)*float64(since)/float64(cfg.Recovery)
}

// apiOf names the API of a request below the base URL: its first two path
// segments below the base path. Other requests (Maskinporten) have none.
func (t *Transport) apiOf(u *url.URL) string {
	if u.Host != t.host || !strings.HasPrefix(u.Path, t.prefix) {
		return ""
	}
	segs := strings.SplitN(strings.TrimPrefix(u.Path, t.prefix), "/", 3)
	if segs[0] == "" {
		return ""
	}
	if len(segs) == 1 || segs[1] == "" {
		return segs[0]
	}
	return segs[0] + "/" + segs[1]
}

// retryAfter reads a Retry-After header in either of its forms (seconds or
// an HTTP date); anything else counts as absent.
func retryAfter(h string, now time.Time) time.Duration {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0
	}
	if n, err := strconv.Atoi(h); err == nil {
		return time.Duration(max(n, 0)) * time.Second
	}
	if at, err := http.ParseTime(h); err == nil && at.After(now) {
		return at.Sub(now)
	}
	return 0
}
