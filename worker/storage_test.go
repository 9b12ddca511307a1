package worker

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/handlers"
	"github.com/digitoll/digitoll-worker/internal/natstest"
)

// The done record, what the journal keeps of a submission for the bucket's
// TTL, holds the result and the digest only; read back, it still gives the
// requestId and makes a redelivery republish the result.
func TestDoneRecordKeepsResultAndDigestOnly(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t)
	key := stateKey("default", contract.KindRoad, "lean:1")
	j := newJournal(e.kv, key, nil, 0, 4, 2, time.Now)
	j.digest = "d1"
	if err := j.Sending(ctx); err != nil {
		t.Fatal(err)
	}
	if err := j.Sent(ctx, "r-1"); err != nil {
		t.Fatal(err)
	}
	res := contract.Result{ID: "lean:1", Tenant: "default", Kind: contract.KindRoad, Status: contract.StatusAccepted, MRN: "26NO1", RequestID: "r-1"}
	if err := j.done(ctx, res); err != nil {
		t.Fatal(err)
	}
	e1, err := e.kv.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(e1.Value(), &fields); err != nil {
		t.Fatal(err)
	}
	if got, want := slices.Sorted(maps.Keys(fields)), []string{"digest", "phase", "result"}; !slices.Equal(got, want) {
		t.Fatalf("done record has fields %v, want %v: %s", got, want, e1.Value())
	}
	st, _, err := loadState(ctx, e.kv, key)
	if err != nil {
		t.Fatal(err)
	}
	if st.RequestID != "r-1" || st.Digest != "d1" || st.Result == nil || st.Result.MRN != "26NO1" {
		t.Fatalf("read back %+v", st)
	}
	// Any later delivery, of this message or a repeat, republishes it.
	for _, d := range []struct {
		seq      uint64
		delivery int
	}{{4, 1}, {4, 3}, {9, 1}} {
		if got := decideState(st, d.seq, d.delivery); got != republishResult {
			t.Errorf("seq %d delivery %d: %s, want %s", d.seq, d.delivery, got, republishResult)
		}
	}
}

// Records written by versions before the lean done record, which kept
// every field, read as they did: a deployment's bucket holds them for the
// TTL.
func TestFormerRecordsReadAsBefore(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t)
	former := map[string]string{
		"done": `{"phase":"done","requestId":"r-2","result":{"id":"old:1","tenant":"default","kind":"road","status":"accepted","mrn":"26NO2","requestId":"r-2","errors":[],"incompleteDocumentation":[],"attempts":1,"receivedAt":"2026-11-20T10:00:00Z","completedAt":"2026-11-20T10:00:01Z"},"updatedAt":"2026-11-20T10:00:01Z","seq":3,"delivery":1,"digest":"d2"}`,
		"sent": `{"phase":"sent","requestId":"r-3","updatedAt":"2026-11-20T10:00:01Z","seq":3,"delivery":2,"digest":"d3"}`,
	}
	for phase, raw := range former {
		key := stateKey("default", contract.KindRoad, "old:"+phase)
		if _, err := e.kv.Put(ctx, key, []byte(raw)); err != nil {
			t.Fatal(err)
		}
		st, rev, err := loadState(ctx, e.kv, key)
		if err != nil || rev == 0 {
			t.Fatalf("%s: %v", phase, err)
		}
		switch phase {
		case "done":
			if decideState(st, 9, 1) != republishResult || st.Result.MRN != "26NO2" || st.RequestID != "r-2" || st.Digest != "d2" {
				t.Errorf("former done record read as %+v", st)
			}
		case "sent":
			if decideState(st, 3, 3) != resumeRequest || decideState(st, 3, 1) != leaveToOwner || st.RequestID != "r-3" ||
				!st.UpdatedAt.Equal(time.Date(2026, 11, 20, 10, 0, 1, 0, time.UTC)) {
				t.Errorf("former sent record read as %+v", st)
			}
		}
	}
}

// EnsureStreams compresses the state bucket, the results and the DLQ
// streams, and applies it to those a former version created uncompressed.
func TestEnsureStreamsCompressesWhatItKeeps(t *testing.T) {
	t.Parallel()
	_, js := natstest.Start(t, "")
	ctx := testCtx(t)
	// As the former version made them.
	if _, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: StateBucket, History: 1, TTL: DefaultStateTTL}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: contract.StreamResults, Subjects: []string{contract.SubjectsResults}, MaxAge: DefaultResultsMaxAge, Duplicates: duplicateWindow,
	}); err != nil {
		t.Fatal(err)
	}
	if err := EnsureStreams(ctx, js, StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	want := map[string]jetstream.StoreCompression{
		"KV_" + StateBucket:    jetstream.S2Compression,
		contract.StreamResults: jetstream.S2Compression,
		contract.StreamDLQ:     jetstream.S2Compression,
		contract.StreamSubmit:  jetstream.NoCompression,
	}
	for name, c := range want {
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.CachedInfo().Config.Compression; got != c {
			t.Errorf("%s compression %s, want %s", name, got, c)
		}
	}
}

