package dlq

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/digitoll/digitoll-worker/contract"
)

// fixture is a DLQ holding entries of two kinds, two tenants, an invalid
// tenant and several reasons, in two batches apart in time.
type fixture struct {
	js                   jetstream.JetStream
	roadAcme, roadBeta   uint64
	airAcme, invalid     uint64
	roadAcme2, roadAcme3 uint64
	secondBatch          time.Time // stored time of roadAcme2
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	js := newJS(t)
	f := fixture{js: js}
	f.roadAcme = putDead(t, js, dead{kind: contract.KindRoad, tenant: "acme", id: "a-1", reason: "permanent-http", header: producerHeader()})
	f.roadBeta = putDead(t, js, dead{kind: contract.KindRoad, tenant: "beta", id: "b-1", reason: "malformed"})
	f.airAcme = putDead(t, js, dead{kind: contract.KindAir, tenant: "acme", id: "a-2", reason: "deadline"})
	f.invalid = putDead(t, js, dead{kind: contract.KindRoad, tenant: contract.InvalidTenant, body: []byte("{not json"), reason: "malformed",
		original: "digitoll.submit.road.NOT_A_TENANT"})
	f.roadAcme2 = putDead(t, js, dead{kind: contract.KindRoad, tenant: "acme", id: "a-3", reason: "malformed"})
	f.roadAcme3 = putDead(t, js, dead{kind: contract.KindRoad, tenant: "acme", id: "a-4", reason: "permanent-http"})
	ctx := testCtx(t)
	s, err := js.Stream(ctx, contract.StreamDLQ)
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.GetMsg(ctx, f.roadAcme2)
	if err != nil {
		t.Fatal(err)
	}
	f.secondBatch = m.Time
	return f
}

func TestListSelectsByFilter(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	all := []uint64{fx.roadAcme, fx.roadBeta, fx.airAcme, fx.invalid, fx.roadAcme2, fx.roadAcme3}
	tests := []struct {
		name   string
		filter Filter
		want   []uint64
	}{
		{"everything, oldest first", Filter{}, all},
		{"kind", Filter{Kind: "air"}, []uint64{fx.airAcme}},
		{"tenant", Filter{Tenant: "acme"}, []uint64{fx.roadAcme, fx.airAcme, fx.roadAcme2, fx.roadAcme3}},
		{"kind and tenant", Filter{Kind: "road", Tenant: "acme"}, []uint64{fx.roadAcme, fx.roadAcme2, fx.roadAcme3}},
		{"invalid tenant", Filter{Tenant: contract.InvalidTenant}, []uint64{fx.invalid}},
		{"reason", Filter{Reason: "malformed"}, []uint64{fx.roadBeta, fx.invalid, fx.roadAcme2}},
		{"reason and tenant", Filter{Tenant: "acme", Reason: "permanent-http"}, []uint64{fx.roadAcme, fx.roadAcme3}},
		{"since", Filter{Since: fx.secondBatch}, []uint64{fx.roadAcme2, fx.roadAcme3}},
		{"since in the future", Filter{Since: time.Now().Add(time.Hour)}, nil},
		{"up to", Filter{UpTo: fx.airAcme}, []uint64{fx.roadAcme, fx.roadBeta, fx.airAcme}},
		{"no match", Filter{Kind: "document"}, nil},
		{"reason without match", Filter{Reason: "too-large"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := listSeqs(t, fx.js, tt.filter); !slices.Equal(got, tt.want) {
				t.Fatalf("List(%+v) = %v, want %v", tt.filter, got, tt.want)
			}
		})
	}
}

