package samples_test

import (
	"testing"

	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/samples"
)

// Every sample must be a valid submission: a sample that fails parsing
// would teach people a format the worker dead-letters.
func TestSamplesParse(t *testing.T) {
	ids := map[string]bool{}
	for kind, least := range map[contract.Kind]int{contract.KindRoad: 4, contract.KindAir: 3, contract.KindEntry: 1, contract.KindDocument: 1} {
		got, err := samples.Load(kind)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) < least {
			t.Fatalf("%d %s samples, want at least %d", len(got), kind, least)
		}
		checkSamples(t, got, ids)
	}
}

func checkSamples(t *testing.T, got []samples.Sample, ids map[string]bool) {
	t.Helper()
	for _, s := range got {
		sub, err := contract.ParseSubmission(s.Kind, s.Body)
		if err != nil {
			t.Errorf("%s: %v", s.Name, err)
			continue
		}
		if ids[sub.ID] {
			t.Errorf("%s: id %s used twice", s.Name, sub.ID)
		}
		ids[sub.ID] = true
	}
}