// A first delivery does not read the state record before its first write:
// a fresh submission costs no read at all. A repeat of it, which finds
// the record at that write, is handed back and answered with the
// recorded result, without reaching Toll again.
func TestFirstDeliveryCreatesWithoutReading(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	nc := e.conn(t)
	// Every read of a record: a direct get (KV buckets allow it) or a
	// message get on the bucket's stream.
	var reads atomic.Int64
	for _, subj := range []string{"$JS.API.DIRECT.GET.KV_" + StateBucket + ".>", "$JS.API.DIRECT.GET.KV_" + StateBucket, "$JS.API.STREAM.MSG.GET.KV_" + StateBucket} {
		if _, err := nc.Subscribe(subj, func(*nats.Msg) { reads.Add(1) }); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	h := &sendingFirst{fakeHandler{behaviour: func(ctx context.Context, req handlers.Request) (handlers.Outcome, error) {
		if err := req.Journal.Sent(ctx, "r-"+req.Submission.ID); err != nil {
			return handlers.Outcome{}, err
		}
		return accept(ctx, req)
	}}}
	startWorker(t, e.js, Config{Handlers: map[contract.Kind]Handler{contract.KindRoad: h}})
	submit(t, e.js, roadSubject, "default/fresh:1", roadBody("fresh:1"), nil)
	first := resultsByID(t, e, roadResults, 1)["fresh:1"]
	if first.Status != contract.StatusAccepted {
		t.Fatalf("result %+v", first)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if n := reads.Load(); n != 0 {
		t.Errorf("a fresh submission read its state record %d times, want none", n)
	}

	// The same submission again, past the duplicate window (another
	// Nats-Msg-Id): its first delivery finds the record when it claims it.
	submit(t, e.js, roadSubject, "repeat", roadBody("fresh:1"), nil)
	eventually(t, 30*time.Second, "the repeat to be acknowledged", func() bool {
		return count(t, e.js, contract.StreamSubmit, contract.SubjectsSubmit) == 0
	})
	if n := h.callsOf("fresh:1"); n != 1 {
		t.Errorf("fresh:1 reached Toll %d times, want once", n)
	}
	if n := count(t, e.js, contract.StreamResults, roadResults); n != 1 {
		t.Errorf("%d results, want one (the repeat's is the same, deduplicated)", n)
	}
	if reads.Load() == 0 {
		t.Error("the repeat never read the record it found")
	}
}

// A first delivery about to dead-letter reads the record first: a message
// found past its deadline whose submission has a result republishes it
// instead of adding a dead-lettered one.
func TestFirstDeliveryDeadLettersOnlyWithoutARecord(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	stored := contract.Result{ID: "late:1", Tenant: "default", Kind: contract.KindRoad, Status: contract.StatusAccepted, MRN: "26NO3", RequestID: "r-late"}
	putState(t, e.kv, "late:1", state{Phase: phaseDone, Result: &stored})
	h := &sendingFirst{fakeHandler{behaviour: accept}}
	// Every message is past its deadline.
	late := func() time.Time { return time.Now().Add(2 * DefaultMessageDeadline) }
	startWorker(t, e.js, Config{Handlers: map[contract.Kind]Handler{contract.KindRoad: h}, Now: late})
	submit(t, e.js, roadSubject, "", roadBody("late:1"), nil)
	submit(t, e.js, roadSubject, "", roadBody("late:2"), nil)
	got := resultsByID(t, e, roadResults, 2)
	if r := got["late:1"]; r.Status != contract.StatusAccepted || r.MRN != "26NO3" {
		t.Errorf("late:1: %+v, want the recorded result", r)
	}
	if r := got["late:2"]; r.Status != contract.StatusDeadLettered {
		t.Errorf("late:2: %+v, want dead-lettered", r)
	}
	if n := count(t, e.js, contract.StreamDLQ, "digitoll.dlq.>"); n != 1 {
		t.Errorf("%d dead letters, want late:2's only", n)
	}
	if n := h.totalCalls(); n != 0 {
		t.Errorf("the handler ran %d times for messages past their deadline", n)
	}
}

// The first write of a journal that did not read the record tells a record
// found there (Found) from a race lost to another delivery that read it.
func TestUnreadJournalFindsTheRecord(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t)
	key := stateKey("default", contract.KindRoad, "found:1")
	if err := newJournal(e.kv, key, nil, 0, 1, 1, time.Now).Sending(ctx); err != nil {
		t.Fatal(err)
	}
	unread := newJournal(e.kv, key, nil, 0, 2, 1, time.Now)
	unread.unread = true
	if !unread.unverified() {
		t.Fatal("a journal that neither read nor wrote is not unverified")
	}
	if err := unread.Sending(ctx); !errors.Is(err, errSuperseded) || !unread.Found() || !unread.Superseded() {
		t.Fatalf("first write onto a record not read: %v, found %v", err, unread.Found())
	}
	read := newJournal(e.kv, key, nil, 0, 1, 2, time.Now)
	if err := read.Sending(ctx); !errors.Is(err, errSuperseded) || read.Found() {
		t.Fatalf("a race lost after reading: %v, found %v", err, read.Found())
	}
	fresh := newJournal(e.kv, stateKey("default", contract.KindRoad, "found:2"), nil, 0, 3, 1, time.Now)
	fresh.unread = true
	if err := fresh.Sending(ctx); err != nil || fresh.Found() || fresh.unverified() {
		t.Fatalf("first write of a fresh submission: %v, found %v", err, fresh.Found())
	}
}
