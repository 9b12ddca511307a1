package worker

import (
	"fmt"
	"time"

	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/handlers"
)

// Waiting for `after`: a submission naming an earlier one is not sent to
// Toll before that one's result exists (docs/contract.md invariant 3). The
// message is handed back with a delay rather than held, so it takes no
// slot and holds up nothing else while it waits; the waits count toward
// the message deadline only, never toward MaxAttempts.
const (
	afterWaitMin = 500 * time.Millisecond
	afterWaitMax = 30 * time.Second
)

// afterWait is the redelivery delay of a message still waiting for its
// `after` on the given delivery: short at first, since the earlier
// message is usually in flight, growing to afterWaitMax for one that is
// stuck.
func afterWait(delivery int) time.Duration { return Backoff(afterWaitMin, afterWaitMax)(delivery) }

// awaitAfter looks for the result of sub.After among the tenant's
// submissions of every kind (an entry presentation names the road or air
// transport it presents). It returns
//   - wait: no result yet; the message has been handed back (or
//     dead-lettered at its deadline) and the caller stops;
//   - out: the earlier submission was dead-lettered, or ended without
//     being accepted: the outcome is a rejection that says so on the
//     field "after", with no Toll call;
//   - otherwise the submission to send, with MRN filled in from the
//     earlier result when the producer left it out, and that accepted
//     result.
//
// A dead-lettered predecessor answers its successors at once instead of
// letting them wait a day for a result that comes only if an operator
// replays it. Replaying it still works (the replay is processed like any
// submission), but the successors answered meanwhile keep their
// rejection: upstream sends them again under new ids.
func (j *job) awaitAfter(sub *contract.Submission) (resolved *contract.Submission, prev *contract.Result, out *handlers.Outcome, wait bool) {
	prev, dead, err := j.findResult(sub.After)
	if err != nil {
		j.fail(err, j.d.receivedAt.Add(j.w.cfg.MessageDeadline))
		return nil, nil, nil, true
	}
	if prev == nil && dead {
		j.log.Info("the submission named in after was dead-lettered; rejecting this one without a Toll call", "after", sub.After)
		return nil, nil, afterRefused(fmt.Sprintf(
			"not sent to Toll: the submission it names, %s, was dead-lettered; once %s is replayed or resent and accepted, send this one again under a new id",
			sub.After, sub.After)), false
	}
	if prev == nil {
		deadline := j.d.receivedAt.Add(j.w.cfg.MessageDeadline)
		now := j.w.cfg.Now()
		delay := min(afterWait(j.d.delivery), deadline.Sub(now))
		if delay <= 0 {
			j.deadLetter(reasonDeadline, fmt.Errorf("waited until the message deadline %s for the result of %q (after)",
				deadline.UTC().Format(time.RFC3339), sub.After))
			return nil, nil, nil, true
		}
		j.log.Info("waiting for the result of the submission named in after", "after", sub.After, "retryIn", delay)
		j.nak(delay, CauseAfter)
		return nil, nil, nil, true
	}
	needsMRN := sub.MRN == "" && sub.Operation != contract.OpCreate && sub.Operation != contract.OpUpload
	if needsMRN && (prev.Status != contract.StatusAccepted || prev.MRN == "") {
		return nil, nil, afterRefused(fmt.Sprintf(
			"%s has no MRN to act on: the submission it names, %s, ended %s", sub.Operation, sub.After, prev.Status)), false
	}
	if prev.Status != contract.StatusAccepted {
		// Sending it anyway would act out of the order upstream asked
		// for: what it follows did not happen.
		return nil, nil, afterRefused(fmt.Sprintf(
			"not sent to Toll: the submission it names, %s, ended %s; once %s is accepted, send this one again under a new id",
			sub.After, prev.Status, sub.After)), false
	}
	if !needsMRN {
		return sub, prev, nil, false
	}
	cp := *sub
	cp.MRN = prev.MRN
	j.withMRN(cp.MRN)
	j.log.Debug("MRN taken from the result of the submission named in after", "after", sub.After)
	return &cp, prev, nil, false
}

// afterRefused is the rejection of a submission whose `after` cannot be
// followed.
func afterRefused(msg string) *handlers.Outcome {
	return &handlers.Outcome{
		Status: contract.StatusRejected,
		Errors: []contract.FieldError{{Path: "after", Message: msg}},
		Note:   "not sent to Toll",
	}
}

// findResult returns the recorded result of the tenant's submission id,
// of any kind (its Kind set from the key it was found under), or nil when there is none yet; dead is true when there is
// none but a submission of that id was dead-lettered (and not replayed
// since). The message's own kind is looked at first: that is where
// `after` points nearly always.
func (j *job) findResult(id string) (res *contract.Result, dead bool, err error) {
	kinds := append([]contract.Kind{j.d.kind}, contract.Kinds()...)
	seen := map[contract.Kind]bool{}
	for _, k := range kinds {
		if seen[k] {
			continue
		}
		seen[k] = true
		ctx, cancel := j.opCtx()
		st, _, err := loadState(ctx, j.r.kv, stateKey(j.d.tenant, k, id))
		cancel()
		if err != nil {
			return nil, false, err
		}
		if st != nil && st.Phase == phaseDone && st.Result != nil {
			// The key names the kind; the record cannot move it.
			st.Result.Kind = k
			return st.Result, false, nil
		}
		if st != nil && st.Phase == phaseDeadLettered {
			dead = true
		}
	}
	return nil, dead, nil
}
