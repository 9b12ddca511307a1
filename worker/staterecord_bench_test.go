package worker

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/digitoll/digitoll-worker/contract"
)

// BenchmarkStateRecord encodes the three records a new submission writes
// (sending, sent, done), as journal.write does.
func BenchmarkStateRecord(b *testing.B) {
	now := time.Date(2026, 12, 3, 11, 30, 0, 123456789, time.UTC)
	res := contract.Result{
		ID: "HWB-0001", Tenant: "default", Kind: contract.KindRoad, Operation: contract.OpCreate, Level: contract.LevelHouseConsignment,
		Status: contract.StatusAccepted, MRN: "26NOABCDEFGHIJKLMN", RequestID: "3fa85f64-5717-4562-b3fc-2c963f66afa6",
		Attempts: 1, ReceivedAt: now, CompletedAt: now.Add(time.Second),
	}
	digest := submissionDigest([]byte(`{"id":"HWB-0001"}`))
	records := []state{
		{Phase: phaseSending, Digest: digest},
		{Phase: phaseSent, RequestID: res.RequestID, Digest: digest},
		{Phase: phaseDone, RequestID: res.RequestID, Result: &res, Digest: digest},
	}
	b.ReportAllocs()
	for b.Loop() {
		for _, st := range records {
			if _, err := encodeRecord(recordOf(st, now, 42, 1)); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// encodeRecord must write what json.Marshal writes, byte for byte:
// records written by either must read alike, and a record's size on
// disk is measured (docs/performance.md, Storage).
func FuzzEncodeRecord(f *testing.F) {
	f.Add("sending", "", false, "", int64(1764761400), uint64(42), 1, "digest", false, 0)
	f.Add("done", "3fa85f64-5717", false, "26NOABC", int64(1764761400), uint64(0), 0, "", true, 0)
	f.Add("sent", "<a&b>\u2028\"\\\x00\xff", true, "\xc3", int64(-62135596800), uint64(1<<63), -3, "é\t", true, 3600)
	f.Add("idle", "r", true, "m", int64(253402300800), uint64(1), 2, "d", false, 0)
	f.Add("", "", false, "", int64(0), uint64(0), 0, "", false, -7200)
	f.Fuzz(func(t *testing.T, phase, requestID string, maybeSent bool, mrn string, unix int64, seq uint64, delivery int, digest string, withResult bool, zoneOffset int) {
		at := time.Unix(unix, unix%1000*1e6).UTC()
		if zoneOffset != 0 {
			at = at.In(time.FixedZone("Z", zoneOffset%86400))
		}
		st := state{Phase: phase, RequestID: requestID, MaybeSent: maybeSent, UpdatedAt: at, Seq: seq, Delivery: delivery, Digest: digest}
		if withResult {
			st.Result = &contract.Result{ID: requestID, Status: contract.StatusRejected, MRN: mrn, RequestID: requestID,
				Errors: []contract.FieldError{{Path: mrn, Message: digest}}, ReceivedAt: at.UTC(), CompletedAt: at}
		}
		for _, st := range []state{st, {}, {UpdatedAt: at}, {Phase: phase, Result: st.Result}} {
			want, wantErr := json.Marshal(st)
			got, gotErr := encodeRecord(st)
			if (gotErr == nil) != (wantErr == nil) {
				t.Fatalf("error %v, want %v", gotErr, wantErr)
			}
			if wantErr == nil && string(got) != string(want) {
				t.Fatalf("encoded\n%s\nwant\n%s", got, want)
			}
		}
	})
}
