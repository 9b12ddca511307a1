package handlers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"

	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/failure"
	"github.com/digitoll/digitoll-worker/toll"
)

// ErrPending is wrapped, with failure.ErrTransient, when Toll has not
// finished validating a request before the poll timeout or the caller's
// context ran out. The requestId is journaled, so the message should be
// redelivered later and will resume polling without a new submission.
var ErrPending = errors.New("toll validation still pending")

// MovementAPI is what the movement handler needs from Toll; *toll.Client
// provides it.
type MovementAPI interface {
	// Declare sends a create, update or delete and returns Toll's
	// requestId; a 400 comes back as *toll.RejectedError.
	Declare(ctx context.Context, api toll.API, op contract.Operation, level contract.Level, mrn string, body []byte) (string, error)
	// ValidationStatus returns the result of a request, or an error
	// wrapping toll.ErrNotReady while Toll is still working on it.
	ValidationStatus(ctx context.Context, api toll.API, level contract.Level, requestID string) (toll.Validation, error)
	// StatusWithDescendants and EntryStatus look up what Toll holds,
	// after an attempt whose answer was lost (see lookup). They are part
	// of the interface, not discovered, so that a client without them
	// fails to compile instead of ending such answers unresolved.
	StatusWithDescendants(ctx context.Context, api toll.API, level contract.Level, mrn string) (toll.StatusTree, error)
	EntryStatus(ctx context.Context, api toll.API, mrn string) (toll.EntryStatus, error)
	// TestAuth obtains a token for the API's scope and calls Toll's
	// test-auth; Probe uses it.
	TestAuth(ctx context.Context, api toll.API) error
}

// Movement handles road and air submissions (the API says which): it
// sends the declaration, retries transient failures within Retry, then
// polls the validation status as Poll allows and reports accepted or
// rejected. API and Toll are required; Retry, Poll, Logger and Observer
// may be left zero for the defaults.
type Movement struct {
	API      toll.API
	Toll     MovementAPI
	Retry    RetryPolicy
	Poll     PollPolicy
	Logger   *slog.Logger
	Observer Observer
}

var _ Handler = (*Movement)(nil)

