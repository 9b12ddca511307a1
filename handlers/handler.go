// Package handlers turns one parsed submission into Toll calls and an
// outcome: it submits, retries what is transient within a short budget,
// follows Toll's asynchronous validation and reports accepted or rejected,
// or unresolved when an answer was lost and Toll offers no way to find out.
// It knows nothing of NATS; the worker owns acks, results and dead letters.
package handlers

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

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
	// Toll call and died before recording its answer, or ended after a
	// call that got no answer although Toll may have acted on it: Toll
	// may or may not hold it. Handlers that can tell use it: an entry
	// presentation (it reuses its requestId) reads "requestId already
	// used" as success, a declaration is looked for at Toll before it is
	// sent again (see Movement).
	Unresolved bool
	// AfterMRN is the MRN in the accepted result of the submission named
	// by `after`, when that is a create's: the parent a master or house
	// may have been declared under (a transport or master). A create
	// whose answer was lost is looked for among that parent's
	// descendants; without it Toll offers no way to find it.
	AfterMRN string
	// Journal records progress so that a redelivery can resume; nil
	// means nothing is recorded.
	Journal Journal
}

// Journal records the progress of one submission. Both calls must be
// durable before they return: the worker relies on them to never send a
// non-idempotent Toll call twice.
type Journal interface {
	// Sending is called right before a non-idempotent Toll call can
	// leave: by the Toll client, after its rate-limit wait and token
	// (toll.WithBeforeSend). An error aborts the call.
	Sending(ctx context.Context) error
	// Sent records the requestId Toll answered with.
	Sent(ctx context.Context, requestID string) error
	// Release records that the call Sending announced is over without a
	// requestId: refused before Toll processed it (see
	// toll.NotProcessed), or, with maybeSent, without an answer although
	// Toll may have acted. A redelivery then starts at once instead of
	// waiting out the send lease that protects a call still under way.
	Release(ctx context.Context, maybeSent bool) error
}

// Outcome is what Toll decided. Business rejections are outcomes, not
// errors: an error means the handler could not get an answer.
type Outcome struct {
	Status                  contract.Status // accepted, rejected or unresolved
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

// Observer is told what handlers measure, for metrics (*telemetry.Metrics
// implements it). Calls are made on the message path, concurrently: they
// must be quick and safe for concurrent use.
type Observer interface {
	// CallRetried is called before a Toll call of kind is repeated within
	// one delivery after a transient failure.
	CallRetried(kind contract.Kind)
	// ValidationWaited is called when one delivery's polling of Toll's
	// validation status ends, with its Verdict*, duration and the status
	// calls it made.
	ValidationWaited(kind contract.Kind, verdict string, d time.Duration, polls int)
}

// How one delivery's polling of the validation status ended, as passed to
// Observer.ValidationWaited.
const (
	VerdictSuccess = "success"
	VerdictFailure = "failure"
	// VerdictPending: Toll had no verdict before the poll timeout or the
	// delivery's end; a redelivery polls on.
	VerdictPending = "pending"
	// VerdictError: polling ended on a configuration or permanent failure.
	VerdictError = "error"
)

// nopObserver stands in for a nil Observer.
type nopObserver struct{}

func (nopObserver) CallRetried(contract.Kind)                                  {}
func (nopObserver) ValidationWaited(contract.Kind, string, time.Duration, int) {}

// observer returns o, or an Observer that ignores everything.
func observer(o Observer) Observer {
	if o == nil {
		return nopObserver{}
	}
	return o
}

// logAttrs are the attributes of every log line about req, under the names
// the worker's lines about the same message use: tenant, kind, id,
// operation, and declarationLevel and mrn where the submission has them.
// Handlers add requestId once Toll gave one.
func logAttrs(req Request, kind contract.Kind) []any {
	sub := req.Submission
	attrs := []any{"tenant", req.Tenant, "kind", string(kind), "id", sub.ID, "operation", string(sub.Operation)}
	if sub.Level != "" {
		// Not "level": that is the log level's key.
		attrs = append(attrs, "declarationLevel", string(sub.Level))
	}
	if sub.MRN != "" {
		attrs = append(attrs, "mrn", sub.MRN)
	}
	return attrs
}

// tracerName names the handlers' tracer.
const tracerName = "github.com/digitoll/digitoll-worker/handlers"

// startSpan starts a child of the span in ctx with that span's tracer
// provider: a message traced by the worker gets child spans, anything else
// (a probe, a test without tracing) costs nothing.
func startSpan(ctx context.Context, name string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	return trace.SpanFromContext(ctx).TracerProvider().Tracer(tracerName).Start(ctx, name, trace.WithAttributes(attrs...))
}
