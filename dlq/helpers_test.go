package dlq

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/internal/natstest"
	"github.com/digitoll/digitoll-worker/worker"
)

// newJS starts a real embedded server with the contract's streams.
func newJS(t *testing.T) jetstream.JetStream {
	t.Helper()
	_, js := natstest.Start(t, "")
	if err := worker.EnsureStreams(testCtx(t), js, worker.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	return js
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func roadBody(id string) []byte {
	return fmt.Appendf(nil, `{"id":%q,"operation":"create","level":"house-consignment","declaration":{"n":1}}`, id)
}

// dead describes a dead letter shaped as the worker writes it.
type dead struct {
	kind   contract.Kind
	tenant string
	id     string // "" with body set
	body   []byte // default roadBody(id)
	reason string
	header nats.Header // the producer's
	// original is Digitoll-Original-Subject; default the submit subject
	// of kind and tenant.
	original string
}

// producerHeader is what a producer might send: trace context, a
// Digitoll-* header, a header of its own with two values.
func producerHeader() nats.Header {
	return nats.Header{
		"traceparent":       {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
		"Digitoll-Shipment": {"S-1234"},
		"X-Custom":          {"a", "b"},
	}
}

// putDead publishes d to the DLQ as the worker would and returns its
// sequence.
func putDead(t *testing.T, js jetstream.JetStream, d dead) uint64 {
	t.Helper()
	h := nats.Header{}
	for k, v := range d.header {
		h[k] = slices.Clone(v)
	}
	if d.body == nil {
		d.body = roadBody(d.id)
	}
	if d.original == "" {
		d.original = contract.SubmitSubject(d.kind, d.tenant)
	}
	h.Set(contract.HeaderDLQReason, d.reason)
	h.Set(contract.HeaderDLQError, "toll answered 409: already in use")
	h.Set(contract.HeaderAttempts, "3")
	h.Set(contract.HeaderOriginalSubject, d.original)
	h.Set(contract.HeaderFailedAt, "2025-01-15T08:05:03Z")
	h.Set(contract.HeaderOriginalStreamSeq, "41")
	ack, err := js.PublishMsg(testCtx(t), &nats.Msg{Subject: contract.DLQSubject(d.kind, d.tenant), Header: h, Data: d.body},
		jetstream.WithExpectStream(contract.StreamDLQ))
	if err != nil {
		t.Fatal(err)
	}
	return ack.Sequence
}

// listSeqs is the sequences List returns for f.
func listSeqs(t *testing.T, js jetstream.JetStream, f Filter) []uint64 {
	t.Helper()
	var seqs []uint64
	if err := List(testCtx(t), js, f, func(e Entry) bool {
		seqs = append(seqs, e.Seq)
		return true
	}); err != nil {
		t.Fatal(err)
	}
	return seqs
}

// submitted is the message of DIGITOLL_SUBMIT at seq.
func submitted(t *testing.T, js jetstream.JetStream, seq uint64) *jetstream.RawStreamMsg {
	t.Helper()
	ctx := testCtx(t)
	s, err := js.Stream(ctx, contract.StreamSubmit)
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.GetMsg(ctx, seq)
	if err != nil {
		t.Fatalf("submit stream sequence %d: %v", seq, err)
	}
	return m
}

// streamMsgs is how many messages stream holds.
func streamMsgs(t *testing.T, js jetstream.JetStream, stream string) uint64 {
	t.Helper()
	ctx := testCtx(t)
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	return s.CachedInfo().State.Msgs
}

// eventually polls cond until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		<-tick.C
	}
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }
