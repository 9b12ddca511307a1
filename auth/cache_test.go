package auth_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/digitoll/digitoll-worker/auth"
	"github.com/digitoll/digitoll-worker/failure"
	"github.com/digitoll/digitoll-worker/internal/clocktest"
	"github.com/digitoll/digitoll-worker/toll"
)

// The worker's Toll client takes a *Cache as its toll.Tokens.
var _ toll.Tokens = (*auth.Cache)(nil)

const scopeRoad = "toll:movement/road/v2"

// cacheEnv is a Cache wired through real clients to a fake IdP.
type cacheEnv struct {
	clock *clocktest.Clock
	idp   *idp
	cache *auth.Cache
}

func newCacheEnv(t *testing.T, margin time.Duration) *cacheEnv {
	t.Helper()
	clock := newClock()
	d := newIDP(t, clock, &pki(t).leafKey.PublicKey)
	mp, ex := d.clients(kidSigner(t))
	c := auth.NewCache(auth.CacheConfig{Maskinporten: mp, Exchanger: ex, RefreshMargin: margin, Now: clock.Now})
	t.Cleanup(c.Close)
	return &cacheEnv{clock: clock, idp: d, cache: c}
}

func (e *cacheEnv) token(t *testing.T, scope string) string {
	t.Helper()
	tok, err := e.cache.Token(context.Background(), scope)
	if err != nil {
		t.Fatalf("Token(%s): %v", scope, err)
	}
	return tok
}

func (e *cacheEnv) wantCounts(t *testing.T, grants, exchanges int64) {
	t.Helper()
	if g, x := e.idp.grants.Load(), e.idp.exchanges.Load(); g != grants || x != exchanges {
		t.Fatalf("grants, exchanges = %d, %d; want %d, %d", g, x, grants, exchanges)
	}
}

// gate makes the exchange for one scope wait until released, and reports
// when such an exchange has started. Released at cleanup at the latest.
type gate struct {
	started chan struct{}
	release chan struct{}
	once    sync.Once
}

func holdExchanges(t *testing.T, d *idp, scope string) *gate {
	g := &gate{started: make(chan struct{}, 100), release: make(chan struct{})}
	d.setExchangeHook(func(w http.ResponseWriter, r *http.Request, s string, n int64) bool {
		if s != scope {
			return false
		}
		g.started <- struct{}{}
		select {
		case <-g.release:
			return false
		case <-r.Context().Done():
			return true
		}
	})
	t.Cleanup(g.open)
	return g
}

func (g *gate) open() { g.once.Do(func() { close(g.release) }) }

func TestCacheReusesToken(t *testing.T) {
	e := newCacheEnv(t, 0)
	first := e.token(t, scopeRoad)
	second := e.token(t, scopeRoad)
	if first != second {
		t.Fatalf("second call got a new token")
	}
	e.wantCounts(t, 1, 1)
	s := e.cache.Stats(scopeRoad)
	if until := time.Until(s.Expiry); until <= 0 || until > time.Hour {
		t.Errorf("stats expiry %s is not the cached token's", s.Expiry)
	}
	if s.Expiry = (time.Time{}); s != (auth.CacheStats{Fetches: 1, Hits: 1}) {
		t.Errorf("stats = %+v", s)
	}
	// Another scope is another token.
	if air := e.token(t, "toll:movement/air"); air == first {
		t.Error("two scopes share a token")
	}
	e.wantCounts(t, 2, 2)
	if got := e.cache.Scopes(); !slices.Equal(got, []string{"toll:movement/air", scopeRoad}) {
		t.Errorf("scopes %v, want air and road, sorted", got)
	}
}

func TestCacheRefreshesBeforeExpiry(t *testing.T) {
	tests := []struct {
		name             string
		lifetime         int
		margin           time.Duration
		stillFresh, next time.Duration // offsets from the fetch
	}{
		// expires_in 120, margin 60: handed out until 60 s before expiry.
		{"margin", 120, 60 * time.Second, 59 * time.Second, 61 * time.Second},
		{"long-lived with default margin", 970, 0, 909 * time.Second, 911 * time.Second},
		// A token living less than two margins is reused for half its life.
		{"short-lived at half-life", 60, 60 * time.Second, 29 * time.Second, 31 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newCacheEnv(t, tc.margin)
			e.idp.setTollLifetime(tc.lifetime)
			first := e.token(t, scopeRoad)

			e.clock.Advance(tc.stillFresh)
			if got := e.token(t, scopeRoad); got != first {
				t.Fatalf("at +%v got a new token, want the cached one", tc.stillFresh)
			}
			e.wantCounts(t, 1, 1)

			e.clock.Advance(tc.next - tc.stillFresh)
			if got := e.token(t, scopeRoad); got == first {
				t.Fatalf("at +%v got the old token, want a fresh one", tc.next)
			}
			e.wantCounts(t, 2, 2)
		})
	}
}

