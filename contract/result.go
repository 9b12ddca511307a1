package contract

import "time"

// Status is the outcome a result reports.
type Status string

// Result statuses of docs/contract.md.
const (
	StatusAccepted     Status = "accepted"
	StatusRejected     Status = "rejected"
	StatusDeadLettered Status = "dead-lettered"
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
