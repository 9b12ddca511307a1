package contract_test

import (
	"testing"

	"github.com/digitoll/digitoll-worker/contract"
)

// A replay's Nats-Msg-Id is told from a producer's by its form alone:
// submission ids never contain '/'.
func TestReplayMsgID(t *testing.T) {
	tests := []struct {
		msgID  string
		replay bool
	}{
		{contract.MsgID("acme", "HWB-1-create"), false},
		{contract.MsgID("acme", "replay"), false},
		{contract.ReplayMsgID(contract.MsgID("acme", "HWB-1-create"), 42), true},
		{contract.ReplayMsgID("acme", 7), true},
		{"", false},
	}
	for _, tc := range tests {
		if got := contract.IsReplay(tc.msgID); got != tc.replay {
			t.Errorf("IsReplay(%q) = %v, want %v", tc.msgID, got, tc.replay)
		}
	}
	if got, want := contract.ReplayMsgID("acme/HWB-1-create", 42), "acme/HWB-1-create/replay/42"; got != want {
		t.Errorf("ReplayMsgID = %q, want %q", got, want)
	}
}