// Handle carries out one road or air submission. If req.RequestID is set,
// an earlier delivery already submitted it and Handle only follows that
// requestId. Otherwise req.Journal.Sending is called right before every
// attempt can leave, the record released when the attempt ends without a
// requestId, and req.Journal.Sent called with the requestId Toll returns.
// After an attempt that may have reached Toll unanswered (in this
// delivery, or req.Unresolved), Handle looks for the declaration at Toll
// before sending again and after a duplicate FAILURE (see resolve.go).
// Update and delete act on req.Submission.MRN, which the worker fills in
// from `after` when the producer left it out.
func (m *Movement) Handle(ctx context.Context, req Request) (Outcome, error) {
	sub := req.Submission
	if sub == nil {
		return Outcome{}, fmt.Errorf("%s: request carries no submission: %w", m.API.Kind, failure.ErrPoison)
	}
	if m.Toll == nil {
		return Outcome{}, fmt.Errorf("%s: movement handler has no Toll client: %w", m.API.Kind, failure.ErrConfig)
	}
	log := m.logger().With(logAttrs(req, m.API.Kind)...)

	requestID := req.RequestID
	// maybeTwice is set when an earlier attempt may have reached Toll
	// without its answer reaching us: Toll has no idempotency key, so
	// the attempt that counts may then meet the first one as a duplicate.
	maybeTwice := req.Unresolved
	if requestID == "" {
		if maybeTwice {
			// Find out before sending again, where Toll allows it.
			if out, found := m.lookup(ctx, req, "", log); found {
				return out, nil
			}
		}
		res, found, err := m.submit(ctx, req, log)
		maybeTwice = maybeTwice || res.maybeSent
		if err != nil {
			return Outcome{}, fmt.Errorf("%s %s %s: %w", m.API.Kind, sub.Operation, sub.Level, err)
		}
		if found != nil {
			return *found, nil
		}
		if rejected := res.rejected; rejected != nil {
			if maybeTwice {
				return m.failure(ctx, req, "", rejected.Errors, log), nil
			}
			log.DebugContext(ctx, "toll rejected the declaration", "errors", len(rejected.Errors))
			return Outcome{Status: contract.StatusRejected, Errors: rejected.Errors}, nil
		}
		requestID = res.id
	} else {
		log.DebugContext(ctx, "following the requestId of an earlier delivery", "requestId", requestID)
	}
	log = log.With("requestId", requestID)

	// Polling learns only from a request this delivery made: one that
	// an earlier delivery made may have been ready long since.
	v, err := m.poll(ctx, sub.Level, requestID, req.RequestID == "", log)
	if err != nil {
		return Outcome{}, fmt.Errorf("%s %s %s (requestId %s): %w", m.API.Kind, sub.Operation, sub.Level, requestID, err)
	}
	if v.Status == toll.ValidationFailure {
		if maybeTwice {
			return m.failure(ctx, req, requestID, v.Errors, log), nil
		}
		out := Outcome{Status: contract.StatusRejected, RequestID: requestID, Errors: v.Errors}
		if len(v.Errors) == 0 {
			out.Note = "Toll reported FAILURE without validation errors"
		}
		log.DebugContext(ctx, "toll refused the declaration", "errors", len(v.Errors))
		return out, nil
	}
	out := Outcome{Status: contract.StatusAccepted, MRN: v.MRN, RequestID: requestID, IncompleteDocumentation: v.IncompleteDocumentation}
	if out.MRN == "" {
		// An update or delete acts on a known MRN; a create without one
		// is accepted but nothing can refer to it.
		out.MRN = sub.MRN
		if out.MRN == "" {
			out.Note = "Toll reported SUCCESS without an MRN"
		}
	}
	if out.MRN != sub.MRN {
		// The submission's own MRN is among log's attributes already.
		log = log.With("mrn", out.MRN)
	}
	log.DebugContext(ctx, "toll accepted the declaration", "incompleteDocumentation", len(out.IncompleteDocumentation))
	return out, nil
}

// submit sends the declaration under the send protocol (see sendCall),
// retrying transient failures, and records the requestId. Besides the
// call's result (its requestId or rejection, and whether an attempt may
// have reached Toll unanswered) it returns the outcome of a lookup that
// found the declaration after a lost answer, or an error.
func (m *Movement) submit(ctx context.Context, req Request, log *slog.Logger) (sendResult, *Outcome, error) {
	sub := req.Submission
	var mrn string
	switch sub.Operation {
	case contract.OpCreate:
	case contract.OpUpdate, contract.OpDelete:
		mrn = sub.MRN
		if mrn == "" {
			return sendResult{}, nil, fmt.Errorf("no mrn to %s: the submission has none and the MRN of its `after` submission was not filled in: %w", sub.Operation, failure.ErrPoison)
		}
	default:
		return sendResult{}, nil, fmt.Errorf("operation %q is not create, update or delete: %w", sub.Operation, failure.ErrPoison)
	}

	var found *Outcome
	res, err := sendCall{
		kind: m.API.Kind, retry: m.Retry, observer: m.Observer, journal: req.Journal,
		log: log, sendingMsg: "sending declaration",
		attempt: func(ctx context.Context) (string, error) {
			return m.Toll.Declare(ctx, m.API, sub.Operation, sub.Level, mrn, sub.Declaration)
		},
		// Toll has no idempotency key: after an attempt that may have
		// reached it (ErrAmbiguous, 500, 502, 504, …) the next one looks
		// for the declaration first where it can, and a duplicate
		// FAILURE that follows is resolved by failure.
		beforeRepeat: func() bool {
			out, ok := m.lookup(ctx, req, "", log)
			if ok {
				found = &out
			}
			return ok
		},
		retrying: func(err error, pause time.Duration, attempt int, maybeSent bool) {
			if maybeSent && !toll.NotProcessed(err) {
				log.WarnContext(ctx, "no answer to a declaration Toll may have received; looking for it, else sending it again",
					"attempt", attempt, "pause", pause, "error", err.Error())
				return
			}
			log.DebugContext(ctx, "declaration failed, retrying", "attempt", attempt, "pause", pause, "error", err.Error())
		},
	}.run(ctx)
	if err == nil && !res.found && res.rejected == nil {
		log.DebugContext(ctx, "declaration sent", "requestId", res.id, "attempts", res.attempts)
	}
	return res, found, err
}

