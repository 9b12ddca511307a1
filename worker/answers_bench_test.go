package worker

import (
	"context"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/digitoll/digitoll-worker/contract"
)

// BenchmarkStrayScan measures the look a worker takes every LaneSync (3 s)
// for stray subjects, now in the single-tenant mode too: one stream info
// listing the subjects that hold messages. ns/op is one look with the
// given number of subjects holding a message each; a single-tenant
// installation has one per kind.
func BenchmarkStrayScan(b *testing.B) {
	for _, subjects := range []int{4, 1000} {
		b.Run(fmt.Sprintf("subjects=%d", subjects), func(b *testing.B) {
			e := newEnv(b)
			ctx := context.Background()
			for i := range subjects {
				subject := contract.SubmitSubject(contract.Kinds()[i%4], fmt.Sprintf("t%04d", i/4))
				if _, err := e.js.PublishMsg(ctx, &nats.Msg{Subject: subject, Data: roadBody("x")}, jetstream.WithMsgID(subject)); err != nil {
					b.Fatal(err)
				}
			}
			w, err := New(e.js, withTenant(Config{Handlers: map[contract.Kind]Handler{contract.KindRoad: &fakeHandler{behaviour: accept}}}))
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for b.Loop() {
				if _, err := w.waitingLanes(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
