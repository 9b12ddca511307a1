package chaos

import (
	"context"
	"testing"
	"time"

	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/embednats"
)

// Valid and malformed messages mixed: the DLQ holds exactly the malformed
// ones, each with reason malformed and its body byte for byte; those with
// a readable id get one dead-lettered result; every valid one is accepted;
// a declaration Toll refuses with 400 is a rejected result, not a dead
// letter; and the worker process neither exits nor panics.
func TestPoisonAmongValidMessages(t *testing.T) {
	srv := startBroker(t, t.TempDir(), embednats.RandomPort)
	r := newRig(t, rigConfig{natsURLs: []string{srv.ClientURL()}, concurrency: 8, validationDelay: 100 * time.Millisecond})
	valid := houses(t, "poison", 30)
	bad := poison(t)
	refused := submission{
		id:        "chaos-refused-by-toll",
		subject:   contract.SubmitSubject(contract.KindRoad, contract.DefaultTenant),
		body:      sampleTemplate(t, "04-house-bad-date.json").render(t, "chaos-refused-by-toll", "HWB-CHAOS-REFUSED", "refused"),
		docNumber: "HWB-CHAOS-REFUSED",
		want:      contract.StatusRejected,
	}
	// Interleaved, so that poison arrives among messages in progress.
	var all []submission
	for i, s := range valid {
		all = append(all, s)
		if i < len(bad) {
			all = append(all, bad[i])
		}
	}
	all = append(all, refused)

	w := r.startWorker()
	r.dumpOnFailure(func() []*workerProc { return []*workerProc{w} })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	r.publish(ctx, all)
	r.quiesce(time.Minute)

	if !w.running() {
		t.Fatalf("the worker exited (%v)\n%s", w.waitErr, w.tail(40))
	}
	r.checkNoPanic(w)
	f := r.check(all, noResends)
	if f.deadLettered != len(bad) {
		t.Errorf("%d dead letters for %d malformed messages", f.deadLettered, len(bad))
	}
	r.stop(w)
	t.Logf("poison: %s malformed=%d elapsed=%s", f, len(bad), time.Since(start).Round(time.Millisecond))
}
