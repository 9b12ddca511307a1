package worker

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/handlers"
	"github.com/digitoll/digitoll-worker/samples"
)

// BenchmarkResultMsg builds the result message of an accepted house
// consignment, as every finished message does: the result from the
// handler's outcome, encoded, with the submission's trace and Digitoll-*
// headers carried over. allocs/op is the allocations per message.
func BenchmarkResultMsg(b *testing.B) {
	var body []byte
	all, err := samples.Load(contract.KindRoad)
	if err != nil {
		b.Fatal(err)
	}
	for _, s := range all {
		if s.Name == "03-house.json" {
			body = s.Body
		}
	}
	sub, err := contract.ParseSubmission(contract.KindRoad, body)
	if err != nil {
		b.Fatal(err)
	}
	received := time.Date(2025, 1, 15, 8, 5, 0, 0, time.UTC)
	d := delivered{
		kind: contract.KindRoad, tenant: contract.DefaultTenant, id: sub.ID, sub: sub,
		subject: contract.SubmitSubject(contract.KindRoad, contract.DefaultTenant), seq: 42, delivery: 1, receivedAt: received,
	}
	out := handlers.Outcome{Status: contract.StatusAccepted, MRN: "25NO4TU2HUD59UCBT8", RequestID: "1bdf0f33-f42e-48e2-b334-3944722e3fe5"}
	submission := nats.Header{
		contract.HeaderTraceparent: {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
		"Digitoll-Source":          {"bench"},
		contract.HeaderMsgID:       {contract.MsgID(contract.DefaultTenant, sub.ID)},
	}
	completed := received.Add(2 * time.Second)
	b.ReportAllocs()
	for b.Loop() {
		m, err := resultMsg(context.Background(), outcomeResult(d, out, "", completed), submission)
		if err != nil {
			b.Fatal(err)
		}
		if len(m.Data) == 0 {
			b.Fatal("empty result")
		}
	}
}
