package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/propagation"

	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/handlers"
)

// maxErrorHeader bounds Digitoll-Dlq-Error: one line, enough for an HTTP
// status and Toll's message, not a response body.
const maxErrorHeader = 500

// resultMsg builds the result message of a submission: the result as JSON,
// the trace context of ctx (the delivery's span, a child of the
// submission's traceparent, with the submission's tracestate), every
// Digitoll-* header of the submission copied, and headers that let
// subscribers route results without parsing them.
func resultMsg(ctx context.Context, r contract.Result, submission nats.Header) (*nats.Msg, error) {
	r = normalizeResult(r)
	data, err := r.AppendJSON(make([]byte, 0, resultSizeHint))
	if err != nil {
		return nil, fmt.Errorf("encode result: %w", err)
	}
	// Every header value shares one array, a slice of it per header,
	// rather than a slice allocated per header.
	n, keys := 6, 6 // the four result headers, traceparent, tracestate
	for k, vs := range submission {
		if carriedToResult(k) {
			n += len(vs)
			keys++
		}
	}
	hv := headerValues{h: make(nats.Header, keys), vals: make([]string, 0, n)}
	for k, vs := range submission {
		if carriedToResult(k) {
			hv.add(k, vs...)
		}
	}
	propagation.TraceContext{}.Inject(ctx, &hv)
	hv.add(contract.HeaderResultStatus, string(r.Status))
	hv.add(contract.HeaderResultKind, string(r.Kind))
	hv.add(contract.HeaderResultTenant, r.Tenant)
	hv.add(contract.HeaderResultSubmissionID, r.ID)
	return &nats.Msg{Subject: contract.ResultSubject(r.Kind, r.Tenant), Header: hv.h, Data: data}, nil
}

// resultSizeHint is the capacity the result's encoding starts with: an
// accepted result with its metadata fits.
const resultSizeHint = 512

// headerValues builds NATS headers whose values share one array. It is
// the carrier resultMsg injects trace context with.
type headerValues struct {
	h    nats.Header
	vals []string
}

// add sets key to vs, replacing what key had.
func (hv *headerValues) add(key string, vs ...string) {
	a := len(hv.vals)
	hv.vals = append(hv.vals, vs...)
	hv.h[key] = hv.vals[a:len(hv.vals):len(hv.vals)]
}

// Get implements propagation.TextMapCarrier.
func (hv *headerValues) Get(key string) string { return headerCarrier(hv.h).Get(key) }

// Set implements propagation.TextMapCarrier.
func (hv *headerValues) Set(key, value string) { hv.add(key, value) }

// Keys implements propagation.TextMapCarrier.
func (hv *headerValues) Keys() []string { return headerCarrier(hv.h).Keys() }