// poll asks for the validation status of requestID until Toll has a
// verdict, with growing pauses, in a span of its own (the status calls are
// its children) and measured by the Observer. "Not ready" and transient
// failures both mean "ask again later"; config and permanent failures end
// it. When the poll timeout or ctx ends it first, the error wraps
// ErrPending.
func (m *Movement) poll(ctx context.Context, level contract.Level, requestID string, learn bool, log *slog.Logger) (toll.Validation, error) {
	ctx, span := startSpan(ctx, "validation "+string(m.API.Kind),
		attribute.String("digitoll.request_id", requestID), attribute.String("digitoll.level", string(level)))
	defer span.End()
	start := time.Now()
	v, polls, err := m.pollUntilVerdict(ctx, level, requestID, learn, log)
	verdict := verdictOf(v, err)
	observer(m.Observer).ValidationWaited(m.API.Kind, verdict, time.Since(start), polls)
	span.SetAttributes(attribute.Int("digitoll.polls", polls), attribute.String("digitoll.verdict", verdict))
	if verdict == VerdictError {
		span.SetStatus(codes.Error, err.Error())
	}
	return v, err
}

// verdictOf names how polling ended.
func verdictOf(v toll.Validation, err error) string {
	switch {
	case errors.Is(err, ErrPending):
		return VerdictPending
	case err != nil:
		return VerdictError
	case v.Status == toll.ValidationFailure:
		return VerdictFailure
	}
	return VerdictSuccess
}

// pollUntilVerdict is poll's loop; it also returns how many status calls
// it made. With learn, the request was sent just before: its pauses come
// from p.Pacer and its verdict teaches it.
func (m *Movement) pollUntilVerdict(ctx context.Context, level contract.Level, requestID string, learn bool, log *slog.Logger) (toll.Validation, int, error) {
	p := m.Poll.withDefaults()
	pctx, cancel := context.WithTimeout(ctx, p.Timeout)
	defer cancel()
	start := time.Now()
	sched := fixedPauses(p)
	if learn {
		sched = p.Pacer.schedule(m.API.Kind, level, p)
	}
	pause := sched.first
	// prev and sent are when the last two polls were sent, since start:
	// the verdict came between them, which the pacer learns from.
	var prev, sent time.Duration
	// The loop ends when pctx does, at the latest after p.Timeout.
	for n := 1; ; n++ {
		if err := sleep(pctx, pause); err != nil {
			return toll.Validation{}, n - 1, fmt.Errorf("%w after %d polls in %s (%w); a redelivery resumes polling: %w",
				ErrPending, n-1, time.Since(start).Round(time.Millisecond), err, failure.ErrTransient)
		}
		prev, sent = sent, time.Since(start)
		v, err := m.Toll.ValidationStatus(pctx, m.API, level, requestID)
		switch {
		case err == nil:
			log.DebugContext(ctx, "validation status", "poll", n, "status", string(v.Status))
			if learn {
				p.Pacer.observe(m.API.Kind, level, prev, sent, n)
			}
			return v, n, nil
		case errors.Is(err, toll.ErrNotReady):
			log.DebugContext(ctx, "validation not ready", "poll", n, "pause", pause)
		case failure.Classify(err) == failure.Transient:
			log.DebugContext(ctx, "validation status failed, counting it as not ready", "poll", n, "error", err.Error())
		default:
			return toll.Validation{}, n, err
		}
		pause = sched.after(n, pause)
		if ra, ok := failure.RetryAfter(err); ok && ra > pause {
			pause = ra
		}
	}
}

func (m *Movement) logger() *slog.Logger {
	if m.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return m.Logger
}
