package contract

import "testing"

// Reading the table costs a message nothing: the lists are joined only
// for an error message.
func TestKindTableAllocatesNothingForAValidSubmission(t *testing.T) {
	s := &Submission{ID: "a", Operation: OpCreate, Level: LevelHouseConsignment}
	if n := testing.AllocsPerRun(100, func() {
		if err := rulesOf(KindAir).checkOperationAndLevel(s); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("%v allocations per check, want 0", n)
	}
}
