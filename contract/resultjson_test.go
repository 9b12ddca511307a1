package contract

import (
	"encoding/json"
	"testing"
	"time"
)

// AppendJSON must write what json.Marshal writes, byte for byte: results
// are compared and deduplicated by subscribers, and recorded both ways.
func FuzzResultAppendJSON(f *testing.F) {
	f.Add("id-1", "acme", "25NO4TU2HUD59UCBT8", "a note", "path", "message", "k", "v", 1, int64(1736928300), true)
	f.Add("", "", "", "", "", "", "", "", 0, int64(0), false)
	f.Add("<a&b>", "\"q\"\\", "\u2028\u2029", "tab\tnl\nbs\bff\fcr\r\x00\x1f\x7f", "ø", "\xff\xfe bad", "\xc3", "é", 3, int64(-62135596800), true)
	f.Add("x", "y", "z", "permanent-http: HTTP 400 {\"error\":\"<b>\"}", "a.b[0]", "must be > 0 & < 9", "z", "a", 12, int64(253402300799), true)
	f.Add("x", "y", "z", "", "", "", "", "", -1, int64(253402300800), false)
	f.Fuzz(func(t *testing.T, id, tenant, mrn, note, path, msg, key, value string, attempts int, unix int64, lists bool) {
		at := time.Unix(unix, unix%1000*1e6).UTC()
		r := Result{
			ID: id, Tenant: tenant, Kind: KindRoad, Status: StatusAccepted, MRN: mrn, RequestID: value, Note: note,
			Attempts: attempts, ReceivedAt: at, CompletedAt: at.Add(1500 * time.Millisecond),
		}
		if lists {
			r.Operation, r.Level = OpCreate, Level(path)
			r.Errors = []FieldError{{Path: path, Message: msg}, {}}
			r.IncompleteDocumentation = []string{msg, note}
			r.Metadata = map[string]string{key: value, "ref": note, "": msg}
		}
		for _, r := range []Result{r, {}, {Errors: []FieldError{}, IncompleteDocumentation: []string{}, Metadata: map[string]string{}}} {
			want, wantErr := json.Marshal(&r)
			got, gotErr := r.AppendJSON([]byte("prefix"))
			if (gotErr == nil) != (wantErr == nil) {
				t.Fatalf("error %v, want %v", gotErr, wantErr)
			}
			if wantErr == nil && string(got) != "prefix"+string(want) {
				t.Fatalf("encoded\n%s\nwant\n%s", got[len("prefix"):], want)
			}
		}
	})
}

// A time outside UTC is left to json.Marshal.
func TestResultAppendJSONOtherZones(t *testing.T) {
	oslo := time.FixedZone("CET", 3600)
	r := Result{ID: "a", ReceivedAt: time.Date(2025, 1, 15, 9, 5, 0, 0, oslo), CompletedAt: time.Date(2025, 1, 15, 9, 5, 0, 0, oslo)}
	want, _ := json.Marshal(&r)
	got, err := r.AppendJSON(nil)
	if err != nil || string(got) != string(want) {
		t.Errorf("encoded %s, %v; want %s", got, err, want)
	}
}
