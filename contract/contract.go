// Package contract holds the public interface between digitoll-worker and the
// systems around it, as written in docs/contract.md: stream and subject names,
// headers, the submission a producer publishes and the result the worker
// answers with. It is plain data and parsing; it talks to nothing.
package contract

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Stream, bucket and subject names. Changing any of them breaks every
// producer and subscriber, so they live here and nowhere else.
const (
	StreamSubmit  = "DIGITOLL_SUBMIT"
	StreamResults = "DIGITOLL_RESULTS"
	StreamDLQ     = "DIGITOLL_DLQ"
	StreamRouting = "DIGITOLL_ROUTING"

	// BucketDocuments is the Object Store bucket for files too large to
	// travel inside a submission.
	BucketDocuments = "digitoll-documents"

	subjectPrefix = "digitoll"
)

// Headers set or read by the worker.
const (
	HeaderMsgID       = "Nats-Msg-Id"
	HeaderTraceparent = "traceparent"
	HeaderTracestate  = "tracestate"

	// HeaderPrefix marks producer headers that are carried to the result.
	HeaderPrefix = "Digitoll-"

	HeaderDLQReason          = "Digitoll-Dlq-Reason"
	HeaderDLQError           = "Digitoll-Dlq-Error"
	HeaderAttempts           = "Digitoll-Attempts"
	HeaderOriginalSubject    = "Digitoll-Original-Subject"
	HeaderFailedAt           = "Digitoll-Failed-At"
	HeaderOriginalStreamSeq  = "Digitoll-Original-Stream-Seq"
	HeaderDLQHTTPStatus      = "Digitoll-Dlq-Http-Status"
	HeaderDLQCorrelationID   = "Digitoll-Correlation-Id"
	HeaderResultStatus       = "Digitoll-Result-Status"
	HeaderResultKind         = "Digitoll-Kind"
	HeaderResultTenant       = "Digitoll-Tenant"
	HeaderResultSubmissionID = "Digitoll-Submission-Id"
)

// Feed is one of Toll's routing feeds.
type Feed string

// The routing feeds.
const (
	FeedHouseConsignment Feed = "house-consignment"
	FeedTransport        Feed = "transport"
)

var tenantPattern = regexp.MustCompile(`^[a-z0-9-]{1,63}$`)

// DefaultTenant is the tenant of a single-company installation.
const DefaultTenant = "default"

// InvalidTenant stands in for the tenant token of a dead letter whose
// subject named no valid tenant (digitoll.dlq.<kind>._invalid). '_' can
// never be part of a tenant name, so no tenant's entries mix with these;
// they cannot be replayed, having no subject to go back to.
const InvalidTenant = "_invalid"

// InvalidKind stands in for the kind token of a dead letter whose subject
// named no known kind, or had too few or too many tokens
// (digitoll.dlq._invalid._invalid). Like InvalidTenant it is no valid
// token of its place, and such entries cannot be replayed.
const InvalidKind Kind = "_invalid"

// ValidTenant reports whether name can be a tenant: a subject token of
// a-z, 0-9 and '-', 1 to 63 characters.
func ValidTenant(name string) bool { return tenantPattern.MatchString(name) }

// SubmitSubject is where producers publish submissions of kind for tenant.
func SubmitSubject(kind Kind, tenant string) string {
	return subjectPrefix + ".submit." + string(kind) + "." + tenant
}

// SubmitFilter matches every tenant's submissions of one kind.
func SubmitFilter(kind Kind) string { return subjectPrefix + ".submit." + string(kind) + ".*" }

// ResultSubject is where the worker publishes results of kind for tenant.
func ResultSubject(kind Kind, tenant string) string {
	return subjectPrefix + ".result." + string(kind) + "." + tenant
}

// DLQSubject is where the worker dead-letters submissions of kind for tenant.
func DLQSubject(kind Kind, tenant string) string {
	return subjectPrefix + ".dlq." + string(kind) + "." + tenant
}

// RoutingSubject is where routing signals of feed for tenant are published.
func RoutingSubject(feed Feed, tenant string) string {
	return subjectPrefix + ".routing." + string(feed) + "." + tenant
}

// Subjects of each stream, for creating them.
const (
	SubjectsSubmit  = subjectPrefix + ".submit.>"
	SubjectsResults = subjectPrefix + ".result.>"
	SubjectsDLQ     = subjectPrefix + ".dlq.>"
	SubjectsRouting = subjectPrefix + ".routing.>"
)

// ParseSubmitSubject splits a submission subject into kind and tenant.
func ParseSubmitSubject(subject string) (Kind, string, error) {
	parts := strings.Split(subject, ".")
	if len(parts) != 4 || parts[0] != subjectPrefix || parts[1] != "submit" {
		return "", "", fmt.Errorf("subject %q is not digitoll.submit.<kind>.<tenant>", subject)
	}
	kind, err := ParseKind(parts[2])
	if err != nil {
		return "", "", fmt.Errorf("subject %q: %w", subject, err)
	}
	if !ValidTenant(parts[3]) {
		return "", "", fmt.Errorf("subject %q: tenant %q is not 1-63 characters of a-z, 0-9 and '-'", subject, parts[3])
	}
	return kind, parts[3], nil
}

// MsgID is the Nats-Msg-Id of a submission or result: "<tenant>/<id>".
// JetStream drops a repeated publish of the same MsgID within the stream's
// duplicate window.
func MsgID(tenant, id string) string { return tenant + "/" + id }

// ReplayMsgID is the Nats-Msg-Id of the replay of the dead letter with
// DLQ sequence seq of a submission with MsgID msgID:
// "<tenant>/<id>/replay/<seq>". Submission ids never contain '/', so it
// equals no producer's MsgID, and replaying one dead letter twice within
// the duplicate window queues it once.
func ReplayMsgID(msgID string, seq uint64) string {
	return msgID + replayInfix + strconv.FormatUint(seq, 10)
}

const replayInfix = "/replay/"

// IsReplay reports whether msgID is a ReplayMsgID: the submission was
// dead-lettered before, so the worker holds a record of it.
func IsReplay(msgID string) bool { return strings.Contains(msgID, replayInfix) }
