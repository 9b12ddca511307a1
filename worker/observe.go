package worker

import (
	"context"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/digitoll/digitoll-worker/contract"
)

// Observer is told how each delivery goes, for metrics (*telemetry.Metrics
// implements it). Calls are made on the message path, concurrently: they
// must be quick and safe for concurrent use. Every label value passed is
// from a fixed set (kinds, operations, the Outcome* and Cause* constants
// and dead-letter reasons) except tenant: the submission subject's last
// token, as published, which an Observer must bound before using it as a
// label ("" when the subject has none).
type Observer interface {
	// MessageStarted is called when a delivery is taken up.
	MessageStarted(kind contract.Kind, tenant string)
	// MessageDone is called once for each MessageStarted, with the
	// operation ("" when the message did not parse), the Outcome* and
	// the time since MessageStarted.
	MessageDone(kind contract.Kind, tenant string, op contract.Operation, outcome string, d time.Duration)
	// Retried is called when a delivery is handed back, with its Cause*.
	Retried(kind contract.Kind, tenant string, cause string)
	// DeadLettered is called when a message is stored in the DLQ.
	DeadLettered(kind contract.Kind, tenant string, reason string)
}

// How a delivery ended, as passed to Observer.MessageDone.
const (
	// OutcomeAccepted and OutcomeRejected: the result was published.
	OutcomeAccepted = string(contract.StatusAccepted)
	OutcomeRejected = string(contract.StatusRejected)
	// OutcomeUnresolved: the result was published; Toll may hold the
	// declaration but the worker could not find out (see
	// contract.StatusUnresolved).
	OutcomeUnresolved = string(contract.StatusUnresolved)
	// OutcomeDeadLettered: the message went to the DLQ.
	OutcomeDeadLettered = string(contract.StatusDeadLettered)
	// OutcomeRetried: handed back for a later delivery (see the Cause*).
	OutcomeRetried = "retried"
	// OutcomeDuplicate: its result or dead letter was recorded by an
	// earlier delivery and only published or acknowledged again.
	OutcomeDuplicate = "duplicate"
	// OutcomeSuperseded: a later delivery of the message owns it.
	OutcomeSuperseded = "superseded"
)

// Why a delivery was handed back, as passed to Observer.Retried.
const (
	// CauseTransient: Toll, Maskinporten or NATS failed in a way that may
	// pass, or Toll is still validating.
	CauseTransient = "transient"
	// CauseConfiguration: the worker's configuration was refused.
	CauseConfiguration = "configuration"
	// CauseAfter: the submission named in `after` has no result yet.
	CauseAfter = "after"
	// CauseShutdown: this process is stopping.
	CauseShutdown = "shutdown"
	// CauseLease: an earlier delivery began a Toll call recently and may
	// still be making it; this one waits for that call's lease to lapse.
	CauseLease = "lease"
	// CauseMissingObject: the document's file is not in the documents
	// bucket (yet); it is retried until its grace passes, then
	// dead-lettered. The submission's fault, never an outage.
	CauseMissingObject = "missing-object"
	// CauseRecorded: a first delivery, which starts without reading the
	// submission's state record, found one; the next delivery follows it.
	CauseRecorded = "recorded"
)

// tracerName names the worker's tracer.
const tracerName = "github.com/digitoll/digitoll-worker/worker"

// Log attributes that tie a message's log lines to its trace; the same
// names as telemetry.LogHandler gives the lines of other packages.
const (
	logTraceID = "traceId"
	logSpanID  = "spanId"
)

// nopObserver is the Observer of a Config without one.
type nopObserver struct{}

func (nopObserver) MessageStarted(contract.Kind, string)                                         {}
func (nopObserver) MessageDone(contract.Kind, string, contract.Operation, string, time.Duration) {}
func (nopObserver) Retried(contract.Kind, string, string)                                        {}
func (nopObserver) DeadLettered(contract.Kind, string, string)                                   {}

// headerCarrier adapts NATS headers to OpenTelemetry's carrier of W3C
// trace context (traceparent, tracestate). NATS header names are
// case-sensitive on the wire but producers spell traceparent as they like,
// so Get falls back to a case-insensitive match.
type headerCarrier nats.Header

// Get implements propagation.TextMapCarrier.
func (h headerCarrier) Get(key string) string {
	if vs := h[key]; len(vs) > 0 {
		return vs[0]
	}
	for k, vs := range h {
		if strings.EqualFold(k, key) && len(vs) > 0 {
			return vs[0]
		}
	}
	return ""
}

// Set implements propagation.TextMapCarrier.
func (h headerCarrier) Set(key, value string) { h[key] = []string{value} }

// Keys implements propagation.TextMapCarrier.
func (h headerCarrier) Keys() []string {
	out := make([]string, 0, len(h))
	for k := range h {
		out = append(out, k)
	}
	return out
}

// startSpan starts the span of one delivery as a child of the trace
// context in the submission's headers, if any.
func (w *Worker) startSpan(parent context.Context, kind contract.Kind, msg jetstream.Msg) (context.Context, trace.Span) {
	ctx := propagation.TraceContext{}.Extract(parent, headerCarrier(msg.Headers()))
	return w.tracer.Start(ctx, "process "+string(kind),
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(
			attribute.String("messaging.system", "nats"),
			attribute.String("messaging.operation.type", "process"),
			attribute.String("messaging.destination.name", msg.Subject()),
			attribute.String("digitoll.kind", string(kind)),
		))
}
