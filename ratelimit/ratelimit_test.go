package ratelimit

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/digitoll/digitoll-worker/failure"
	"github.com/digitoll/digitoll-worker/internal/clocktest"
)

// toll is a server under /api that answers each request with the status
// and Retry-After its answer function gives, and records when requests
// arrived.
type toll struct {
	srv    *httptest.Server
	answer atomic.Value // func(path string) (int, string)
	mu     sync.Mutex
	hits   []hit
}

type hit struct {
	path string
	at   time.Time
}

func newToll(t *testing.T) *toll {
	t.Helper()
	s := &toll{}
	s.set(func(string) (int, string) { return 200, "" })
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.hits = append(s.hits, hit{r.URL.Path, time.Now()})
		s.mu.Unlock()
		status, ra := s.answer.Load().(func(string) (int, string))(r.URL.Path)
		if ra != "" {
			w.Header().Set("Retry-After", ra)
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *toll) set(f func(path string) (int, string)) { s.answer.Store(f) }

func (s *toll) hitTimes() []hit {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]hit(nil), s.hits...)
}

func (s *toll) base() string { return s.srv.URL + "/api" }

func get(t *testing.T, c *http.Client, ctx context.Context, url string) (int, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

func TestAPIOfARequest(t *testing.T) {
	tr, err := New(nil, Config{Base: "https://api.toll.no/api", Rate: 1})
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]string{
		"https://api.toll.no/api/movement/road/v2/house-consignment":                     "movement/road",
		"https://api.toll.no/api/movement/road/status/v2/transport/x/validation-status":  "movement/road",
		"https://api.toll.no/api/movement/air/v1/transport":                              "movement/air",
		"https://api.toll.no/api/movement/presentation/v1/entry-summary-declaration":     "movement/presentation",
		"https://api.toll.no/api/movement/routing/v1/transport?marker=1":                 "movement/routing",
		"https://api.toll.no/api/goodsdeclaration/document/v2/declaration-id/1/document": "goodsdeclaration/document",
		"https://api.toll.no/api/access/external/oauth/token":                            "access/external",
		"https://api.toll.no/api/ping":                                                   "ping",
		"https://api.toll.no/api/":                                                       "",
		"https://api.toll.no/apis/movement/road":                                         "",
		"https://maskinporten.no/token":                                                  "",
	}
	for raw, want := range tests {
		req := httptest.NewRequest(http.MethodGet, raw, nil)
		if got := tr.apiOf(req.URL); got != want {
			t.Errorf("%s: %q, want %q", raw, got, want)
		}
	}
}

// A 429 halves the API's rate once per round of requests, down to a floor;
// after Hold the rate climbs back linearly over Recovery. Other APIs keep
// their rate.
func TestTooManyRequestsSlowsTheAPIDownAndItRecovers(t *testing.T) {
	srv := newToll(t)
	clk := clocktest.New(time.Now())
	tr, err := New(nil, Config{Base: srv.base(), Rate: 10, Burst: 1000, Hold: 10 * time.Second, Recovery: 20 * time.Second, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Transport: tr}
	road := srv.base() + "/movement/road/v2/transport"
	srv.set(func(p string) (int, string) {
		if strings.Contains(p, "/road/") {
			return 429, ""
		}
		return 200, ""
	})
	ctx := context.Background()
	steps := []struct {
		name    string
		advance time.Duration
		send    bool
		want    float64
	}{
		{"first 429 halves", 0, true, 5},
		{"a 429 of a request sent before the decrease does not halve again", 0, true, 5},
		{"a 429 of the next round halves again", time.Second, true, 2.5},
		{"held", 10 * time.Second, false, 2.5},
		{"half way through the recovery", 10 * time.Second, false, 6.25},
		{"recovered", 10 * time.Second, false, 10},
	}
	for _, s := range steps {
		clk.Advance(s.advance)
		if s.send {
			if status, err := get(t, c, ctx, road); err != nil || status != 429 {
				t.Fatalf("%s: %d %v", s.name, status, err)
			}
		}
		if got := tr.State("movement/road"); got.Rate != s.want || got.Slowed != (s.want < 10) {
			t.Errorf("%s: %+v, want rate %g", s.name, got, s.want)
		}
	}
	if got := tr.State("movement/air"); got.Rate != 10 || got.Slowed {
		t.Errorf("air, never called: %+v", got)
	}
	if status, err := get(t, c, ctx, srv.base()+"/movement/air/v1/transport"); err != nil || status != 200 {
		t.Fatal(status, err)
	}
	if got := tr.State("movement/air"); got.Rate != 10 {
		t.Errorf("air after road's 429s: %+v", got)
	}

	for range 20 {
		clk.Advance(time.Second)
		if _, err := get(t, c, ctx, road); err != nil {
			t.Fatal(err)
		}
	}
	if got := tr.State("movement/road").Rate; got != 10.0/64 {
		t.Errorf("after 20 rounds of 429s: rate %g, want the floor %g", got, 10.0/64)
	}
}

func TestRetryAfterStopsTheAPI(t *testing.T) {
	srv := newToll(t)
	clk := clocktest.New(time.Date(2025, 1, 15, 8, 0, 0, 0, time.UTC))
	tr, err := New(nil, Config{Base: srv.base(), Rate: 100, MaxRetryAfter: time.Minute, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Transport: tr}
	tests := []struct {
		retryAfter func(now time.Time) string
		want       time.Duration
	}{
		{func(time.Time) string { return "7" }, 7 * time.Second},
		{func(now time.Time) string { return now.Add(20 * time.Second).Format(http.TimeFormat) }, 20 * time.Second},
		{func(time.Time) string { return "3600" }, time.Minute}, // capped
		{func(time.Time) string { return "soon" }, 0},
	}
	for _, tt := range tests {
		clk.Advance(2 * time.Hour)
		ra := tt.retryAfter(clk.Now())
		srv.set(func(string) (int, string) { return 429, ra })
		if _, err := get(t, c, context.Background(), srv.base()+"/movement/road/v2/x"); err != nil {
			t.Fatal(err)
		}
		got := tr.State("movement/road").BlockedUntil
		if tt.want == 0 && !got.IsZero() || tt.want > 0 && !got.Equal(clk.Now().Add(tt.want)) {
			t.Errorf("Retry-After %q: blocked until %v, want now+%s", ra, got, tt.want)
		}
	}
}

// With the real clock: the request after a 429 with Retry-After: 1 reaches
// Toll no sooner than a second later, and one that cannot wait that long
// fails at once with the wait as its RetryAfter.
func TestRetryAfterIsHonoured(t *testing.T) {
	srv := newToll(t)
	tr, err := New(nil, Config{Base: srv.base(), Rate: 100})
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Transport: tr}
	url := srv.base() + "/movement/air/v1/transport"
	srv.set(func(string) (int, string) { return 429, "1" })
	if status, err := get(t, c, context.Background(), url); err != nil || status != 429 {
		t.Fatal(status, err)
	}
	srv.set(func(string) (int, string) { return 200, "" })

	short, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err = get(t, c, short, url)
	var limited *LimitedError
	if !errors.As(err, &limited) || limited.API != "movement/air" {
		t.Fatalf("err = %v, want a *LimitedError", err)
	}
	if d, ok := failure.RetryAfter(err); !ok || d <= 0 || d > time.Second {
		t.Errorf("RetryAfter = %s %v, want up to 1s", d, ok)
	}

	if status, err := get(t, c, context.Background(), url); err != nil || status != 200 {
		t.Fatal(status, err)
	}
	hits := srv.hitTimes()
	if len(hits) != 2 {
		t.Fatalf("%d requests reached Toll, want 2", len(hits))
	}
	if gap := hits[1].at.Sub(hits[0].at); gap < time.Second-50*time.Millisecond {
		t.Errorf("the request after Retry-After: 1 came %s after the 429", gap)
	}
}

// The bucket spaces requests at the configured rate once the burst is
// spent; requests outside the base URL are not limited.
func TestRateSpacesRequests(t *testing.T) {
	srv := newToll(t)
	tr, err := New(nil, Config{Base: srv.base(), Rate: 20, Burst: 1})
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Transport: tr}
	start := time.Now()
	for range 5 {
		if _, err := get(t, c, context.Background(), srv.base()+"/movement/road/v2/x"); err != nil {
			t.Fatal(err)
		}
	}
	// Four waits of 1/20 s after the first request.
	if took := time.Since(start); took < 190*time.Millisecond {
		t.Errorf("5 requests at 20/s with burst 1 took %s", took)
	}

	other := newToll(t)
	for range 50 {
		if _, err := get(t, c, context.Background(), other.srv.URL+"/token"); err != nil {
			t.Fatal(err)
		}
	}
	if got := len(other.hitTimes()); got != 50 {
		t.Errorf("%d of 50 requests outside the base URL arrived", got)
	}
}

