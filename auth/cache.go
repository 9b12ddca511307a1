package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/digitoll/digitoll-worker/failure"
)

// Defaults for CacheConfig.
const (
	// DefaultRefreshMargin is how long before expiry a Toll token is
	// replaced; Toll advises exchanging anew about a minute before.
	DefaultRefreshMargin = 60 * time.Second
	// DefaultFetchTimeout bounds one shared fetch (grant plus exchange),
	// which runs detached from the callers waiting for it.
	DefaultFetchTimeout = 30 * time.Second
	// DefaultFailureBackoff is how long after a first failed fetch a
	// scope's callers get that failure back instead of a new fetch.
	DefaultFailureBackoff = time.Second
	// DefaultMaxFailureBackoff caps the wait between fetches while they
	// keep failing. It is the worker's default probe interval: a paused
	// kind's probe then finds the wait over and makes one real attempt,
	// so during an outage a tenant×scope costs Maskinporten about one
	// grant per probe, and a recovery is seen at the next probe.
	DefaultMaxFailureBackoff = 15 * time.Second
	// maxRetryAfter bounds how long a Retry-After from Maskinporten or
	// Toll can hold a scope's fetches back, so that a wrong header cannot
	// stop a tenant for hours.
	maxRetryAfter = 5 * time.Minute
	// failureBackoffJitter spreads the waits (±10 %) so that the scopes
	// and tenants that failed together do not all come back together.
	failureBackoffJitter = 0.1
)

// MaskinportenTokens fetches Maskinporten access tokens; *Maskinporten
// implements it.
type MaskinportenTokens interface {
	Token(ctx context.Context, scopes ...string) (Token, error)
}

// TokenExchanger trades a Maskinporten token for a Toll token; *Exchanger
// implements it.
type TokenExchanger interface {
	Exchange(ctx context.Context, maskinportenToken string) (Token, error)
}

// CacheConfig configures a Cache. Maskinporten and Exchanger are required;
// the rest have defaults.
type CacheConfig struct {
	// Maskinporten provides the Maskinporten token for each fetch.
	Maskinporten MaskinportenTokens
	// Exchanger trades it for the Toll token that is cached.
	Exchanger TokenExchanger
	// RefreshMargin is how long before its expiry a token stops being
	// handed out; 0 or less means DefaultRefreshMargin. A token that lives less
	// than twice the margin is reused until half its lifetime instead,
	// so a short-lived token is still worth caching.
	RefreshMargin time.Duration
	// FetchTimeout bounds one fetch; 0 or less means DefaultFetchTimeout.
	FetchTimeout time.Duration
	// FailureBackoff is the wait after a scope's first failed fetch
	// during which Token answers with that failure at once; it doubles
	// with each further failure up to MaxFailureBackoff, and a Retry-After
	// from Maskinporten or Toll lengthens it. 0 or less means
	// DefaultFailureBackoff.
	FailureBackoff time.Duration
	// MaxFailureBackoff caps that wait; 0 or less means
	// DefaultMaxFailureBackoff.
	MaxFailureBackoff time.Duration
	// Now is the clock deciding freshness; nil means time.Now. It should
	// be the clock the Exchanger computes expiries with.
	Now func() time.Time
	// Logger receives debug records of fetches and invalidations; nil
	// discards them. Tokens are never logged.
	Logger *slog.Logger
}

// Cache hands out Toll tokens for one tenant in one environment, one
// cached token per scope. It implements toll.Tokens and is safe for
// concurrent use.
//
// Concurrent callers asking for the same scope share one fetch (one grant,
// one exchange); different scopes fetch independently. A shared fetch runs
// detached from its callers, bounded by FetchTimeout, so a caller that
// gives up does not fail the others.
//
// A failed fetch is remembered per scope: until its backoff has passed,
// Token returns that failure at once (a *BackoffError, classified like the
// failure and carrying the wait as its RetryAfter) rather than asking
// Maskinporten again. Without this, every message waiting for a tenant
// during a Maskinporten outage made grants of its own. The wait grows
// from FailureBackoff to MaxFailureBackoff while fetches keep failing,
// is at least a Retry-After the server sent, and is forgotten at the
// first success. Close cancels fetches in flight.
type Cache struct {
	mp         MaskinportenTokens
	ex         TokenExchanger
	margin     time.Duration
	timeout    time.Duration
	backoff    time.Duration
	maxBackoff time.Duration
	now        func() time.Time
	log        *slog.Logger

	// base is cancelled by Close; every fetch stops with it.
	base   context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	closed bool
	scopes map[string]*scopeState
}

// CacheStats counts what a Cache did for one scope.
type CacheStats struct {
	// Fetches is the number of grant-and-exchange rounds started.
	Fetches int
	// Failures is how many of those failed.
	Failures int
	// Hits is the number of Token calls answered from the cache.
	Hits int
	// BackedOff is the number of Token calls answered with the last
	// failure, without a fetch, because its backoff had not passed.
	BackedOff int
	// Expiry is when the cached token expires; zero while none is
	// cached (none fetched yet, or the last one was invalidated).
	Expiry time.Time
}