func TestListReadsEntriesWithoutConsuming(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	var got []Entry
	if err := List(testCtx(t), fx.js, Filter{Kind: "road", Tenant: "acme"}, func(e Entry) bool {
		got = append(got, e)
		return len(got) < 2
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("List went on after each returned false: %d entries", len(got))
	}
	e := got[0]
	want := Entry{Seq: fx.roadAcme, Subject: "digitoll.dlq.road.acme", Kind: "road", Tenant: "acme", ID: "a-1",
		Reason: "permanent-http", Error: "toll answered 409: already in use", OriginalSubject: "digitoll.submit.road.acme",
		OriginalSeq: 41, Attempts: 3, FailedAt: time.Date(2025, 1, 15, 8, 5, 3, 0, time.UTC)}
	if e.Seq != want.Seq || e.Subject != want.Subject || e.Kind != want.Kind || e.Tenant != want.Tenant || e.ID != want.ID ||
		e.Reason != want.Reason || e.Error != want.Error || e.OriginalSubject != want.OriginalSubject ||
		e.OriginalSeq != want.OriginalSeq || e.Attempts != want.Attempts || !e.FailedAt.Equal(want.FailedAt) {
		t.Fatalf("entry %+v\nwant  %+v", e, want)
	}
	if !bytes.Equal(e.Data, roadBody("a-1")) || e.Header.Get("Digitoll-Shipment") != "S-1234" {
		t.Fatalf("entry body %q / headers %v", e.Data, e.Header)
	}
	if got := listSeqs(t, fx.js, Filter{}); len(got) != 6 {
		t.Fatalf("a second List sees %d entries, want all 6", len(got))
	}
}

func TestListEndsOnAnEmptyOrMissingStream(t *testing.T) {
	t.Parallel()
	js := newJS(t)
	if got := listSeqs(t, js, Filter{}); len(got) != 0 {
		t.Fatalf("empty DLQ listed %v", got)
	}
	if err := js.DeleteStream(testCtx(t), contract.StreamDLQ); err != nil {
		t.Fatal(err)
	}
	err := List(testCtx(t), js, Filter{}, func(Entry) bool { return true })
	if !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("List without the stream: %v, want ErrStreamNotFound", err)
	}
}

func TestFiltersThatMatchNoSubjectAreRefused(t *testing.T) {
	t.Parallel()
	js := newJS(t)
	for _, f := range []Filter{{Kind: "sea"}, {Kind: "*"}, {Tenant: "ACME"}, {Tenant: ">"}, {Tenant: "a.b"}} {
		if err := List(testCtx(t), js, f, func(Entry) bool { return true }); !errors.Is(err, ErrInvalidFilter) {
			t.Errorf("List(%+v): %v, want ErrInvalidFilter", f, err)
		}
		if _, err := Purge(testCtx(t), js, f); !errors.Is(err, ErrInvalidFilter) {
			t.Errorf("Purge(%+v): %v, want ErrInvalidFilter", f, err)
		}
	}
}

func TestGet(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	e, err := Get(testCtx(t), fx.js, fx.invalid)
	if err != nil {
		t.Fatal(err)
	}
	if e.Tenant != contract.InvalidTenant || e.ID != "" || string(e.Data) != "{not json" || e.Reason != "malformed" {
		t.Fatalf("entry %+v", e)
	}
	for _, seq := range []uint64{0, 999} {
		if _, err := Get(testCtx(t), fx.js, seq); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Get(%d): %v, want ErrNotFound", seq, err)
		}
	}
}

func TestBodyID(t *testing.T) {
	tests := []struct {
		body, want string
	}{
		{`{"id":"a-1","operation":"create"}`, "a-1"},
		{`{"id":"has spaces / slashes"}`, "has spaces / slashes"},
		{`{"id":12}`, ""},
		{`{"operation":"create"}`, ""},
		{`["id"]`, ""},
		{`{not json`, ""},
		{``, ""},
	}
	for _, tt := range tests {
		if got := bodyID([]byte(tt.body)); got != tt.want {
			t.Errorf("bodyID(%s) = %q, want %q", tt.body, got, tt.want)
		}
	}
}

