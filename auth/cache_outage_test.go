package auth_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/digitoll/digitoll-worker/auth"
	"github.com/digitoll/digitoll-worker/internal/clocktest"
	"github.com/digitoll/digitoll-worker/simulator"
)

// During a Maskinporten outage, many callers waiting for the same
// tenant×scope cost Maskinporten about one grant per backoff step, not one
// per caller and retry; once it is back, tokens flow at the next step.
// Time is a settable clock shared with the simulator, so the minute of
// outage runs in well under a second.
func TestCacheMaskinportenOutageIsNotAStampede(t *testing.T) {
	const (
		callers = 25
		step    = 100 * time.Millisecond
		outage  = 60 * time.Second
		// Waits 1, 2, 4, 8 s, then DefaultMaxFailureBackoff (15 s), each
		// up to 10 % shorter: attempts at about 0, 1, 3, 7, 15, 30, 45
		// and 60 s. Without the backoff every step makes one (600).
		maxAttempts = 8
	)
	clock := clocktest.New(time.Now().Truncate(time.Second))
	key, err := simulator.WriteDemoKey(t.TempDir(), "outage-test")
	if err != nil {
		t.Fatal(err)
	}
	sim, err := simulator.Start(simulator.Config{Clients: []simulator.Client{key.Client(scopeRoad)}, Now: clock.Now}, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	signer, err := auth.NewKeySigner(key.Key, key.KeyID)
	if err != nil {
		t.Fatal(err)
	}
	cache := auth.NewCache(auth.CacheConfig{
		Maskinporten: &auth.Maskinporten{TokenURL: sim.TokenURL(), Issuer: sim.Issuer(), ClientID: key.ClientID, Signer: signer, Now: clock.Now},
		Exchanger:    &auth.Exchanger{URL: sim.TollBaseURL() + "/access/external/oauth/token", Now: clock.Now},
		Now:          clock.Now,
	})
	t.Cleanup(cache.Close)
	grantAttempts := func() int { return sim.Stats().Requests(simulator.RouteMaskinportenToken) }

	// Every caller asks once per step, all at once; returns how many got
	// a token.
	round := func() int {
		var wg sync.WaitGroup
		var mu sync.Mutex
		ok := 0
		for range callers {
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				tok, err := cache.Token(ctx, scopeRoad)
				if err == nil && tok != "" {
					mu.Lock()
					ok++
					mu.Unlock()
				} else if err != nil && !strings.Contains(err.Error(), "outage") {
					t.Errorf("during the outage: unexpected error %v", err)
				}
			})
		}
		wg.Wait()
		return ok
	}

	sim.SetFaults(simulator.Faults{MaskinportenDown: true})
	for elapsed := time.Duration(0); elapsed < outage; elapsed += step {
		if n := round(); n != 0 {
			t.Fatalf("%d callers got a token while Maskinporten was down", n)
		}
		clock.Advance(step)
	}
	during := grantAttempts()
	t.Logf("grant attempts during a %s outage with %d callers asking every %s: %d", outage, callers, step, during)
	if during < 2 || during > maxAttempts {
		t.Errorf("grant attempts during the outage = %d, want between 2 and %d", during, maxAttempts)
	}
	if s := cache.Stats(scopeRoad); s.Fetches != during || s.BackedOff == 0 {
		t.Errorf("stats = %+v, want %d fetches and calls answered from the backoff", s, during)
	}

	// Back: at most one backoff step until every caller has a token,
	// from one more grant.
	sim.SetFaults(simulator.Faults{})
	var waited time.Duration
	for round() != callers {
		if waited > auth.DefaultMaxFailureBackoff {
			t.Fatalf("no token %s after Maskinporten came back", waited)
		}
		clock.Advance(step)
		waited += step
	}
	t.Logf("tokens flowed again %s (simulated) after Maskinporten came back", waited)
	if after := grantAttempts() - during; after != 1 {
		t.Errorf("grant attempts after recovery = %d, want 1", after)
	}
}