type scopeState struct {
	token     Token
	refreshAt time.Time
	flight    *flight
	stats     CacheStats

	// lastErr is the failure of the last fetch, handed back until
	// retryAt; nil once a fetch succeeded.
	lastErr error
	retryAt time.Time
	// waits paces the fetches while they fail; nil before the first
	// failure and after a success.
	waits *backoff.ExponentialBackOff
}

// flight is one fetch in progress; done is closed once token or err is set.
type flight struct {
	done  chan struct{}
	token Token
	err   error
}

// Errors that do not depend on the call.
var (
	errCacheClosed     = failure.Mark(errors.New("auth: token cache closed"), failure.Transient)
	errCacheIncomplete = failure.Mark(errors.New("auth: token cache needs both a Maskinporten client and an Exchanger"), failure.Config)
)

// NewCache returns a Cache fetching through cfg.Maskinporten and
// cfg.Exchanger. A missing client is reported by every Token call as a
// failure.ErrConfig error rather than here, so that wiring stays a plain
// expression. Close is optional: without it, fetches in flight still end
// within FetchTimeout.
func NewCache(cfg CacheConfig) *Cache {
	c := &Cache{
		mp:      cfg.Maskinporten,
		ex:      cfg.Exchanger,
		margin:  cfg.RefreshMargin,
		timeout: cfg.FetchTimeout,
		now:     cfg.Now,
		log:     cfg.Logger,
		scopes:  make(map[string]*scopeState),
	}
	if c.margin <= 0 {
		c.margin = DefaultRefreshMargin
	}
	if c.timeout <= 0 {
		c.timeout = DefaultFetchTimeout
	}
	c.backoff, c.maxBackoff = cfg.FailureBackoff, cfg.MaxFailureBackoff
	if c.backoff <= 0 {
		c.backoff = DefaultFailureBackoff
	}
	if c.maxBackoff <= 0 {
		c.maxBackoff = DefaultMaxFailureBackoff
	}
	c.maxBackoff = max(c.maxBackoff, c.backoff)
	if c.now == nil {
		c.now = time.Now
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.base, c.cancel = context.WithCancel(context.Background())
	return c
}

// Token returns a Toll access token for scope: the cached one while it is
// fresh, else a new one from a fetch shared with every concurrent caller
// for the same scope. If ctx ends first, Token returns ctx's error (wrapped)
// and the fetch carries on for the others. While the backoff after a
// failed fetch lasts, it returns that failure as a *BackoffError without
// fetching.
func (c *Cache) Token(ctx context.Context, scope string) (string, error) {
	if scope == "" {
		return "", failure.Mark(errors.New("auth: token requested for an empty scope"), failure.Config)
	}
	if c.mp == nil || c.ex == nil {
		return "", errCacheIncomplete
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return "", errCacheClosed
	}
	st := c.scopes[scope]
	if st == nil {
		st = &scopeState{}
		c.scopes[scope] = st
	}
	if st.token.AccessToken != "" && c.now().Before(st.refreshAt) {
		st.stats.Hits++
		tok := st.token.AccessToken
		c.mu.Unlock()
		return tok, nil
	}
	f := st.flight
	if f == nil {
		if now := c.now(); st.lastErr != nil && now.Before(st.retryAt) {
			st.stats.BackedOff++
			err := &BackoffError{Scope: scope, Wait: st.retryAt.Sub(now), Err: st.lastErr}
			c.mu.Unlock()
			return "", err
		}
		f = c.startFetch(ctx, scope, st)
	}
	c.mu.Unlock()

	select {
	case <-f.done:
	case <-ctx.Done():
		select {
		case <-f.done: // finished at the same moment: use it
		default:
			return "", fmt.Errorf("auth: waiting for a token for scope %s: %w", scope, ctx.Err())
		}
	}
	if f.err != nil {
		return "", f.err
	}
	return f.token.AccessToken, nil
}

// startFetch launches the shared fetch for scope. c.mu must be held. The
// goroutine is owned by c: it ends within FetchTimeout, or at Close.
func (c *Cache) startFetch(ctx context.Context, scope string, st *scopeState) *flight {
	f := &flight{done: make(chan struct{})}
	st.flight = f
	st.stats.Fetches++
	// Keep the first caller's values (trace context) but not its
	// cancellation: other callers depend on this fetch too.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.timeout)
	stop := context.AfterFunc(c.base, cancel)
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer cancel()
		defer stop()
		start := c.now()
		tok, err := c.fetch(fctx, scope)

		c.mu.Lock()
		defer c.mu.Unlock()
		switch {
		case err != nil && c.base.Err() != nil:
			// Cancelled by Close: says nothing about the endpoints.
			st.stats.Failures++
			f.err = err
		case err != nil:
			st.stats.Failures++
			wait := c.nextWait(st, err)
			st.lastErr, st.retryAt = err, c.now().Add(wait)
			f.err = &BackoffError{Scope: scope, Wait: wait, Err: err}
			c.log.Debug("toll token fetch failed; backing off", "scope", scope, "wait", wait, "error", err)
		default:
			f.token = tok
			st.token = tok
			st.refreshAt = refreshAt(start, tok.Expiry, c.margin)
			st.lastErr, st.retryAt, st.waits = nil, time.Time{}, nil
			c.log.Debug("toll token fetched", "scope", scope, "expiry", tok.Expiry, "refreshAt", st.refreshAt)
		}
		st.flight = nil
		close(f.done)
	}()
	return f
}

