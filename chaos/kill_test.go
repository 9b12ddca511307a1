package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/embednats"
	"github.com/digitoll/digitoll-worker/simulator"
)

// crashLine is what a worker logs when it finds that an earlier delivery
// died during its Toll call (worker/message.go, startAfterCrash).
const crashLine = "an earlier delivery died during its Toll call"

// killScenario is a run of SIGKILLs while messages flow.
type killScenario struct {
	messages    int
	kills       int
	workers     int // processes sharing the consumer
	concurrency int
	// validationDelay slows Toll down so that messages are still in
	// flight when the kills come.
	validationDelay time.Duration
	// answerDelay holds Toll's answer to each declaration after Toll has
	// processed it, so that kills fall inside Toll calls: the one window
	// in which the worker may have to send a declaration again.
	answerDelay time.Duration
	// limit bounds the whole run after publishing.
	limit time.Duration
	// table prints one line per kill.
	table bool
	// lanes runs the workers with a tenants file: a consumer per tenant
	// and kind, as a provider serving many tenants runs them.
	lanes bool
}

// SIGKILL the worker three times at random moments while 300 messages
// flow, restarting it right after each kill: every id still gets exactly
// one result, Toll never sees a POST repeated unless a kill fell inside
// that very call (Toll holds its answers for 300 ms, so kills do), a
// repeat that meets the first POST as a duplicate ends unresolved (a
// house without `after` has no lookup), never rejected, and nothing is
// dead-lettered.
func TestKill9WhileMessagesFlow(t *testing.T) {
	runKills(t, killScenario{
		messages:        300,
		kills:           3,
		workers:         1,
		concurrency:     16,
		validationDelay: 300 * time.Millisecond,
		answerDelay:     300 * time.Millisecond,
		limit:           2 * time.Minute,
	})
}

// The same with two workers consuming through lanes (a tenants file): the
// consumer of the tenant's road submissions is shared by both processes,
// and kills and restarts do not lose, repeat or dead-letter anything.
func TestKill9WithLanes(t *testing.T) {
	runKills(t, killScenario{
		messages:        300,
		kills:           3,
		workers:         2,
		concurrency:     8,
		validationDelay: 300 * time.Millisecond,
		answerDelay:     300 * time.Millisecond,
		limit:           2 * time.Minute,
		lanes:           true,
	})
}

// killRow is one kill, for the soak table.
type killRow struct {
	at       time.Duration
	worker   string
	results  uint64
	inFlight int
	readyIn  time.Duration
}

func runKills(t *testing.T, sc killScenario) {
	rnd := seed(t)
	srv := startBroker(t, t.TempDir(), embednats.RandomPort)
	r := newRig(t, rigConfig{
		natsURLs:        []string{srv.ClientURL()},
		concurrency:     sc.concurrency,
		validationDelay: sc.validationDelay,
	})
	r.sim.SetFaults(simulator.Faults{AnswerDelay: sc.answerDelay})
	subs := houses(t, "kill", sc.messages)

	var all []*workerProc
	r.dumpOnFailure(func() []*workerProc { return all })
	var env []string
	if sc.lanes {
		env = append(env, r.tenantsFile())
	}
	live := make([]*workerProc, sc.workers)
	for i := range live {
		live[i] = r.startWorker(env...)
		all = append(all, live[i])
	}
	ctx, cancel := context.WithTimeout(context.Background(), sc.limit)
	defer cancel()
	start := time.Now()
	r.publish(ctx, subs)

	var rows []killRow
	for i, threshold := range killThresholds(rnd, sc.messages, sc.kills) {
		r.waitResults(threshold, sc.limit)
		// A moment later still, so that the kill does not always fall
		// right after a result.
		select {
		case <-time.After(time.Duration(rnd.IntN(250)) * time.Millisecond):
		case <-ctx.Done():
			t.Fatalf("kill %d: %v", i+1, ctx.Err())
		}
		got, err := r.streamMsgs(ctx, contract.StreamResults)
		if err != nil {
			t.Fatal(err)
		}
		if got >= uint64(sc.messages) {
			t.Fatalf("all %d results were in before kill %d: the scenario is too fast to kill anything in flight", sc.messages, i+1)
		}
		inFlight := r.ackPending(ctx)
		victim := rnd.IntN(len(live))
		row := killRow{at: time.Since(start), worker: live[victim].name, results: got, inFlight: inFlight}
		r.kill(live[victim])
		restarted := time.Now()
		live[victim] = r.startWorker(env...)
		all = append(all, live[victim])
		row.readyIn = time.Since(restarted)
		rows = append(rows, row)
	}

	r.waitResults(uint64(sc.messages), sc.limit)
	r.quiesce(sc.limit)
	for _, w := range live {
		r.stop(w)
	}
	r.checkNoPanic(all...)
	f := r.check(subs, resendsAcrossKills)
	crashes := 0
	for _, w := range all {
		crashes += w.countLines(crashLine)
	}
	t.Logf("kill -9: %s workers=%d deliveries-after-crash=%d elapsed=%s", f, sc.workers, crashes, time.Since(start).Round(time.Millisecond))
	if sc.table {
		logKillTable(t, rows, f, crashes)
	}
	if len(rows) < sc.kills {
		t.Errorf("%d kills, want %d", len(rows), sc.kills)
	}
}