// A request given up while it waits is not sent and its body is closed.
func TestCancelledWaitClosesTheBody(t *testing.T) {
	srv := newToll(t)
	tr, err := New(nil, Config{Base: srv.base(), Rate: 0.001, Burst: 1})
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Transport: tr}
	if _, err := get(t, c, context.Background(), srv.base()+"/movement/road/v2/x"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	body := &closeRecorder{Reader: strings.NewReader("{}")}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.base()+"/movement/road/v2/x", body)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := tr.RoundTrip(req)
		done <- err
	}()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("RoundTrip did not return after cancel")
	}
	if !body.closed.Load() {
		t.Error("body not closed")
	}
	if got := len(srv.hitTimes()); got != 1 {
		t.Errorf("%d requests reached Toll, want 1", got)
	}
}

type closeRecorder struct {
	io.Reader
	closed atomic.Bool
}

func (c *closeRecorder) Close() error { c.closed.Store(true); return nil }

func TestNewChecksTheConfig(t *testing.T) {
	for _, cfg := range []Config{
		{Base: "", Rate: 1},
		{Base: "/api", Rate: 1},
		{Base: "https://api.toll.no/api", Rate: 0},
		{Base: "https://api.toll.no/api", Rate: 1, Hold: -1},
	} {
		if _, err := New(nil, cfg); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%+v: err = %v", cfg, err)
		}
	}
}

// With CallerWaits the caller waits (before taking its Toll token) and
// the transport only watches answers: requests pass it without spending
// the bucket again, while a second Wait inside the same second is refused
// at once with the time to wait.
func TestCallerWaits(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	t.Cleanup(srv.Close)
	tr, err := New(http.DefaultTransport, Config{Base: srv.URL + "/api", Rate: 1, Burst: 1, CallerWaits: true})
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(srv.URL + "/api/movement/road/v2/transport")
	short := func() context.Context {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		t.Cleanup(cancel)
		return ctx
	}
	if err := tr.Wait(short(), u); err != nil {
		t.Fatalf("first wait: %v", err)
	}
	for i := range 3 {
		req, _ := http.NewRequestWithContext(short(), http.MethodGet, u.String(), nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatalf("request %d waited in the transport: %v", i, err)
		}
		resp.Body.Close()
	}
	var le *LimitedError
	if err := tr.Wait(short(), u); !errors.As(err, &le) || le.RetryAfter() <= 0 {
		t.Fatalf("second wait within the second: %v, want a LimitedError with a delay", err)
	}
	other, _ := url.Parse(srv.URL + "/elsewhere")
	if err := tr.Wait(short(), other); err != nil {
		t.Fatalf("a URL outside Base waited: %v", err)
	}
}