func TestCacheSingleFlight(t *testing.T) {
	e := newCacheEnv(t, 0)
	g := holdExchanges(t, e.idp, scopeRoad)

	const callers = 100
	type result struct {
		tok string
		err error
	}
	results := make(chan result, callers)
	var ready sync.WaitGroup
	ready.Add(callers)
	for range callers {
		go func() {
			ready.Done()
			tok, err := e.cache.Token(context.Background(), scopeRoad)
			results <- result{tok, err}
		}()
	}
	receive(t, g.started, "the exchange to start")
	ready.Wait()
	// While the road exchange hangs, another scope is served.
	if tok := e.token(t, "toll:movement/air"); !strings.Contains(tok, "movement/air") {
		t.Errorf("air token = %q", tok)
	}
	g.open()

	var first string
	for i := range callers {
		r := receive(t, results, "a caller's token")
		if r.err != nil {
			t.Fatalf("caller %d: %v", i, r.err)
		}
		if first == "" {
			first = r.tok
		}
		if r.tok != first {
			t.Fatalf("callers got different tokens: %q and %q", first, r.tok)
		}
	}
	if !strings.Contains(first, "road") {
		t.Errorf("road callers got %q", first)
	}
	// One round for road, one for air.
	e.wantCounts(t, 2, 2)
	if s := e.cache.Stats(scopeRoad); s.Fetches != 1 {
		t.Errorf("road fetches = %d, want 1", s.Fetches)
	}
}

func TestCacheInvalidate(t *testing.T) {
	e := newCacheEnv(t, 0)
	old := e.token(t, scopeRoad)

	e.cache.Invalidate(scopeRoad, old)
	fresh := e.token(t, scopeRoad)
	if fresh == old {
		t.Fatal("Token after Invalidate returned the invalidated token")
	}
	e.wantCounts(t, 2, 2)

	// A late 401 for the old token leaves the fresh one alone.
	e.cache.Invalidate(scopeRoad, old)
	e.cache.Invalidate("toll:movement/air", fresh)
	e.cache.Invalidate(scopeRoad, "")
	if got := e.token(t, scopeRoad); got != fresh {
		t.Fatalf("Invalidate with an old token evicted the fresh one")
	}
	e.wantCounts(t, 2, 2)
}

// A failed fetch is handed back, without a new fetch, until its backoff
// has passed; then the next call fetches again.
func TestCacheBacksOffAfterFailure(t *testing.T) {
	e := newCacheEnv(t, 0)
	e.idp.setExchangeHook(func(w http.ResponseWriter, r *http.Request, scope string, n int64) bool {
		if n == 1 {
			writeJSON(w, 503, map[string]string{"error": "server_error"})
			return true
		}
		return false
	})
	_, err := e.cache.Token(context.Background(), scopeRoad)
	if failure.Classify(err) != failure.Transient {
		t.Fatalf("err = %v, want a transient failure", err)
	}
	var oe *auth.OAuthError
	if !errors.As(err, &oe) || oe.StatusCode != 503 {
		t.Fatalf("err = %v, want the exchange's *OAuthError inside", err)
	}
	if !strings.Contains(err.Error(), scopeRoad) {
		t.Errorf("err %q does not name the scope", err)
	}
	wait, ok := failure.RetryAfter(err)
	if !ok || wait < 900*time.Millisecond || wait > auth.DefaultFailureBackoff*11/10 {
		t.Fatalf("RetryAfter = %s, %t; want about DefaultFailureBackoff", wait, ok)
	}

	// Within the backoff: the same failure, at once, no new round.
	e.clock.Advance(wait / 2)
	_, err = e.cache.Token(context.Background(), scopeRoad)
	var be *auth.BackoffError
	if !errors.As(err, &be) || !errors.As(err, &oe) || failure.Classify(err) != failure.Transient {
		t.Fatalf("within the backoff: err = %v, want the transient *BackoffError of the first failure", err)
	}
	if left, _ := failure.RetryAfter(err); left != wait-wait/2 {
		t.Errorf("within the backoff: RetryAfter = %s, want the %s left", left, wait-wait/2)
	}
	e.wantCounts(t, 1, 1)

	e.clock.Advance(wait - wait/2)
	e.token(t, scopeRoad)
	e.wantCounts(t, 2, 2)
	if s := e.cache.Stats(scopeRoad); s.Fetches != 2 || s.Failures != 1 || s.Hits != 0 || s.BackedOff != 1 || s.Expiry.IsZero() {
		t.Errorf("stats = %+v", s)
	}
}

