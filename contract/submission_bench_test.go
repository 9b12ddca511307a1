package contract_test

import (
	"testing"

	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/samples"
)

// BenchmarkParseSubmission parses the sample house consignment, the
// first thing the worker does with every message; allocs/op is the
// allocations per message.
func BenchmarkParseSubmission(b *testing.B) {
	body := sampleBody(b, contract.KindRoad, "03-house.json")
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := contract.ParseSubmission(contract.KindRoad, body); err != nil {
			b.Fatal(err)
		}
	}
}

// sampleBody is the body of one of the project's sample submissions.
func sampleBody(tb testing.TB, kind contract.Kind, name string) []byte {
	tb.Helper()
	all, err := samples.Load(kind)
	if err != nil {
		tb.Fatal(err)
	}
	for _, s := range all {
		if s.Name == name {
			return s.Body
		}
	}
	tb.Fatalf("sample %s/%s is missing", kind, name)
	return nil
}