// Replay sends the body and the producer's headers back to the original
// subject with a Nats-Msg-Id of its own, then removes the entry.
func TestReplayRepublishesAndThenRemoves(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	ctx := testCtx(t)
	// The producer's original publish is still within the submit
	// stream's duplicate window (the worker consumed it, so it is gone
	// from the stream): a replay under the same Nats-Msg-Id would vanish.
	ack, err := fx.js.PublishMsg(ctx, &nats.Msg{Subject: "digitoll.submit.road.acme", Data: roadBody("a-1")},
		jetstream.WithMsgID(contract.MsgID("acme", "a-1")))
	if err != nil {
		t.Fatal(err)
	}
	s, err := fx.js.Stream(ctx, contract.StreamSubmit)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteMsg(ctx, ack.Sequence); err != nil {
		t.Fatal(err)
	}

	r, err := Replay(ctx, fx.js, fx.roadAcme)
	if err != nil {
		t.Fatal(err)
	}
	wantID := "acme/a-1/replay/" + itoa(fx.roadAcme)
	if r.Subject != "digitoll.submit.road.acme" || r.MsgID != wantID || r.Duplicate || r.Entry.Seq != fx.roadAcme || r.StreamSeq == 0 {
		t.Fatalf("Replayed %+v", r)
	}
	m := submitted(t, fx.js, r.StreamSeq)
	if m.Subject != "digitoll.submit.road.acme" || !bytes.Equal(m.Data, roadBody("a-1")) {
		t.Fatalf("replayed %s %q", m.Subject, m.Data)
	}
	want := producerHeader()
	want.Set(contract.HeaderMsgID, wantID)
	want.Set("Nats-Expected-Stream", contract.StreamSubmit) // stored by the server with the message
	if !equalHeaders(m.Header, want) {
		t.Fatalf("replayed headers %v\nwant %v", m.Header, want)
	}
	if _, err := Get(ctx, fx.js, fx.roadAcme); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the entry is still there after its replay: %v", err)
	}
	if got := listSeqs(t, fx.js, Filter{}); len(got) != 5 {
		t.Fatalf("%d entries left, want 5", len(got))
	}
}

func TestReplayKeepsTheEntryWhenThePublishFails(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	if err := fx.js.DeleteStream(testCtx(t), contract.StreamSubmit); err != nil {
		t.Fatal(err)
	}
	if _, err := Replay(testCtx(t), fx.js, fx.roadAcme); err == nil || errors.Is(err, ErrNotRemoved) {
		t.Fatalf("Replay with no submit stream: %v", err)
	}
	if _, err := Get(testCtx(t), fx.js, fx.roadAcme); err != nil {
		t.Fatalf("the entry is gone although its replay was never stored: %v", err)
	}
}

// When the entry cannot be removed after its replay, the error says so,
// and replaying it again is dropped as a duplicate.
func TestReplayingAnEntryTwiceQueuesItOnce(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	ctx := testCtx(t)
	s, err := fx.js.Stream(ctx, contract.StreamDLQ)
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.CachedInfo().Config
	cfg.DenyDelete = true
	if _, err := fx.js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	first, err := Replay(ctx, fx.js, fx.roadAcme)
	if !errors.Is(err, ErrNotRemoved) || first.StreamSeq == 0 || first.Duplicate {
		t.Fatalf("first replay: %+v, %v; want stored and ErrNotRemoved", first, err)
	}
	second, err := Replay(ctx, fx.js, fx.roadAcme)
	if !errors.Is(err, ErrNotRemoved) || !second.Duplicate || second.MsgID != first.MsgID {
		t.Fatalf("second replay: %+v, %v; want a duplicate of %s", second, err, first.MsgID)
	}
	if n := streamMsgs(t, fx.js, contract.StreamSubmit); n != 1 {
		t.Fatalf("submit stream holds %d messages, want the one replay", n)
	}
}

func TestEntriesWithoutAValidOriginalSubjectAreNotReplayed(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	noHeader := putDead(t, fx.js, dead{kind: contract.KindRoad, tenant: "acme", id: "a-9", reason: "malformed", original: "digitoll.result.road.acme"})
	for _, seq := range []uint64{fx.invalid, noHeader} {
		if _, err := Replay(testCtx(t), fx.js, seq); !errors.Is(err, ErrNotReplayable) {
			t.Fatalf("Replay(%d): %v, want ErrNotReplayable", seq, err)
		}
		if _, err := Get(testCtx(t), fx.js, seq); err != nil {
			t.Fatalf("entry %d removed although not replayed: %v", seq, err)
		}
	}
	if n := streamMsgs(t, fx.js, contract.StreamSubmit); n != 0 {
		t.Fatalf("submit stream holds %d messages", n)
	}
	if _, err := Replay(testCtx(t), fx.js, 999); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Replay of a missing entry: %v", err)
	}
}

