package samples_test

import (
	"testing"

	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/samples"
)

// Every sample must be a valid submission: a sample that fails parsing
// would teach people a format the worker dead-letters.
func TestSamplesParse(t *testing.T) {
	got, err := samples.Load(contract.KindRoad)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) < 4 {
		t.Fatalf("%d road samples, want at least 4", len(got))
	}
	ids := map[string]bool{}
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