// The backoff grows while fetches fail, stays within MaxFailureBackoff,
// and starts over after a success.
func TestCacheBackoffGrowsAndResets(t *testing.T) {
	clock := newClock()
	d := newIDP(t, clock, &pki(t).leafKey.PublicKey)
	mp, ex := d.clients(kidSigner(t))
	c := auth.NewCache(auth.CacheConfig{Maskinporten: mp, Exchanger: ex, Now: clock.Now,
		FailureBackoff: time.Second, MaxFailureBackoff: 5 * time.Second})
	t.Cleanup(c.Close)
	var down atomic.Bool
	down.Store(true)
	d.setExchangeHook(func(w http.ResponseWriter, r *http.Request, scope string, n int64) bool {
		if down.Load() {
			writeJSON(w, 503, map[string]string{"error": "server_error"})
			return true
		}
		return false
	})
	fail := func() time.Duration {
		t.Helper()
		_, err := c.Token(context.Background(), scopeRoad)
		wait, ok := failure.RetryAfter(err)
		if err == nil || !ok {
			t.Fatalf("err = %v, want a failure with a RetryAfter", err)
		}
		return wait
	}
	// Nominal waits 1, 2, 4, 5, 5 s with ±10 % jitter, capped at 5 s.
	for i, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second} {
		wait := fail()
		if lo, hi := want*9/10, min(want*11/10, 5*time.Second); wait < lo || wait > hi {
			t.Fatalf("failure %d: wait %s, want within [%s, %s]", i+1, wait, lo, hi)
		}
		clock.Advance(wait)
	}
	if got := d.exchanges.Load(); got != 5 {
		t.Fatalf("exchanges = %d, want one per backoff step (5)", got)
	}
	down.Store(false)
	if _, err := c.Token(context.Background(), scopeRoad); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
	c.Invalidate(scopeRoad, mustToken(t, c))
	down.Store(true)
	if wait := fail(); wait > 1100*time.Millisecond {
		t.Errorf("first failure after a success: wait %s, want the initial backoff again", wait)
	}
}

func mustToken(t *testing.T, c *auth.Cache) string {
	t.Helper()
	tok, err := c.Token(context.Background(), scopeRoad)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// A Retry-After longer than the backoff holds the fetches back for as
// long as it says; refused configuration backs off too.
func TestCacheBackoffHonoursRetryAfterAndConfigFailures(t *testing.T) {
	e := newCacheEnv(t, 0)
	e.idp.setExchangeHook(func(w http.ResponseWriter, r *http.Request, scope string, n int64) bool {
		switch n {
		case 1:
			w.Header().Set("Retry-After", "30")
			writeJSON(w, 429, map[string]string{"error": "slow_down"})
			return true
		case 2:
			writeJSON(w, 403, map[string]string{"error": "invalid_scope"})
			return true
		}
		return false
	})
	_, err := e.cache.Token(context.Background(), scopeRoad)
	if wait, _ := failure.RetryAfter(err); wait != 30*time.Second || failure.Classify(err) != failure.Transient {
		t.Fatalf("err = %v (RetryAfter %s), want transient with Toll's 30 s", err, wait)
	}
	e.clock.Advance(29 * time.Second)
	if _, err := e.cache.Token(context.Background(), scopeRoad); !errors.As(err, new(*auth.BackoffError)) {
		t.Fatalf("before Retry-After passed: err = %v, want a *BackoffError", err)
	}
	e.wantCounts(t, 1, 1)

	e.clock.Advance(time.Second)
	_, err = e.cache.Token(context.Background(), scopeRoad)
	if failure.Classify(err) != failure.Config {
		t.Fatalf("err = %v, want a config failure", err)
	}
	if _, err := e.cache.Token(context.Background(), scopeRoad); failure.Classify(err) != failure.Config || !errors.As(err, new(*auth.BackoffError)) {
		t.Fatalf("right after a config failure: err = %v, want it again from the backoff", err)
	}
	e.wantCounts(t, 2, 2)
}

// A caller that gives up does not decide the shared result: the fetch it
// started fails for the others with the endpoint's error, not with the
// caller's cancellation, and a success after that is served to all.
func TestCacheCancelledCallerDoesNotPoison(t *testing.T) {
	e := newCacheEnv(t, 0)
	g := holdExchanges(t, e.idp, scopeRoad)
	ctx, cancel := context.WithCancel(context.Background())
	errs := make(chan error, 2)
	go func() {
		_, err := e.cache.Token(ctx, scopeRoad)
		errs <- err
	}()
	receive(t, g.started, "the exchange to start")
	go func() {
		_, err := e.cache.Token(context.Background(), scopeRoad)
		errs <- err
	}()
	cancel()
	if err := receive(t, errs, "the cancelled caller"); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled caller: err = %v, want context.Canceled", err)
	}
	g.open()
	if err := receive(t, errs, "the other caller"); err != nil {
		t.Fatalf("the other caller: %v", err)
	}
	if s := e.cache.Stats(scopeRoad); s.Failures != 0 || s.BackedOff != 0 {
		t.Errorf("stats = %+v, want no failure recorded", s)
	}
	e.token(t, scopeRoad)
	e.wantCounts(t, 1, 1)
}