func TestReplayAllReplaysTheFilteredEntries(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	var replayed, skipped []uint64
	n, err := ReplayAll(testCtx(t), fx.js, Filter{Kind: "road"}, func(r Replayed, err error) {
		switch {
		case err == nil:
			replayed = append(replayed, r.Entry.Seq)
		case errors.Is(err, ErrNotReplayable):
			skipped = append(skipped, r.Entry.Seq)
		default:
			t.Errorf("entry %d: %v", r.Entry.Seq, err)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	wantReplayed := []uint64{fx.roadAcme, fx.roadBeta, fx.roadAcme2, fx.roadAcme3}
	if n != 4 || !slices.Equal(replayed, wantReplayed) || !slices.Equal(skipped, []uint64{fx.invalid}) {
		t.Fatalf("ReplayAll = %d, replayed %v (want %v), skipped %v (want [%d])", n, replayed, wantReplayed, skipped, fx.invalid)
	}
	if got := listSeqs(t, fx.js, Filter{}); !slices.Equal(got, []uint64{fx.airAcme, fx.invalid}) {
		t.Fatalf("left in the DLQ: %v, want the air entry and the invalid one", got)
	}
	if n := streamMsgs(t, fx.js, contract.StreamSubmit); n != 4 {
		t.Fatalf("submit stream holds %d messages, want 4", n)
	}
}

func TestPurge(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		filter func(fixture) Filter
		want   int
		left   func(fixture) []uint64
	}{
		{"everything", func(fixture) Filter { return Filter{} }, 6, func(fixture) []uint64 { return nil }},
		{"by kind and tenant", func(fixture) Filter { return Filter{Kind: "road", Tenant: "acme"} }, 3,
			func(fx fixture) []uint64 { return []uint64{fx.roadBeta, fx.airAcme, fx.invalid} }},
		{"by tenant", func(fixture) Filter { return Filter{Tenant: contract.InvalidTenant} }, 1,
			func(fx fixture) []uint64 {
				return []uint64{fx.roadAcme, fx.roadBeta, fx.airAcme, fx.roadAcme2, fx.roadAcme3}
			}},
		{"by reason", func(fixture) Filter { return Filter{Reason: "malformed"} }, 3,
			func(fx fixture) []uint64 { return []uint64{fx.roadAcme, fx.airAcme, fx.roadAcme3} }},
		{"since", func(fx fixture) Filter { return Filter{Since: fx.secondBatch} }, 2,
			func(fx fixture) []uint64 { return []uint64{fx.roadAcme, fx.roadBeta, fx.airAcme, fx.invalid} }},
		{"up to", func(fx fixture) Filter { return Filter{UpTo: fx.roadBeta} }, 2,
			func(fx fixture) []uint64 { return []uint64{fx.airAcme, fx.invalid, fx.roadAcme2, fx.roadAcme3} }},
		{"tenant up to", func(fx fixture) Filter { return Filter{Tenant: "acme", UpTo: fx.roadAcme2} }, 3,
			func(fx fixture) []uint64 { return []uint64{fx.roadBeta, fx.invalid, fx.roadAcme3} }},
		{"nothing matches", func(fixture) Filter { return Filter{Kind: "document"} }, 0,
			func(fx fixture) []uint64 {
				return []uint64{fx.roadAcme, fx.roadBeta, fx.airAcme, fx.invalid, fx.roadAcme2, fx.roadAcme3}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fx := newFixture(t)
			n, err := Purge(testCtx(t), fx.js, tt.filter(fx))
			if err != nil {
				t.Fatal(err)
			}
			if n != tt.want {
				t.Errorf("purged %d, want %d", n, tt.want)
			}
			if got, want := listSeqs(t, fx.js, Filter{}), tt.left(fx); !slices.Equal(got, want) {
				t.Errorf("left %v, want %v", got, want)
			}
		})
	}
}

func TestListStopsWhenItsContextEnds(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	ctx, cancel := context.WithCancel(testCtx(t))
	seen := 0
	err := List(ctx, fx.js, Filter{}, func(Entry) bool {
		seen++
		cancel()
		return true
	})
	if !errors.Is(err, context.Canceled) || seen != 1 {
		t.Fatalf("List after cancel: %v after %d entries, want context.Canceled after 1", err, seen)
	}
}

// equalHeaders compares headers by name and values.
func equalHeaders(a, b nats.Header) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}
