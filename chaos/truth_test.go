package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/embednats"
	"github.com/digitoll/digitoll-worker/simulator"
)

// Log lines of a delivery that found a sending record (worker/message.go):
// a lease wait, and a re-send after the lease.
const leaseLine = "waiting for its lease"

// chains makes n road transports, each with one master (after the
// transport) and houses houses (after the master), linked by document
// numbers as Toll links them. A master or house whose answer is lost can
// then be found among its parent's descendants.
func chains(t *testing.T, prefix string, n, houses int) []submission {
	t.Helper()
	transport, master, house := sampleTemplate(t, "01-transport.json"), sampleTemplate(t, "02-master.json"), houseTemplate(t)
	subject := contract.SubmitSubject(contract.KindRoad, contract.DefaultTenant)
	var out []submission
	for i := range n {
		tr := fmt.Sprintf("TR-%s-%03d", prefix, i)
		mawb := fmt.Sprintf("MAWB-%s-%03d", prefix, i)
		trID, mID := "chaos-"+tr, "chaos-"+mawb
		out = append(out, submission{id: trID, subject: subject, docNumber: tr, want: contract.StatusAccepted,
			body: transport.edit(t, func(sub map[string]any) {
				sub["id"] = trID
				decl := sub["declaration"].(map[string]any)
				decl["activeBorderTransportMeans"].(map[string]any)["identificationNumber"] = tr
				decl["consignmentMasterLevel"] = []any{map[string]any{"transportDocumentMasterLevel": map[string]any{"documentNumber": mawb, "type": "N741"}}}
			})})
		out = append(out, submission{id: mID, subject: subject, docNumber: mawb, want: contract.StatusAccepted,
			body: master.edit(t, func(sub map[string]any) {
				sub["id"], sub["after"] = mID, trID
				m := sub["declaration"].(map[string]any)["consignmentMasterLevel"].(map[string]any)
				m["transportDocumentMasterLevel"].(map[string]any)["documentNumber"] = mawb
			})})
		for k := range houses {
			hwb := fmt.Sprintf("HWB-%s-%03d-%d", prefix, i, k)
			hID := "chaos-" + hwb
			out = append(out, submission{id: hID, subject: subject, docNumber: hwb, want: contract.StatusAccepted,
				body: house.edit(t, func(sub map[string]any) {
					sub["id"], sub["after"] = hID, mID
					h := sub["declaration"].(map[string]any)["consignmentHouseLevel"].(map[string]any)
					h["transportDocumentHouseLevel"].(map[string]any)["documentNumber"] = hwb
					h["consignmentMasterLevel"].(map[string]any)["transportDocumentMasterLevel"].(map[string]any)["documentNumber"] = mawb
				})})
		}
	}
	return out
}

// With 30 % of Toll's answers to declarations lost after Toll processed
// them (the connection closed without a response), no declaration Toll
// accepted is reported rejected: each is accepted with the MRN Toll gave
// it, or, for a transport (Toll has no lookup of one) and what hangs under
// an unresolved transport, unresolved. Masters and houses whose parent was
// accepted are all found: accepted with Toll's MRN.
func TestLostAnswersAreFoundOrUnresolved(t *testing.T) {
	runLostAnswers(t, 20, 2, 3*time.Minute)
}

// runLostAnswers publishes transports chains of a transport, a master and
// perMaster houses with 30 % of Toll's answers to declarations lost.
func runLostAnswers(t *testing.T, transports, perMaster int, limit time.Duration) {
	srv := startBroker(t, t.TempDir(), embednats.RandomPort)
	r := newRig(t, rigConfig{
		natsURLs:        []string{srv.ClientURL()},
		concurrency:     16,
		validationDelay: 100 * time.Millisecond,
		// The production lease: a record left "sending" by a call
		// that is over would show as a minute's wait.
		env: map[string]string{"DIGITOLL_SEND_LEASE": "1m"},
	})
	r.sim.SetFaults(simulator.Faults{LoseResponseRate: 0.3})
	subs := chains(t, "lost", transports, perMaster)
	w := r.startWorker()
	r.dumpOnFailure(func() []*workerProc { return []*workerProc{w} })
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	start := time.Now()
	r.publish(ctx, subs)
	r.waitResults(uint64(len(subs)), limit)
	r.quiesce(limit)
	elapsed := time.Since(start)
	r.sim.SetFaults(simulator.Faults{})
	r.stop(w)
	r.checkNoPanic(w)
	f := r.check(subs, resendsAllowed)

	// Masters and houses under an accepted parent are found.
	results := map[string]contract.Result{}
	for _, m := range r.readAll(contract.StreamResults, 30*time.Second) {
		var res contract.Result
		if err := json.Unmarshal(m.Data(), &res); err == nil {
			results[res.ID] = res
		}
	}
	after := map[string]string{}
	for _, s := range subs {
		var sub contract.Submission
		if err := json.Unmarshal(s.body, &sub); err != nil {
			t.Fatal(err)
		}
		after[s.id] = sub.After
	}
	byLevel := map[contract.Level]map[contract.Status]int{}
	for _, s := range subs {
		res := results[s.id]
		if byLevel[res.Level] == nil {
			byLevel[res.Level] = map[contract.Status]int{}
		}
		byLevel[res.Level][res.Status]++
		if p := after[s.id]; p != "" && results[p].Status == contract.StatusAccepted && res.Status != contract.StatusAccepted {
			t.Errorf("%s: %s (note %q), though its parent %s was accepted as %s: it should have been found under it",
				s.id, res.Status, res.Note, p, results[p].MRN)
		}
	}
	posts := r.sim.Stats().Requests("POST /toll/api/movement/road/v2/transport") +
		r.sim.Stats().Requests("POST /toll/api/movement/road/v2/master-consignment") +
		r.sim.Stats().Requests("POST /toll/api/movement/road/v2/house-consignment")
	leaseWaits, crashes := w.countLines(leaseLine), w.countLines(crashLine)
	t.Logf("lost answers (30 %%): %s POSTs=%d lease-waits=%d deliveries-after-crash=%d elapsed=%s",
		f, posts, leaseWaits, crashes, elapsed.Round(time.Millisecond))
	for _, level := range []contract.Level{contract.LevelTransport, contract.LevelMasterConsignment, contract.LevelHouseConsignment} {
		t.Logf("  %-18s %v", level, byLevel[level])
	}
	if f.resends == 0 {
		t.Errorf("no declaration was sent twice: the lost answers were not felt")
	}
	if leaseWaits+crashes > 0 {
		t.Errorf("%d lease waits and %d deliveries after a crash without any crash: a call that was over held its message", leaseWaits, crashes)
	}
}

