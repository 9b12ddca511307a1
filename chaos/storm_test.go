package chaos

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/digitoll/digitoll-worker/embednats"
	"github.com/digitoll/digitoll-worker/simulator"
)

// stormScenario is a stretch of Toll 503s and 429s together with a
// Maskinporten outage.
type stormScenario struct {
	messages    int
	concurrency int
	storm       time.Duration
	// wantPause requires /readyz to answer 503 during the storm: the kind
	// must have been paused as an outage.
	wantPause bool
	limit     time.Duration
	// env holds worker settings for the scenario.
	env map[string]string
}

// The storm: for 5 s while 100 messages flow, most Toll calls are answered
// 503 or 429, first alone, then with Maskinporten down as well (Toll tokens
// live 2 s, so the worker needs new ones throughout; Maskinporten stays
// down until the worker has asked it at least once). Afterwards every
// message is accepted, exactly once, with one POST each, nothing is
// dead-lettered and /readyz is 200.
//
// /readyz must answer 503 during the storm: the kind is paused as an
// outage. With the production settings a delivery retries in process for
// 15 s (DIGITOLL_RETRY_BUDGET) and 10 deliveries failing in a row
// (DIGITOLL_OUTAGE_THRESHOLD) pause the kind, which a 5 s storm does not
// reach; the short version scales those down, the soak version (60 s)
// runs with the production settings.
func TestStormOfTollErrorsAndMaskinportenOutage(t *testing.T) {
	runStorm(t, stormScenario{messages: 100, concurrency: 16, storm: 5 * time.Second, wantPause: true, limit: 2 * time.Minute,
		env: map[string]string{"DIGITOLL_RETRY_BUDGET": "1s", "DIGITOLL_OUTAGE_THRESHOLD": "3", "DIGITOLL_PROBE_INTERVAL": "500ms"}})
}

// outageFeltWithin is how long the Maskinporten outage may outlast its
// planned half of the storm before the worker must have asked for a token.
const outageFeltWithin = 30 * time.Second

func runStorm(t *testing.T, sc stormScenario) {
	srv := startBroker(t, t.TempDir(), embednats.RandomPort)
	r := newRig(t, rigConfig{
		natsURLs:          []string{srv.ClientURL()},
		concurrency:       sc.concurrency,
		validationDelay:   200 * time.Millisecond,
		tollTokenLifetime: 2 * time.Second,
		env:               sc.env,
	})
	subs := houses(t, "storm", sc.messages)
	w := r.startWorker()
	r.dumpOnFailure(func() []*workerProc { return []*workerProc{w} })
	ctx, cancel := context.WithTimeout(context.Background(), sc.limit)
	defer cancel()
	start := time.Now()
	r.publish(ctx, subs)
	r.waitResults(uint64(sc.messages/10), sc.limit)

	// First Toll alone refuses most calls, while tokens still come;
	// then Maskinporten goes down as well.
	const (
		postRoute = "POST /toll/api/movement/road/v2/house-consignment"
		pollRoute = "GET /toll/api/movement/road/status/v2/house-consignment/validation-status/{requestId}"
	)
	storm := simulator.Faults{ErrorRate: 0.6, TooManyRate: 0.3}
	before := r.sim.Stats()
	r.sim.SetFaults(storm)
	during := watchReadiness(t, w, sc.storm/2)
	middle := r.sim.Stats()
	storm.MaskinportenDown = true
	r.sim.SetFaults(storm)
	during = during.add(watchReadiness(t, w, sc.storm-sc.storm/2))
	// A worker that needs no token does not ask for one: while Toll's
	// 429s have cut the API's rate, the probe and the retries can wait in
	// the rate limiter (which comes before the token) for longer than the
	// outage's planned half. Maskinporten then stays down until the
	// worker has asked it at least once, with a deadline.
	feltBy := time.Now().Add(outageFeltWithin)
	for r.sim.Stats().Requests(simulator.RouteMaskinportenToken) == middle.Requests(simulator.RouteMaskinportenToken) && time.Now().Before(feltBy) {
		during = during.add(watchReadiness(t, w, 500*time.Millisecond))
	}
	r.sim.SetFaults(simulator.Faults{})
	after := r.sim.Stats()
	posts := middle.Requests(postRoute) - before.Requests(postRoute)
	polls := middle.Requests(pollRoute) - before.Requests(pollRoute)
	grants := after.Requests(simulator.RouteMaskinportenToken) - middle.Requests(simulator.RouteMaskinportenToken)
	t.Logf("storm of %s: %d house POSTs and %d validation polls tried while Toll failed, %d Maskinporten token requests while it was down; /readyz 200 %d times, 503 %d times, no answer %d times (last: %s)",
		sc.storm, posts, polls, grants, during.ready, during.unready, during.other, during.last)
	if posts+polls == 0 {
		t.Errorf("the worker called Toll not once while it failed: the storm was not felt")
	}
	if grants == 0 {
		t.Errorf("the worker asked Maskinporten for no token while it was down (%s and %s more): the outage was not felt", sc.storm-sc.storm/2, outageFeltWithin)
	}
	if sc.wantPause && during.unready == 0 {
		t.Errorf("/readyz never answered 503 during a %s storm: the kind was not paused", sc.storm)
	}

	r.waitResults(uint64(sc.messages), sc.limit)
	r.quiesce(sc.limit)
	waitFor(t, sc.limit, "/readyz 200 after the storm", func() (bool, error) {
		code, _, err := w.readiness()
		return err == nil && code == http.StatusOK, nil
	})
	r.stop(w)
	r.checkNoPanic(w)
	f := r.check(subs, noResends)
	t.Logf("storm: %s storm=%s readyz-503=%d elapsed=%s", f, sc.storm, during.unready, time.Since(start).Round(time.Millisecond))
}