// nextWait is how long after the failed fetch err st's callers get err
// back without a new fetch: the next step of the scope's backoff, or the
// server's Retry-After if that is longer (bounded by maxRetryAfter).
// c.mu must be held.
func (c *Cache) nextWait(st *scopeState, err error) time.Duration {
	if st.waits == nil {
		st.waits = backoff.NewExponentialBackOff(
			backoff.WithInitialInterval(c.backoff),
			backoff.WithMultiplier(2),
			backoff.WithRandomizationFactor(failureBackoffJitter),
			backoff.WithMaxInterval(c.maxBackoff),
			// Never Stop: the cache backs off for as long as the
			// outage lasts; giving up is the worker's decision.
			backoff.WithMaxElapsedTime(0),
		)
	}
	// The jitter may go above the interval; the cap is a promise (a
	// probe every MaxFailureBackoff always makes a real attempt).
	wait := min(st.waits.NextBackOff(), c.maxBackoff)
	if ra, ok := failure.RetryAfter(err); ok && ra > wait {
		wait = min(ra, maxRetryAfter)
	}
	return wait
}

// BackoffError is a token fetch failure for Scope, returned to the
// callers of the fetch and, without a new fetch, to every caller for
// Scope during the following Wait. It classifies as Err does (transient
// for an outage, config for a refused grant) and tells failure.RetryAfter
// the time left, so that the worker sets a message aside until a new
// fetch can be made rather than retrying into the same answer.
type BackoffError struct {
	// Scope is the scope the token was for.
	Scope string
	// Wait is the time from this error until the next fetch may start.
	Wait time.Duration
	// Err is the fetch's failure.
	Err error
}

// Error describes the failure and when the next attempt may be made.
func (e *BackoffError) Error() string {
	return fmt.Sprintf("%v (next token fetch in %s)", e.Err, e.Wait.Round(time.Millisecond))
}

// Unwrap returns the fetch's failure.
func (e *BackoffError) Unwrap() error { return e.Err }

// RetryAfter is Wait (failure.RetryAfter reads it).
func (e *BackoffError) RetryAfter() time.Duration { return e.Wait }

// fetch is one round: a Maskinporten token for scope, exchanged at Toll.
func (c *Cache) fetch(ctx context.Context, scope string) (Token, error) {
	mp, err := c.mp.Token(ctx, scope)
	if err != nil {
		return Token{}, fmt.Errorf("auth: maskinporten token for scope %s: %w", scope, err)
	}
	tok, err := c.ex.Exchange(ctx, mp.AccessToken)
	if err != nil {
		return Token{}, fmt.Errorf("auth: toll token exchange for scope %s: %w", scope, err)
	}
	if tok.Scope == "" {
		tok.Scope = scope
	}
	return tok, nil
}

// refreshAt is when a token fetched at start and expiring at expiry stops
// being handed out: margin before expiry, or at half its lifetime when it
// lives less than two margins. A token that is already expired is never
// served from the cache.
func refreshAt(start, expiry time.Time, margin time.Duration) time.Time {
	life := expiry.Sub(start)
	switch {
	case life <= 0:
		return start
	case life < 2*margin:
		return start.Add(life / 2)
	default:
		return expiry.Add(-margin)
	}
}

// Invalidate drops scope's cached token if it is still token, so the next
// Token call fetches anew. Comparing the token means a late 401 for an
// older token cannot evict a fresh one.
func (c *Cache) Invalidate(scope, token string) {
	if token == "" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.scopes[scope]
	if st == nil || st.token.AccessToken != token {
		return
	}
	st.token = Token{}
	st.refreshAt = time.Time{}
	c.log.Debug("toll token invalidated", "scope", scope)
}

// Stats returns the counters for scope and the expiry of its cached
// token.
func (c *Cache) Stats(scope string) CacheStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st := c.scopes[scope]; st != nil {
		out := st.stats
		if st.token.AccessToken != "" {
			out.Expiry = st.token.Expiry
		}
		return out
	}
	return CacheStats{}
}

// Scopes lists, sorted, the scopes tokens have been asked for.
func (c *Cache) Scopes() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, 0, len(c.scopes))
	for s := range c.scopes {
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// Close cancels fetches in flight, waits for them to end and makes further
// Token calls fail. It is safe to call more than once.
func (c *Cache) Close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
}
