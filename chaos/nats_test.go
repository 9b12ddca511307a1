package chaos

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/embednats"
	"github.com/digitoll/digitoll-worker/internal/natstest"
	"github.com/digitoll/digitoll-worker/simulator"
)

// natsOutage is how long the single server stays down: longer than the
// worker's reconnect wait (1 s) and than the 5 s the movement handler gives
// itself to record a requestId, so that writes made during the outage fail
// rather than wait in the client's reconnect buffer.
const natsOutage = 6 * time.Second

// The embedded server (single node) is shut down while messages flow and
// started again on the same port with the same store: the worker reports
// itself not ready while NATS is away, ready again after, and every id
// gets exactly one result with no POST repeated and nothing dead-lettered.
func TestNATSRestartMidRun(t *testing.T) {
	// Mostly waiting (on Toll's latency, AckWait, backoff): it shares the
	// machine with the other waiting tests.
	t.Parallel()
	const messages = 120
	dir := t.TempDir()
	srv := startBroker(t, dir, embednats.RandomPort)
	port := portOf(t, srv.ClientURL())
	r := newRig(t, rigConfig{natsURLs: []string{srv.ClientURL()}, concurrency: 16, validationDelay: 300 * time.Millisecond})
	// Slow answers keep declarations in flight at the moment NATS goes
	// away: their requestIds must still be recorded, not lost.
	r.sim.SetFaults(simulator.Faults{Latency: 400 * time.Millisecond})
	subs := houses(t, "restart", messages)
	w := r.startWorker()
	r.dumpOnFailure(func() []*workerProc { return []*workerProc{w} })
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	r.publish(ctx, subs)

	r.waitResults(messages/4, time.Minute)
	before, err := r.streamMsgs(ctx, contract.StreamResults)
	if err != nil {
		t.Fatal(err)
	}
	srv.Shutdown()
	down := time.Now()
	notReady := watchReadiness(t, w, natsOutage)
	startBroker(t, dir, port) // shut down by its own cleanup
	t.Logf("NATS down for %s after %d results; /readyz answered 503 %d times, %d other answers", time.Since(down).Round(time.Millisecond),
		before, notReady.unready, notReady.other)
	if notReady.unready == 0 {
		t.Errorf("/readyz never answered 503 while NATS was down (%d other answers): %s", notReady.other, notReady.last)
	} else if !strings.Contains(notReady.lastUnready, "nats") {
		t.Errorf("/readyz 503 does not name NATS: %s", notReady.lastUnready)
	}
	r.waitReady(w, 30*time.Second)

	r.waitResults(messages, 2*time.Minute)
	r.quiesce(time.Minute)
	r.stop(w)
	r.checkNoPanic(w)
	f := r.check(subs, noResends)
	t.Logf("NATS restart: %s outage=%s elapsed=%s", f, natsOutage, time.Since(start).Round(time.Millisecond))
}

// A three-node cluster with every stream replicated three times loses the
// node that leads DIGITOLL_SUBMIT while messages flow; the workers, given
// all three URLs, carry on: nothing lost, nothing repeated, nothing
// dead-lettered.
func TestClusterNodeLossMidRun(t *testing.T) {
	// Mostly waiting (leader elections, publish timeouts, backoff). The
	// modes run one after the other: two 3-node clusters starting at once
	// next to the other scenarios overload a 2-core machine.
	t.Parallel()
	for _, mode := range []struct {
		name  string
		lanes bool
	}{{"one consumer per kind", false}, {"lanes", true}} {
		t.Run(mode.name, func(t *testing.T) { clusterNodeLoss(t, mode.lanes) })
	}
}

// clusterNodeLoss is TestClusterNodeLossMidRun with one consumer per
// kind, or with lanes (a tenants file), whose consumers are R3 as well.
func clusterNodeLoss(t *testing.T, lanes bool) {
	const messages = 120
	servers, urls := natstest.Cluster(t, 3)
	r := newRig(t, rigConfig{natsURLs: urls, replicas: 3, concurrency: 16, validationDelay: 300 * time.Millisecond})
	subs := houses(t, "cluster", messages)
	var env []string
	if lanes {
		env = append(env, r.tenantsFile())
	}
	w := r.startWorker(env...)
	r.dumpOnFailure(func() []*workerProc { return []*workerProc{w} })
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	r.publish(ctx, subs)

	r.waitResults(messages/4, time.Minute)
	leaders := r.leaders(ctx, contract.StreamSubmit, contract.StreamResults, "KV_digitoll-state")
	victim := leaders[contract.StreamSubmit]
	for _, s := range servers {
		if s.Name() == victim {
			s.Shutdown()
		}
	}
	t.Logf("shut down %s; stream leaders before: %v", victim, leaders)
	if victim == "" {
		t.Fatal("DIGITOLL_SUBMIT has no leader to shut down")
	}

	r.waitResults(messages, 2*time.Minute)
	r.quiesce(time.Minute)
	r.waitReady(w, 30*time.Second)
	r.stop(w)
	r.checkNoPanic(w)
	f := r.check(subs, noResends)
	t.Logf("cluster node loss: %s node=%s elapsed=%s", f, victim, time.Since(start).Round(time.Millisecond))
}

// leaders names the server leading each stream.
func (r *rig) leaders(ctx context.Context, streams ...string) map[string]string {
	r.t.Helper()
	out := map[string]string{}
	for _, name := range streams {
		s, err := r.js.Stream(ctx, name)
		if err != nil {
			r.t.Fatalf("%s: %v", name, err)
		}
		info, err := s.Info(ctx)
		if err != nil {
			r.t.Fatalf("%s: %v", name, err)
		}
		if info.Cluster != nil {
			out[name] = info.Cluster.Leader
		}
	}
	return out
}

// readinessSeen counts /readyz answers over a stretch of time.
type readinessSeen struct {
	ready, unready, other int
	last, lastUnready     string
}

// add sums two stretches.
func (s readinessSeen) add(o readinessSeen) readinessSeen {
	s.ready += o.ready
	s.unready += o.unready
	s.other += o.other
	s.last = o.last
	if o.lastUnready != "" {
		s.lastUnready = o.lastUnready
	}
	return s
}

// watchReadiness polls /readyz every 100 ms for d, counting answers.
func watchReadiness(t *testing.T, w *workerProc, d time.Duration) readinessSeen {
	t.Helper()
	var seen readinessSeen
	end := time.Now().Add(d)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for time.Now().Before(end) {
		code, body, err := w.readiness()
		switch {
		case err != nil:
			seen.other++
			seen.last = err.Error()
		case code == http.StatusOK:
			seen.ready++
			seen.last = body
		case code == http.StatusServiceUnavailable:
			seen.unready++
			seen.last, seen.lastUnready = body, body
		default:
			seen.other++
			seen.last = body
		}
		<-tick.C
	}
	return seen
}
