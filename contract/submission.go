package contract

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// ErrMalformed is wrapped by every error ParseSubmission returns: the
// message can never be processed as it is and belongs in the DLQ.
var ErrMalformed = errors.New("malformed submission")

// Operation is what a submission asks Toll to do.
type Operation string

// Operations per kind.
const (
	OpCreate  Operation = "create"
	OpUpdate  Operation = "update"
	OpDelete  Operation = "delete"
	OpPresent Operation = "present"
	OpUpload  Operation = "upload"
)

// Level is the declaration level of a road or air submission.
type Level string

// The three levels of a movement declaration.
const (
	LevelTransport         Level = "transport"
	LevelMasterConsignment Level = "master-consignment"
	LevelHouseConsignment  Level = "house-consignment"
)

// Submission is one message on digitoll.submit.<kind>.<tenant>.
type Submission struct {
	ID           string            `json:"id"`
	Operation    Operation         `json:"operation"`
	Level        Level             `json:"level,omitempty"`
	MRN          string            `json:"mrn,omitempty"`
	After        string            `json:"after,omitempty"`
	Declaration  json.RawMessage   `json:"declaration,omitempty"`
	Presentation *Presentation     `json:"presentation,omitempty"`
	Document     *Document         `json:"document,omitempty"`
	Metadata     map[string]string `json:"metadata,omitempty"`
}

// Presentation is the body of an entry presentation.
type Presentation struct {
	CustomsOfficeOfPresentation string `json:"customsOfficeOfPresentation"`
}

// Document describes a file to upload for a customs declaration; exactly
// one of Content (base64 in JSON) and Object is set.
type Document struct {
	DeclarationID string `json:"declarationId"`
	DocumentType  string `json:"documentType"`
	Filename      string `json:"filename"`
	ContentType   string `json:"contentType,omitempty"`
	Content       []byte `json:"content,omitempty"`
	Object        string `json:"object,omitempty"`
}

var (
	idPattern  = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)
	mrnPattern = regexp.MustCompile(`^[0-9]{2}[A-Z]{2}[A-Z0-9]{14}$`)
)

// ValidID reports whether id can be a submission id.
func ValidID(id string) bool { return idPattern.MatchString(id) }

// ValidMRN reports whether s has the shape of an MRN: 18 characters, two
// digits of year, two letters of country, then fourteen letters or digits.
func ValidMRN(s string) bool { return mrnPattern.MatchString(s) }

// ParseSubmission decodes and checks a submission of the given kind. It
// checks the shape the worker relies on, not what Toll's validator decides.
// Every error wraps ErrMalformed and reads as one line for the DLQ.
func ParseSubmission(kind Kind, data []byte) (*Submission, error) {
	s, err := decodeSubmission(data)
	if err != nil {
		return nil, err
	}
	if err := s.check(kind); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Submission) check(kind Kind) error {
	if s.ID == "" {
		return malformed("id is missing")
	}
	if !ValidID(s.ID) {
		return malformed("id %q is not 1-128 characters of A-Za-z0-9._:-", truncate(s.ID, 140))
	}
	if s.After != "" && !ValidID(s.After) {
		return malformed("after %q is not 1-128 characters of A-Za-z0-9._:-", truncate(s.After, 140))
	}
	if s.After == s.ID && s.After != "" {
		return malformed("after names the submission itself")
	}
	if s.MRN != "" && !ValidMRN(s.MRN) {
		return malformed("mrn %q is not an 18-character MRN", truncate(s.MRN, 40))
	}
	r := rulesOf(kind)
	if r == nil {
		return malformed("unknown kind %q", kind)
	}
	if err := r.checkOperationAndLevel(s); err != nil {
		return err
	}
	return r.check(s)
}

// checkMovement checks a road or air submission whose operation and
// level are known to be a movement's.
func (s *Submission) checkMovement() error {
	if s.Operation != OpCreate && s.MRN == "" && s.After == "" {
		return malformed("%s needs mrn, or after naming the submission whose MRN to use", s.Operation)
	}
	if s.Operation == OpCreate && s.MRN != "" {
		return malformed("create must not carry mrn: Toll assigns it")
	}
	if s.Operation == OpDelete && len(s.Declaration) == 0 {
		return nil
	}
	if len(s.Declaration) == 0 || bytes.Equal(bytes.TrimSpace(s.Declaration), []byte("null")) {
		return malformed("declaration is missing")
	}
	if t := bytes.TrimSpace(s.Declaration); len(t) == 0 || t[0] != '{' {
		return malformed("declaration is not a JSON object")
	}
	if s.Presentation != nil || s.Document != nil {
		return malformed("presentation and document do not belong in a %s submission", s.Level)
	}
	return nil
}

// checkEntry checks a presentation.
func (s *Submission) checkEntry() error {
	if s.MRN == "" && s.After == "" {
		return malformed("present needs mrn, or after naming the submission whose MRN to use")
	}
	if s.Presentation == nil || s.Presentation.CustomsOfficeOfPresentation == "" {
		return malformed("presentation.customsOfficeOfPresentation is missing")
	}
	if s.Level != "" || len(s.Declaration) != 0 || s.Document != nil {
		return malformed("an entry submission carries only mrn and presentation")
	}
	return nil
}

// checkDocument checks an upload.
func (s *Submission) checkDocument() error {
	d := s.Document
	if d == nil {
		return malformed("document is missing")
	}
	if d.DeclarationID == "" || d.DocumentType == "" || d.Filename == "" {
		return malformed("document needs declarationId, documentType and filename")
	}
	if (len(d.Content) == 0) == (d.Object == "") {
		return malformed("document needs exactly one of content and object")
	}
	if s.Level != "" || len(s.Declaration) != 0 || s.Presentation != nil {
		return malformed("a document submission carries only document")
	}
	return nil
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
