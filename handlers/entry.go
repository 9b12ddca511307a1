package handlers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/failure"
	"github.com/digitoll/digitoll-worker/toll"
)

// presentationNamespace is the UUID namespace of presentation requestIds
// (see PresentationRequestID). Changing it would give every submission
// in flight a new requestId, and a retry after a lost answer would
// present twice.
const presentationNamespace = "6f0d9c2e-3b7a-5e41-9c8d-2a4f1e6b7d90"

// Notes of entry outcomes that need explaining.
const (
	noteEarlierDelivery = "presented by an earlier delivery"
	noteAnswerLost      = "Toll already had this presentation's requestId: an earlier attempt whose answer was lost presented it"
	noteIDUsedFirstTry  = "Toll says this presentation's requestId was used before, though no earlier attempt of this submission is known to have sent it"
)

// PresentationRequestID is the requestId of the presentation that
// submission id of tenant makes: a name-based (SHA-1) UUID of
// "<tenant>/<id>". Every retry and redelivery of the submission sends the
// same one, so Toll refuses a second presentation as "requestId already
// used" instead of presenting twice.
func PresentationRequestID(tenant, id string) string {
	return uuid.NewSHA1(uuid.MustParse(presentationNamespace), []byte(tenant+"/"+id)).String()
}

// EntryAPI is what the entry handler needs from Toll; *toll.Client
// provides it.
type EntryAPI interface {
	// Present sends a presentation; a 400 comes back as
	// *toll.RejectedError, matching toll.ErrRequestIDUsed when Toll has
	// seen the requestId before.
	Present(ctx context.Context, p toll.Presentation) error
	// Authorize obtains a token for the API's scope without calling it;
	// Probe uses it, since the entry API has no test-auth.
	Authorize(ctx context.Context, api toll.API) error
}

// Entry handles entry presentations: it presents the goods of the
// submission's MRN at its customs office, retrying transient failures
// within Retry. Presentations are synchronous, so there is nothing to
// poll. Toll is required; Retry, Logger and Observer may be left zero.
type Entry struct {
	Toll     EntryAPI
	Retry    RetryPolicy
	Logger   *slog.Logger
	Observer Observer
}

var _ Handler = (*Entry)(nil)

// Handle carries out one presentation. If req.RequestID is set, an
// earlier delivery was answered 2xx and recorded it: the outcome is
// accepted without a call. Otherwise it calls req.Journal.Sending before
// every attempt and req.Journal.Sent once Toll has presented.
//
// All attempts, across deliveries, send PresentationRequestID. So when an
// attempt may have reached Toll unanswered in this delivery (anything but
// what toll.NotProcessed says never made Toll act), or an
// earlier delivery died mid-call (req.Unresolved), a later "requestId
// already used" means that lost attempt presented the goods: accepted.
// Without such an attempt the same answer is a rejection, since nothing
// this submission did explains it. The MRN is req.Submission.MRN, which
// the worker fills in from `after` when the producer left it out.
func (e *Entry) Handle(ctx context.Context, req Request) (Outcome, error) {
	sub := req.Submission
	if sub == nil {
		return Outcome{}, fmt.Errorf("entry: request carries no submission: %w", failure.ErrPoison)
	}
	if e.Toll == nil {
		return Outcome{}, fmt.Errorf("entry: handler has no Toll client: %w", failure.ErrConfig)
	}
	log := e.logger().With(logAttrs(req, contract.KindEntry)...)
	if req.RequestID != "" {
		log.DebugContext(ctx, "presented by an earlier delivery", "requestId", req.RequestID)
		return Outcome{Status: contract.StatusAccepted, MRN: sub.MRN, RequestID: req.RequestID, Note: noteEarlierDelivery}, nil
	}
	p, err := presentation(req)
	if err != nil {
		return Outcome{}, fmt.Errorf("entry %s: %w", sub.Operation, err)
	}
	log = log.With("requestId", p.RequestID)

	out, err := e.present(ctx, req, p, log)
	if err != nil {
		return Outcome{}, fmt.Errorf("entry present %s (requestId %s): %w", p.MRN, p.RequestID, err)
	}
	return out, nil
}

