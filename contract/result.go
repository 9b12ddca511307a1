package contract

import "time"

// Status is the outcome a result reports.
type Status string

// Result statuses of docs/contract.md.
const (
	StatusAccepted     Status = "accepted"
	StatusRejected     Status = "rejected"
	StatusDeadLettered Status = "dead-lettered"
	// StatusUnresolved: Toll may hold the declaration, but the worker
	// cannot find out. An attempt's answer was lost after Toll may have
	// processed it, a later attempt met a duplicate FAILURE ("already in
	// use", "already cancelled") that may be Toll meeting that attempt,
	// and Toll offers no lookup for the declaration (e.g. a transport, or
	// a master or house whose parent's MRN is unknown). It is a final
	// result, like accepted or rejected: the message is not retried and
	// not dead-lettered. Errors holds Toll's errors, RequestID the
	// requestId of the attempt that failed, and Note what was sent,
	// which requestIds are known and how to check in Toll's own tools.
	StatusUnresolved Status = "unresolved"
)

// FieldError is one reason Toll gave for refusing a declaration.
type FieldError struct {
	Path    string `json:"path"`
	Message string `json:"message"`
}

// Result is the one answer to a submission, published on
// digitoll.result.<kind>.<tenant>.
type Result struct {
	ID                      string       `json:"id"`
	Tenant                  string       `json:"tenant"`
	Kind                    Kind         `json:"kind"`
	Operation               Operation    `json:"operation,omitempty"`
	Level                   Level        `json:"level,omitempty"`
	Status                  Status       `json:"status"`
	MRN                     string       `json:"mrn,omitempty"`
	RequestID               string       `json:"requestId,omitempty"`
	Errors                  []FieldError `json:"errors"`
	IncompleteDocumentation []string     `json:"incompleteDocumentation"`
	// Note explains an outcome that needs explaining, such as a
	// presentation counted as done because Toll had already seen its
	// requestId, or why a submission was dead-lettered.
	Note        string            `json:"note,omitempty"`
	Attempts    int               `json:"attempts"`
	ReceivedAt  time.Time         `json:"receivedAt"`
	CompletedAt time.Time         `json:"completedAt"`
	Metadata    map[string]string `json:"metadata,omitempty"`
}
