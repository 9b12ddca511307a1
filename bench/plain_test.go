package bench

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"testing"
	"time"

	"github.com/digitoll/digitoll-worker/contract"
)

// The plain worker's journal records stand for the worker's: valid JSON
// of about the worker's sizes (worker/state.go: 160–210 bytes short of
// the result, a done record its result and the digest), so that the
// writes cost NATS what the worker's cost.
func TestPlainJournalRecordsHaveTheWorkersSize(t *testing.T) {
	now := time.Date(2026, 12, 3, 11, 30, 0, 123456789, time.UTC)
	res, err := json.Marshal(contract.Result{
		ID: "overhead-3-000042", Tenant: contract.DefaultTenant, Kind: contract.KindRoad, Operation: contract.OpCreate, Level: contract.LevelHouseConsignment,
		Status: contract.StatusAccepted, MRN: "26NOABCDEFGHIJKLMN", RequestID: "3fa85f64-5717-4562-b3fc-2c963f66afa6",
		Attempts: 1, ReceivedAt: now, CompletedAt: now.Add(time.Second),
	})
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte("overhead-3-000042"))
	j := &journalWrites{seq: 27512, digest: base64.RawURLEncoding.EncodeToString(sum[:])}
	tests := []struct {
		phase    string
		record   []byte
		min, max int
	}{
		{"sending", j.record("sending", ""), 130, 250},
		{"sent", j.record("sent", "3fa85f64-5717-4562-b3fc-2c963f66afa6"), 160, 250},
		{"done", j.doneRecord(res), 300, 500},
	}
	for _, tt := range tests {
		var rec struct {
			Phase  string          `json:"phase"`
			Result json.RawMessage `json:"result"`
			Digest string          `json:"digest"`
		}
		if err := json.Unmarshal(tt.record, &rec); err != nil {
			t.Errorf("%s: %v: %s", tt.phase, err, tt.record)
			continue
		}
		if rec.Phase != tt.phase || rec.Digest != j.digest || (tt.phase == "done") != (rec.Result != nil) {
			t.Errorf("%s: read back phase %q, digest %q, result %s", tt.phase, rec.Phase, rec.Digest, rec.Result)
		}
		if n := len(tt.record); n < tt.min || n > tt.max {
			t.Errorf("%s: %d bytes, want %d–%d: %s", tt.phase, n, tt.min, tt.max, tt.record)
		}
	}
}
