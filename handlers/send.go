package handlers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/failure"
	"github.com/digitoll/digitoll-worker/toll"
)

// The send protocol. Toll keys none of its calls but a presentation, so
// "never send twice" (docs/guarantees.md) rests on what a handler records
// around every attempt of a call Toll may act on:
//
//  1. the token first: the Toll client gets it, after the rate limiter's
//     wait, before anything is recorded, so that neither can leave a
//     "sending" record behind for a call that never left;
//  2. Journal.Sending right before the bytes can leave
//     (toll.WithBeforeSend); an attempt whose Sending is refused is not
//     made;
//  3. the call;
//  4. Journal.Sent with the id Toll answered with, made even after ctx
//     ended (losing an id Toll holds is what makes duplicates); or, when
//     the attempt ended without one, Journal.Release at once, with
//     maybeSent unless toll.NotProcessed says Toll certainly did not act.
//
// sendCall.run carries it out, with the in-process retries of transient
// failures between attempts. Every handler's call that Toll may act on
// goes through it, so that a new handler cannot get the order wrong.

// journalTimeout bounds recording an id after Toll returned it. The
// record is made even if the caller's context was cancelled meanwhile:
// losing a requestId Toll already holds is what makes duplicates.
const journalTimeout = 30 * time.Second

// releaseTimeout bounds a Release; it is made even when the caller's
// context ended, since a record left saying "sending" holds the message
// for the send lease.
const releaseTimeout = 5 * time.Second

// sendCall is one Toll call Toll may act on, made under the send protocol.
// attempt is required; the rest may be left zero.
type sendCall struct {
	// kind labels the retries the Observer counts.
	kind     contract.Kind
	retry    RetryPolicy
	observer Observer
	// journal records the call; nil records nothing.
	journal Journal
	log     *slog.Logger
	// sendingMsg is the debug line logged before each attempt.
	sendingMsg string

	// attempt makes the call once and returns the id Toll answered with
	// (a requestId, a document id), "" when the answer has none.
	attempt func(ctx context.Context) (string, error)
	// beforeRepeat, if set, is called before an attempt that follows one
	// Toll may have acted on without its answer reaching the handler;
	// true ends the call as found: Toll holds what was sent, and it is not
	// sent again.
	beforeRepeat func() bool
	// retrying, if set, logs the failure of an attempt before the pause
	// that precedes the next one; maybeSent tells whether an attempt of
	// this call may have reached Toll unanswered.
	retrying func(err error, pause time.Duration, attempt int, maybeSent bool)
	// recordID, if set, turns the id Toll answered with into the one to
	// record with Journal.Sent and report.
	recordID func(id string) string
}

// sendResult is how a sendCall ended, when it did not end in an error.
type sendResult struct {
	// id is the id Toll answered with, as recorded (see recordID); ""
	// when the call was rejected or found.
	id string
	// rejected is Toll's refusal of the call's content (a 400).
	rejected *toll.RejectedError
	// found is set when beforeRepeat ended the call.
	found bool
	// maybeSent is set when an attempt may have reached Toll without its
	// answer reaching the handler (anything but toll.NotProcessed), so
	// that a later refusal may be Toll meeting that attempt.
	maybeSent bool
	// attempts counts the attempts made.
	attempts int
}

