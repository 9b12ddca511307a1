// Package handlers turns one parsed submission into Toll calls and an
// outcome: it submits, retries what is transient within a short budget,
// follows Toll's asynchronous validation and reports accepted or rejected.
// It knows nothing of NATS; the worker owns acks, results and dead letters.
package handlers

import (
	"context"
	"time"

	"github.com/digitoll/digitoll-worker/contract"
)

// Request is one submission to carry out.
type Request struct {
	Tenant     string
	Kind       contract.Kind
	Submission *contract.Submission
	// ReceivedAt is when the worker first saw the message.
	ReceivedAt time.Time
	// Delivery counts deliveries of the message, starting at 1.
	Delivery int
	// RequestID is the Toll requestId an earlier delivery recorded: the
	// handler must not repeat the call that produced it, only follow it.
	RequestID string
	// Unresolved is set when an earlier delivery began a non-idempotent
	// Toll call and died before recording its answer: Toll may or may not
	// have received it. Handlers that can tell (an entry presentation
	// reuses its requestId) use it to read a "requestId already used"
	// answer as success.
	Unresolved bool
	// Journal records progress so that a redelivery can resume; nil
	// means nothing is recorded.
	Journal Journal
}

// Journal records the progress of one submission. Both calls must be
// durable before they return: the worker relies on them to never send a
// non-idempotent Toll call twice.
type Journal interface {
	// Sending is called right before a non-idempotent Toll call. An error
	// aborts the call.
	Sending(ctx context.Context) error
	// Sent records the requestId Toll answered with.
	Sent(ctx context.Context, requestID string) error
}

// Outcome is what Toll decided. Business rejections are outcomes, not
// errors: an error means the handler could not get an answer.
type Outcome struct {
	Status                  contract.Status // accepted or rejected
	MRN                     string
	RequestID               string
	Errors                  []contract.FieldError
	IncompleteDocumentation []string
	// Note explains an outcome that needs explaining.
	Note string
}

// Handler carries out submissions of one kind. Handle returns an error
// marked with a failure class (see package failure) when it has no
// outcome; it must return promptly when ctx is done.
type Handler interface {
	Handle(ctx context.Context, req Request) (Outcome, error)
}