// presentation builds the Toll call of a present submission.
func presentation(req Request) (toll.Presentation, error) {
	sub := req.Submission
	if sub.Operation != contract.OpPresent {
		return toll.Presentation{}, fmt.Errorf("operation %q is not present: %w", sub.Operation, failure.ErrPoison)
	}
	if sub.MRN == "" {
		return toll.Presentation{}, fmt.Errorf("no mrn to present: the submission has none and the MRN of its `after` submission was not filled in: %w", failure.ErrPoison)
	}
	if sub.Presentation == nil || sub.Presentation.CustomsOfficeOfPresentation == "" {
		return toll.Presentation{}, fmt.Errorf("presentation.customsOfficeOfPresentation is missing: %w", failure.ErrPoison)
	}
	return toll.Presentation{
		RequestID:                   PresentationRequestID(req.Tenant, sub.ID),
		CustomsOfficeOfPresentation: sub.Presentation.CustomsOfficeOfPresentation,
		MRN:                         sub.MRN,
	}, nil
}

// present sends p, retrying transient failures, reads Toll's answer in
// the light of earlier attempts and records the requestId once presented.
func (e *Entry) present(ctx context.Context, req Request, p toll.Presentation, log *slog.Logger) (Outcome, error) {
	res, err := sendCall{
		kind: contract.KindEntry, retry: e.Retry, observer: e.Observer, journal: req.Journal,
		log: log, sendingMsg: "presenting",
		attempt: func(ctx context.Context) (string, error) { return p.RequestID, e.Toll.Present(ctx, p) },
		retrying: func(err error, pause time.Duration, attempt int, _ bool) {
			if errors.Is(err, toll.ErrAmbiguous) {
				// Safe to repeat: the same requestId cannot present twice.
				log.WarnContext(ctx, "no answer to a presentation Toll may have received; sending it again with the same requestId",
					"attempt", attempt, "pause", pause, "error", err.Error())
				return
			}
			log.DebugContext(ctx, "presentation failed, retrying", "attempt", attempt, "pause", pause, "error", err.Error())
		},
	}.run(ctx)
	if err != nil {
		return Outcome{}, err
	}
	if rejected := res.rejected; rejected != nil {
		if !onlyRequestIDUsed(rejected) {
			log.DebugContext(ctx, "toll rejected the presentation", "errors", len(rejected.Errors))
			return Outcome{Status: contract.StatusRejected, Errors: rejected.Errors}, nil
		}
		// res.maybeSent: an attempt of this delivery may have reached
		// Toll without an answer coming back.
		if !res.maybeSent && !req.Unresolved {
			log.WarnContext(ctx, "toll says the requestId was used, but no earlier attempt is known", "attempts", res.attempts)
			return Outcome{Status: contract.StatusRejected, Errors: rejected.Errors, Note: noteIDUsedFirstTry}, nil
		}
		log.InfoContext(ctx, "an earlier attempt whose answer was lost presented the goods", "attempts", res.attempts, "unresolved", req.Unresolved)
		if err := recordSent(ctx, req.Journal, p.RequestID); err != nil {
			return Outcome{}, err
		}
		return Outcome{Status: contract.StatusAccepted, MRN: p.MRN, RequestID: p.RequestID, Note: noteAnswerLost}, nil
	}
	log.DebugContext(ctx, "toll accepted the presentation", "attempts", res.attempts)
	return Outcome{Status: contract.StatusAccepted, MRN: p.MRN, RequestID: p.RequestID}, nil
}

// onlyRequestIDUsed reports whether every error of a rejection is about
// the requestId being used before. If Toll also finds fault with the
// content, the lost attempt most likely failed on it too: a rejection.
func onlyRequestIDUsed(rej *toll.RejectedError) bool {
	if !errors.Is(rej, toll.ErrRequestIDUsed) {
		return false
	}
	for _, fe := range rej.Errors {
		if !toll.RequestIDUsed(fe) {
			return false
		}
	}
	return true
}

func (e *Entry) logger() *slog.Logger {
	if e.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return e.Logger
}
