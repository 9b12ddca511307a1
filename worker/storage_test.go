package worker

import (
	"encoding/json"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/digitoll/digitoll-worker/contract"
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