// killThresholds are the result counts at which the kills come: one at a
// random point in each of kills equal slices of the first 85 % of the
// messages, so that every kill falls while messages are in flight.
func killThresholds(rnd *rand.Rand, messages, kills int) []uint64 {
	span := messages * 85 / 100
	slot := max(span/kills, 1)
	out := make([]uint64, kills)
	for i := range kills {
		lo := i*slot + slot/3
		out[i] = uint64(lo + rnd.IntN(max(slot-slot/3, 1)))
	}
	return out
}

// ackPending is how many messages the road consumer has handed out and
// not seen acknowledged; -1 if the server cannot say.
func (r *rig) ackPending(ctx context.Context) int {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	c, err := r.js.Consumer(ctx, contract.StreamSubmit, r.consumer)
	if err != nil {
		return -1
	}
	info, err := c.Info(ctx)
	if err != nil {
		return -1
	}
	return info.NumAckPending
}

func logKillTable(t *testing.T, rows []killRow, f figures, crashes int) {
	var b strings.Builder
	fmt.Fprintf(&b, "\n%-5s %-9s %-10s %-8s %-9s %s\n", "kill", "at", "worker", "results", "in-flight", "ready again in")
	for i, row := range rows {
		fmt.Fprintf(&b, "%-5d %-9s %-10s %-8d %-9d %s\n", i+1, row.at.Round(10*time.Millisecond), row.worker, row.results, row.inFlight,
			row.readyIn.Round(time.Millisecond))
	}
	fmt.Fprintf(&b, "%-22s %d\n", "messages", f.messages)
	fmt.Fprintf(&b, "%-22s %d\n", "lost", f.lost)
	fmt.Fprintf(&b, "%-22s %d\n", "duplicated", f.duplicated)
	fmt.Fprintf(&b, "%-22s %d\n", "dead-lettered", f.deadLettered)
	fmt.Fprintf(&b, "%-22s %d\n", "re-sends", f.resends)
	fmt.Fprintf(&b, "%-22s %d\n", "found after a crash", f.found)
	fmt.Fprintf(&b, "%-22s %d\n", "unresolved", f.unresolved)
	fmt.Fprintf(&b, "%-22s %d\n", "false rejected", f.falseRejected)
	fmt.Fprintf(&b, "%-22s %d\n", "deliveries after crash", crashes)
	t.Log(b.String())
}

// startBroker starts a single embedded server on port (embednats.RandomPort
// for any) with its store in dir, shut down when the test ends.
func startBroker(t *testing.T, dir string, port int) *embednats.Server {
	t.Helper()
	srv, err := embednats.Start(embednats.Options{Dir: filepath.Join(dir, "nats"), Port: port})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	return srv
}

// portOf is the port of a nats:// URL.
func portOf(t *testing.T, rawURL string) int {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	p, err := strconv.Atoi(u.Port())
	if err != nil {
		t.Fatalf("%s has no port", rawURL)
	}
	return p
}
