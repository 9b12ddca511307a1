package worker

import (
	"fmt"
	"testing"
	"time"

	"github.com/digitoll/digitoll-worker/contract"
)

// BenchmarkJournalFreshSubmission is the journal's work for one new
// submission (sending, sent, done) on an embedded server: as a redelivery
// does it, reading the record first, and as a first delivery does,
// creating it without a read (openState).
func BenchmarkJournalFreshSubmission(b *testing.B) {
	e := newEnv(b)
	ctx := testCtx(b)
	// One count for every run of the sub-benchmarks: each submission new.
	i := 0
	res := contract.Result{Tenant: "default", Kind: contract.KindRoad, Status: contract.StatusAccepted, MRN: "26NOBENCH", RequestID: "r"}
	for _, readFirst := range []bool{true, false} {
		name := "create-first"
		if readFirst {
			name = "read-first"
		}
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				i++
				key := stateKey("default", contract.KindRoad, fmt.Sprintf("%s-%d", name, i))
				var (
					st  *state
					rev uint64
				)
				if readFirst {
					var err error
					if st, rev, err = loadState(ctx, e.kv, key); err != nil {
						b.Fatal(err)
					}
				}
				j := newJournal(e.kv, key, st, rev, uint64(i), 1, time.Now)
				j.unread = !readFirst
				if err := j.Sending(ctx); err != nil {
					b.Fatal(err)
				}
				if err := j.Sent(ctx, "r"); err != nil {
					b.Fatal(err)
				}
				if err := j.done(ctx, res); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