// A storm of 503s and 429s (refused before Toll processed anything)
// leaves no record saying "sending": no delivery waits out a send lease or
// takes an earlier one for dead. The production lease (a minute) is set,
// so a record left behind would show. The drain after the storm is
// measured and logged, not asserted.
//
// The drain is bounded by the rate limiter, not the lease: each 429 with
// Retry-After halves the rate down to 1/64 of DIGITOLL_TOLL_RATE, which
// holds for 30 s and climbs back over 2 minutes (package ratelimit), and
// polls share that rate with POSTs.
//
// The short version ends each delivery's in-process retries after 1 s
// (DIGITOLL_RETRY_BUDGET), so that deliveries end during the storm on a
// refused call or a rate-limit wait, which is what used to leave a record
// saying "sending"; it never pauses the kind, and it raises
// DIGITOLL_TOLL_RATE so that the limiter's floor (1/64 of it) does not
// make the drain, which is not what it tests, take a minute. The soak
// version runs the production settings.
func TestRefusedCallsDoNotHoldTheirMessages(t *testing.T) {
	runRefusedStorm(t, 100, 5*time.Second, 3*time.Minute, map[string]string{
		"DIGITOLL_TOLL_RATE": "1000", "DIGITOLL_RETRY_BUDGET": "1s", "DIGITOLL_OUTAGE_THRESHOLD": "-1"})
}

// runRefusedStorm publishes messages houses into storm of 30 % 503 and
// 10 % 429 and checks that none waited a send lease; env holds further
// worker settings.
func runRefusedStorm(t *testing.T, messages int, storm, limit time.Duration, env map[string]string) {
	srv := startBroker(t, t.TempDir(), embednats.RandomPort)
	r := newRig(t, rigConfig{
		natsURLs:        []string{srv.ClientURL()},
		concurrency:     16,
		validationDelay: 100 * time.Millisecond,
		env:             withEnv(map[string]string{"DIGITOLL_SEND_LEASE": "1m"}, env),
	})
	subs := houses(t, "refused", messages)
	w := r.startWorker()
	r.dumpOnFailure(func() []*workerProc { return []*workerProc{w} })
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	r.sim.SetFaults(simulator.Faults{ErrorRate: 0.3, TooManyRate: 0.1})
	start := time.Now()
	r.publish(ctx, subs)
	select {
	case <-time.After(storm):
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	}
	r.sim.SetFaults(simulator.Faults{})
	calm := time.Now()
	during, err := r.streamMsgs(ctx, contract.StreamResults)
	if err != nil {
		t.Fatal(err)
	}
	r.waitResults(uint64(messages), limit)
	drain := time.Since(calm)
	r.quiesce(limit)
	r.stop(w)
	r.checkNoPanic(w)
	f := r.check(subs, noResends)
	stats := r.sim.Stats()
	posts := stats.Requests("POST /toll/api/movement/road/v2/house-consignment")
	leaseWaits, crashes := w.countLines(leaseLine), w.countLines(crashLine)
	t.Logf("storm of %s (30 %% 503, 10 %% 429 with Retry-After 1): %s results-during-storm=%d POSTs=%d lease-waits=%d deliveries-after-crash=%d drain-after-storm=%s total=%s",
		storm, f, during, posts, leaseWaits, crashes, drain.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	if posts <= messages {
		t.Errorf("%d POSTs for %d messages: the storm was not felt", posts, messages)
	}
	if leaseWaits+crashes > 0 {
		t.Errorf("%d lease waits and %d deliveries after a crash: a call refused before Toll processed it held its message", leaseWaits, crashes)
	}
}

// withEnv is base with over's settings added.
func withEnv(base, over map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range base {
		out[k] = v
	}
	for k, v := range over {
		out[k] = v
	}
	return out
}
