//go:build soak

package chaos

import (
	"testing"
	"time"
)

// The long versions, run with the build tag soak (see the package doc).

// 1,000 messages, six SIGKILLs at random moments, two worker processes
// sharing the consumer; one line per kill in a table.
func TestSoakKill9TwoWorkers(t *testing.T) {
	runKills(t, killScenario{
		messages:        1000,
		kills:           6,
		workers:         2,
		concurrency:     16,
		validationDelay: 300 * time.Millisecond,
		answerDelay:     300 * time.Millisecond,
		limit:           8 * time.Minute,
		table:           true,
	})
}

// A 60 s storm: 30 s of Toll answering 503 and 429 to most calls, then 30 s
// with Maskinporten down as well, while 500 messages flow; /readyz must
// answer 503 at some point during it (the kind paused as an outage).
func TestSoakStorm(t *testing.T) {
	runStorm(t, stormScenario{messages: 500, concurrency: 32, storm: 60 * time.Second, wantPause: true, limit: 8 * time.Minute})
}

// The storm of issue 12: 200 messages under 60 s of 30 % 503 and 10 % 429;
// no delivery waits a send lease, and the drain after the storm is logged.
func TestSoakRefusedCallsDoNotHoldTheirMessages(t *testing.T) {
	runRefusedStorm(t, 200, 60*time.Second, 8*time.Minute, nil)
}

// Lost answers at the scale of issue 12: 50 transports, each with a master
// and two houses, with 30 % of Toll's answers to declarations lost.
func TestSoakLostAnswers(t *testing.T) {
	runLostAnswers(t, 50, 2, 8*time.Minute)
}