// carriedToResult reports whether a submission header is copied to the
// result: the producer's Digitoll-* headers, but not the headers the worker
// itself sets on results and dead letters (a replayed message may still
// carry those). Trace context is not copied but continued (resultMsg).
// NATS header names are case-sensitive on the wire; the comparison is not,
// because producers spell them as they like.
func carriedToResult(name string) bool {
	switch {
	case !hasPrefixFold(name, contract.HeaderPrefix):
		return false
	case hasPrefixFold(name, "Digitoll-Dlq-"):
		return false
	}
	for _, own := range []string{
		contract.HeaderResultStatus, contract.HeaderResultKind, contract.HeaderResultTenant,
		contract.HeaderResultSubmissionID, contract.HeaderAttempts, contract.HeaderOriginalSubject,
		contract.HeaderFailedAt, contract.HeaderOriginalStreamSeq,
	} {
		if strings.EqualFold(name, own) {
			return false
		}
	}
	return true
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// normalizeResult makes the lists [] rather than null, as the contract
// promises subscribers.
func normalizeResult(r contract.Result) contract.Result {
	if r.Errors == nil {
		r.Errors = []contract.FieldError{}
	}
	if r.IncompleteDocumentation == nil {
		r.IncompleteDocumentation = []string{}
	}
	return r
}

// delivered describes the message being worked on, for results and dead
// letters.
type delivered struct {
	kind       contract.Kind
	tenant     string // contract.InvalidTenant until the subject parses
	id         string // "" when no usable id could be read; set only once the subject parsed
	sub        *contract.Submission
	subject    string
	seq        uint64
	delivery   int
	receivedAt time.Time
}

// outcomeResult builds the result of a handler's outcome.
func outcomeResult(d delivered, out handlers.Outcome, requestID string, completedAt time.Time) contract.Result {
	if out.RequestID != "" {
		requestID = out.RequestID
	}
	r := contract.Result{
		ID:                      d.id,
		Tenant:                  d.tenant,
		Kind:                    d.kind,
		Status:                  out.Status,
		MRN:                     out.MRN,
		RequestID:               requestID,
		Errors:                  out.Errors,
		IncompleteDocumentation: out.IncompleteDocumentation,
		Note:                    out.Note,
		Attempts:                d.delivery,
		ReceivedAt:              d.receivedAt.UTC(),
		CompletedAt:             completedAt.UTC(),
	}
	if d.sub != nil {
		r.Operation = d.sub.Operation
		r.Level = d.sub.Level
		r.Metadata = d.sub.Metadata
	}
	return normalizeResult(r)
}

// deadLetterResult builds the dead-lettered result of a submission.
func deadLetterResult(d delivered, reason, errText, requestID string, completedAt time.Time) contract.Result {
	return outcomeResult(d, handlers.Outcome{
		Status: contract.StatusDeadLettered,
		Note:   reason + ": " + errText,
	}, requestID, completedAt)
}

// deadLetterMsg builds the DLQ message: the submission's body and headers
// unchanged, plus the reason headers of docs/contract.md.
//
// Headers named Nats-* are left out. They are instructions to JetStream
// for the original publish, not part of the submission: a Nats-Msg-Id kept
// here would make JetStream drop the dead letter of a replayed message
// that fails again within the duplicate window, and a Nats-Expected-Stream
// or Nats-Expected-Last-* would make the DLQ publish fail forever. The dead
// letter's own Nats-Msg-Id (dlqMsgID) is set by the publisher.
func deadLetterMsg(d delivered, body []byte, h nats.Header, reason, errText string, failedAt time.Time) *nats.Msg {
	out := nats.Header{}
	for k, vs := range h {
		if hasPrefixFold(k, "Nats-") {
			continue
		}
		out[k] = append([]string(nil), vs...)
	}
	out.Set(contract.HeaderDLQReason, reason)
	out.Set(contract.HeaderDLQError, errText)
	out.Set(contract.HeaderAttempts, strconv.Itoa(d.delivery))
	out.Set(contract.HeaderOriginalSubject, d.subject)
	out.Set(contract.HeaderFailedAt, failedAt.UTC().Format(time.RFC3339))
	out.Set(contract.HeaderOriginalStreamSeq, strconv.FormatUint(d.seq, 10))
	return &nats.Msg{Subject: contract.DLQSubject(d.kind, d.tenant), Header: out, Data: body}
}

// dlqMsgID is the Nats-Msg-Id of a dead letter (and of its dead-lettered
// result): the stream sequence makes dead-lettering one message twice
// (after a lost ack) a duplicate, while a replay of it, which has a new
// sequence, can be dead-lettered again and can still get its real result.
func dlqMsgID(d delivered) string {
	if d.id == "" {
		return d.tenant + "/dlq/" + strconv.FormatUint(d.seq, 10)
	}
	return contract.MsgID(d.tenant, d.id) + "/dlq/" + strconv.FormatUint(d.seq, 10)
}

// errorHeader makes err fit Digitoll-Dlq-Error: one line, at most
// maxErrorHeader bytes, cut on a rune boundary. Errors never carry secrets
// (a house rule every package keeps), so no scrubbing happens here.
func errorHeader(err error) string {
	if err == nil {
		return ""
	}
	s := strings.Join(strings.Fields(err.Error()), " ")
	if len(s) <= maxErrorHeader {
		return s
	}
	cut := maxErrorHeader
	for cut > 0 && !utf8RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }

// lenientID digs a usable id out of a body that failed to parse as a
// submission (an unknown field, a missing level), so that its producer
// still gets a dead-lettered result. A body without a valid id gets none:
// there is nothing to correlate a result with.
func lenientID(body []byte) string {
	var v struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(body, &v) != nil || !contract.ValidID(v.ID) {
		return ""
	}
	return v.ID
}
