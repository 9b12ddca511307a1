package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/digitoll/digitoll-worker/embednats"
	"github.com/digitoll/digitoll-worker/simulator"
	"github.com/digitoll/digitoll-worker/worker"
)

// Faults that leave the worker alive but unable to keep its word for a
// while: a network partition between one worker and NATS longer than
// AckWait, and a state store that refuses writes. Neither is a crash during
// a Toll call, so neither may make the worker send a declaration twice
// (docs/contract.md, invariant 2).

// tollLatency keeps declarations in flight for a second, so that the
// fault meets calls between "sending" and "sent" in the journal.
const tollLatency = time.Second

// One of two workers sharing the consumer loses its NATS connection for
// longer than AckWait while its declarations are in flight (a network
// partition: it stays alive and its Toll calls complete). JetStream hands
// its messages to the other worker meanwhile; that worker must not send
// them to Toll again while the cut-off one may still record its answers.
func TestPartitionedWorkerCausesNoResends(t *testing.T) {
	// Mostly waiting (on Toll's latency, AckWait, backoff): it shares the
	// machine with the other waiting tests.
	t.Parallel()
	const (
		messages  = 48
		partition = 6 * time.Second // AckWait is 3 s
	)
	srv := startBroker(t, t.TempDir(), embednats.RandomPort)
	r := newRig(t, rigConfig{natsURLs: []string{srv.ClientURL()}, concurrency: 8, validationDelay: 200 * time.Millisecond})
	r.sim.SetFaults(simulator.Faults{Latency: tollLatency})
	link := startProxy(t, srv.ClientURL())
	subs := houses(t, "partition", messages)
	a := r.startWorker("DIGITOLL_NATS_URL=" + link.URL())
	var b *workerProc
	r.dumpOnFailure(func() []*workerProc { return []*workerProc{a, b} })
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	r.publish(ctx, subs)
	r.waitResults(messages/6, time.Minute)

	// Cut A off just after it journaled a declaration as being sent, so
	// that the call is in flight; then B starts with free slots and gets
	// A's messages once their AckWait runs out.
	r.waitSending(ctx)
	link.cut()
	b = r.startWorker()
	select {
	case <-time.After(partition):
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	}
	link.heal()
	r.waitResults(messages, 2*time.Minute)
	r.quiesce(time.Minute)
	r.stop(a)
	r.stop(b)
	r.checkNoPanic(a, b)
	f := r.check(subs, noResends)
	t.Logf("partitioned worker: %s partition=%s taken-over-as-crashed=%d elapsed=%s", f, partition,
		a.countLines(crashLine)+b.countLines(crashLine), time.Since(start).Round(time.Millisecond))
}

// The state bucket refuses every write for a few seconds (as when
// JetStream's storage is full) while declarations are in flight. Toll has
// answered them with requestIds that cannot be recorded; when the bucket
// accepts writes again, no declaration may be sent a second time.
func TestStateStoreRefusingWritesCausesNoResends(t *testing.T) {
	// Mostly waiting (on Toll's latency, AckWait, backoff): it shares the
	// machine with the other waiting tests.
	t.Parallel()
	const (
		messages = 48
		refusal  = 3 * time.Second
	)
	srv := startBroker(t, t.TempDir(), embednats.RandomPort)
	r := newRig(t, rigConfig{natsURLs: []string{srv.ClientURL()}, concurrency: 16, validationDelay: 200 * time.Millisecond})
	r.sim.SetFaults(simulator.Faults{Latency: tollLatency})
	subs := houses(t, "kvfull", messages)
	w := r.startWorker()
	r.dumpOnFailure(func() []*workerProc { return []*workerProc{w} })
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	r.publish(ctx, subs)
	r.waitResults(messages/6, time.Minute)

	// Just after a declaration was journaled as being sent: its answer
	// comes back while the bucket refuses writes.
	r.waitSending(ctx)
	restore := r.fillStateBucket(ctx)
	select {
	case <-time.After(refusal):
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	}
	restore()
	r.waitResults(messages, 2*time.Minute)
	// A refused write is logged when its delivery ends (Sent retries
	// until the bucket takes it), so the count is read after the results.
	refused := w.countLines("maximum bytes exceeded")
	if refused == 0 {
		t.Errorf("no state write was refused: the fault did not bite")
	}
	r.quiesce(time.Minute)
	r.stop(w)
	r.checkNoPanic(w)
	f := r.check(subs, noResends)
	t.Logf("state store refusing writes: %s refusal=%s refused-writes-logged=%d elapsed=%s", f, refusal, refused,
		time.Since(start).Round(time.Millisecond))
}

// waitSending waits until a worker journals a submission as being sent to
// Toll (worker/state.go, phase "sending"): a declaration is then about to
// be, or being, sent.
func (r *rig) waitSending(ctx context.Context) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	kv, err := r.js.KeyValue(ctx, worker.StateBucket)
	if err != nil {
		r.t.Fatal(err)
	}
	watch, err := kv.WatchAll(ctx, jetstream.UpdatesOnly())
	if err != nil {
		r.t.Fatal(err)
	}
	defer watch.Stop()
	for {
		select {
		case e := <-watch.Updates():
			var st struct {
				Phase string `json:"phase"`
			}
			if e != nil && json.Unmarshal(e.Value(), &st) == nil && st.Phase == "sending" {
				return
			}
		case <-ctx.Done():
			r.t.Fatal("no submission was journaled as being sent within 30 s")
		}
	}
}

// fillStateBucket makes the state bucket's stream refuse new writes by
// capping it at the bytes it holds (KV streams discard new messages at
// their limits). The returned function lifts the cap again.
func (r *rig) fillStateBucket(ctx context.Context) (restore func()) {
	r.t.Helper()
	name := "KV_" + worker.StateBucket
	s, err := r.js.Stream(ctx, name)
	if err != nil {
		r.t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		r.t.Fatal(err)
	}
	orig := info.Config
	if orig.Discard != jetstream.DiscardNew {
		r.t.Fatalf("%s discards %v at its limits, not new messages", name, orig.Discard)
	}
	capped := orig
	capped.MaxBytes = int64(info.State.Bytes)
	if _, err := r.js.UpdateStream(ctx, capped); err != nil {
		r.t.Fatalf("cap %s at %d bytes: %v", name, capped.MaxBytes, err)
	}
	return func() {
		r.t.Helper()
		if _, err := r.js.UpdateStream(ctx, orig); err != nil {
			r.t.Fatal(fmt.Errorf("lift the cap of %s: %w", name, err))
		}
	}
}
