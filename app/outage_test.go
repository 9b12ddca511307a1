package app

import (
	"testing"
	"time"

	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/simulator"
)

// While Maskinporten is down, the messages waiting for two tenants cost it
// about one grant per tenant×scope per probe interval (each tenant's
// token cache backs off and shares its failure), not one per message and
// retry; once it is back, every message is answered.
func TestMaskinportenOutageIsNotAGrantStampede(t *testing.T) {
	const (
		each    = 25
		probe   = time.Second
		outage  = 4 * time.Second
		tenants = 2
	)
	f := newTenantsFixture(t)
	f.addTenant(t, 0, "acme", "road", roadScope)
	f.addTenant(t, 1, "beta", "road", roadScope)
	f.write(t)
	f.sim.SetFaults(simulator.Faults{MaskinportenDown: true})
	start := time.Now()
	svc := f.start(t, "DIGITOLL_PROBE_INTERVAL", probe.String(), "DIGITOLL_RETRY_BUDGET", "2s")
	results := f.collect(t)
	keys := append(f.publishMany(t, "acme", 0, each), f.publishMany(t, "beta", 0, each)...)

	paused := func() int {
		n := 0
		for _, s := range svc.Worker.Status() {
			if s.Kind == contract.KindRoad && s.Paused {
				n++
			}
		}
		return n
	}
	waitFor(t, 30*time.Second, "both tenants' road lanes to pause for the outage", func() bool { return paused() == tenants })
	// The outage goes on for a while with everything waiting.
	select {
	case <-time.After(outage):
	case <-t.Context().Done():
	}
	attempts := f.sim.Stats().Requests(simulator.RouteMaskinportenToken)
	elapsed := time.Since(start)
	// Per tenant×scope: the first failure, then at most one attempt per
	// backoff (at most the probe interval), plus one in flight.
	bound := tenants * (int(elapsed/probe) + 2)
	t.Logf("grant attempts during %s of outage with %d messages waiting for %d tenants: %d (bound %d)",
		elapsed.Round(time.Millisecond), len(keys), tenants, attempts, bound)
	if attempts > bound {
		t.Errorf("%d grant attempts in %s, want at most %d", attempts, elapsed.Round(time.Millisecond), bound)
	}

	f.sim.SetFaults(simulator.Faults{})
	back := time.Now()
	for k, r := range results.wait(t, keys...) {
		if r.Status != contract.StatusAccepted {
			t.Errorf("%s: %s (%s %v)", k, r.Status, r.Note, r.Errors)
		}
	}
	t.Logf("all %d answered %s after Maskinporten came back", len(keys), time.Since(back).Round(time.Millisecond))
}