// A failing exchange reaches the caller as an error that holds neither
// the Maskinporten token nor the grant, even when Toll echoes them.
func TestCacheErrorCarriesNoSecrets(t *testing.T) {
	e := newCacheEnv(t, 0)
	sentc := make(chan string, 1)
	e.idp.setExchangeHook(func(w http.ResponseWriter, r *http.Request, scope string, n int64) bool {
		sent := r.PostForm.Get("subject_token")
		sentc <- sent
		writeJSON(w, 401, map[string]string{"error": "invalid_token", "error_description": "token " + sent + " rejected"})
		return true
	})
	_, err := e.cache.Token(context.Background(), scopeRoad)
	if failure.Classify(err) != failure.Config {
		t.Fatalf("err = %v, want a config failure", err)
	}
	sent := receive(t, sentc, "the exchange")
	if sent == "" || strings.Contains(err.Error(), sent) || strings.Contains(err.Error(), "eyJ") {
		t.Fatalf("error %q contains the Maskinporten token %q or a JWT", err, sent)
	}
}

func TestCacheCallerCancellation(t *testing.T) {
	e := newCacheEnv(t, 0)
	g := holdExchanges(t, e.idp, scopeRoad)

	ctx, cancel := context.WithCancel(context.Background())
	errs := make(chan error, 1)
	go func() {
		_, err := e.cache.Token(ctx, scopeRoad)
		errs <- err
	}()
	receive(t, g.started, "the exchange to start")
	cancel()
	if err := receive(t, errs, "the cancelled caller"); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled caller: err = %v, want context.Canceled", err)
	}

	// The shared fetch went on: once released, its token is served
	// without a second round.
	g.open()
	tok := e.token(t, scopeRoad)
	if !strings.HasPrefix(tok, "toll-1-") {
		t.Errorf("token = %q, want the first exchange's", tok)
	}
	e.wantCounts(t, 1, 1)
}

func TestCacheClose(t *testing.T) {
	e := newCacheEnv(t, 0)
	g := holdExchanges(t, e.idp, scopeRoad)
	errs := make(chan error, 1)
	go func() {
		_, err := e.cache.Token(context.Background(), scopeRoad)
		errs <- err
	}()
	receive(t, g.started, "the exchange to start")
	e.cache.Close()
	if err := receive(t, errs, "the waiting caller"); err == nil {
		t.Fatal("Token succeeded although Close cancelled its fetch")
	}
	if _, err := e.cache.Token(context.Background(), scopeRoad); err == nil || failure.Classify(err) != failure.Transient {
		t.Fatalf("Token after Close: err = %v, want a transient error", err)
	}
}

func TestCacheWithoutClients(t *testing.T) {
	c := auth.NewCache(auth.CacheConfig{Exchanger: &auth.Exchanger{URL: "http://127.0.0.1:1"}})
	t.Cleanup(c.Close)
	if _, err := c.Token(context.Background(), scopeRoad); failure.Classify(err) != failure.Config {
		t.Fatalf("err = %v, want a config failure", err)
	}
	if _, err := c.Token(context.Background(), ""); failure.Classify(err) != failure.Config {
		t.Fatalf("empty scope: err = %v, want a config failure", err)
	}
}