// run makes the call, retrying transient failures within s.retry, and
// records the id Toll answered with. It returns Toll's rejection in the
// result, not as an error; an error means no answer, or an answer whose
// id could not be recorded (a transient failure: the record still says
// "sending", so a redelivery treats the call as unresolved).
func (s sendCall) run(ctx context.Context) (sendResult, error) {
	var res sendResult
	op := func() error {
		if res.maybeSent && s.beforeRepeat != nil && s.beforeRepeat() {
			res.found = true
			return backoff.Permanent(errFound)
		}
		res.attempts++
		if s.log != nil {
			s.log.DebugContext(ctx, s.sendingMsg, "attempt", res.attempts)
		}
		var id string
		err := journaled(ctx, s.journal, func(ctx context.Context) error {
			var err error
			id, err = s.attempt(ctx)
			return err
		})
		if err != nil {
			if isJournalErr(err) {
				return err
			}
			if !toll.NotProcessed(err) {
				// Toll may hold it: no answer after the request was
				// written, or a 500, 502 or 504 a gateway may give
				// after the service acted.
				res.maybeSent = true
			}
			if !retryable(err) {
				return backoff.Permanent(err)
			}
			return err
		}
		res.id = id
		return nil
	}
	notify := func(err error, pause time.Duration) {
		observer(s.observer).CallRetried(s.kind)
		if s.retrying != nil {
			s.retrying(err, pause, res.attempts, res.maybeSent)
		}
	}
	err := s.retry.run(ctx, op, notify)
	if res.found {
		return sendResult{found: true, maybeSent: res.maybeSent, attempts: res.attempts}, nil
	}
	if rejected, ok := errors.AsType[*toll.RejectedError](err); ok {
		res.id, res.rejected = "", rejected
		return res, nil
	}
	if err != nil {
		return sendResult{maybeSent: res.maybeSent, attempts: res.attempts}, err
	}
	if s.recordID != nil {
		res.id = s.recordID(res.id)
	}
	if err := recordSent(ctx, s.journal, res.id); err != nil {
		return sendResult{maybeSent: res.maybeSent, attempts: res.attempts}, err
	}
	return res, nil
}

// errFound ends a sendCall's retries when beforeRepeat found what was
// sent.
var errFound = errors.New("found at Toll")

// recordSent records with j the id of a call Toll holds, even if ctx was
// cancelled meanwhile, so that a redelivery follows it instead of calling
// Toll again. A failure is transient.
func recordSent(ctx context.Context, j Journal, id string) error {
	if j == nil {
		return nil
	}
	jctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), journalTimeout)
	defer cancel()
	if err := j.Sent(jctx, id); err != nil {
		return failure.Mark(fmt.Errorf("recording requestId %s: %w", id, err), failure.Transient)
	}
	return nil
}

// release ends j's Sending record, even after ctx ended; a failure only
// costs the next delivery the lease, so it is not an error of the attempt.
func release(ctx context.Context, j Journal, maybeSent bool) error {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
	defer cancel()
	return j.Release(rctx, maybeSent)
}

// journalError is a Journal's refusal to record a call before it is made:
// the call is not made.
type journalError struct{ err error }

func (e *journalError) Error() string { return "journal before sending: " + e.err.Error() }
func (e *journalError) Unwrap() error { return e.err }

// isJournalErr reports whether err is a journalError.
func isJournalErr(err error) bool {
	_, ok := errors.AsType[*journalError](err)
	return ok
}

// journaled makes one attempt of call with j's Sending recorded by the
// Toll client right before the request can leave (toll.WithBeforeSend):
// after the rate limiter's wait and the token, so that neither leaves a
// "sending" record behind for a call that never left. When the call fails
// after that, the record is released at once (Journal.Release): the call
// is over, and the lease only protects a call that is still under way.
// maybeSent is kept unless toll.NotProcessed says Toll certainly did not
// act. A refused Sending comes back as a permanent *journalError.
func journaled(ctx context.Context, j Journal, call func(context.Context) error) error {
	if j == nil {
		return call(ctx)
	}
	var (
		jerr    error
		sending bool
	)
	cctx := toll.WithBeforeSend(ctx, func(c context.Context) error {
		if err := j.Sending(c); err != nil {
			jerr = err
			return err
		}
		sending = true
		return nil
	})
	err := call(cctx)
	if jerr != nil {
		return backoff.Permanent(&journalError{err: jerr})
	}
	if err != nil && sending {
		// A failed release leaves the record saying "sending": the next
		// delivery waits the lease, as before, which is safe.
		_ = release(ctx, j, !toll.NotProcessed(err))
	}
	return err
}
