package toll

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/failure"
)

// ValidationState is Toll's verdict on a declaration request.
type ValidationState string

// The verdicts the query API reports once a request is processed.
const (
	ValidationSuccess ValidationState = "SUCCESS"
	ValidationFailure ValidationState = "FAILURE"
)

// Validation is the processed result of a declaration request.
type Validation struct {
	Status    ValidationState
	RequestID string
	// MRN is the movement reference number Toll assigned or acted on.
	MRN string
	// NotificationDate is kept as Toll wrote it; nothing depends on its
	// format.
	NotificationDate string
	// IncompleteDocumentation lists what Toll still misses after a
	// SUCCESS, one readable line per reason.
	IncompleteDocumentation []string
	// Errors are the reasons for a FAILURE.
	Errors []contract.FieldError
}

// Declare sends a declaration at level: create POSTs body to
// <api.Path>/<level>, update PUTs it to <api.Path>/<level>/<mrn>, delete
// sends DELETE to the same address. It returns the requestId Toll answered
// with, to be followed with ValidationStatus.
//
// A 400 with validation errors is returned as *RejectedError. Other
// failures are *HTTPError or *NetworkError; a *NetworkError wrapping
// ErrAmbiguous means Toll may hold the request although no requestId came
// back, and blindly repeating the call may create a duplicate.
func (c *Client) Declare(ctx context.Context, api API, op contract.Operation, level contract.Level, mrn string, body []byte) (string, error) {
	if level == "" {
		return "", fmt.Errorf("toll: declare %s: level is empty: %w", op, failure.ErrPermanent)
	}
	path := api.Path + "/" + url.PathEscape(string(level))
	var method string
	switch op {
	case contract.OpCreate:
		method = http.MethodPost
	case contract.OpUpdate, contract.OpDelete:
		if mrn == "" {
			return "", fmt.Errorf("toll: %s %s needs an MRN: %w", op, level, failure.ErrPermanent)
		}
		path += "/" + url.PathEscape(mrn)
		method = http.MethodPut
		if op == contract.OpDelete {
			method = http.MethodDelete
			if len(body) == 0 {
				// The one public client sends the issue date with a
				// cancellation; whether Toll requires a body is open,
				// so we send the least that client sends.
				body = fmt.Appendf(nil, `{"documentIssueDate":%q}`, time.Now().UTC().Format("2006-01-02T15:04:05Z"))
			}
		}
	default:
		return "", fmt.Errorf("toll: operation %q is not create, update or delete: %w", op, failure.ErrPermanent)
	}

	resp, err := c.do(ctx, api, method, path, body, http.StatusBadRequest)
	if err != nil {
		return "", err
	}
	if resp.status == http.StatusBadRequest {
		return "", rejection(resp.status, resp.body)
	}
	requestID, err := requestIDAnswer(resp.body)
	if err != nil || requestID == "" {
		// Toll said yes, so it probably holds the request, but we cannot
		// follow it. Retrying would send the declaration again, and with
		// no idempotency key that makes a duplicate, so this is
		// permanent: an operator has to look.
		e := newHTTPError(method, path, resp.status, resp.header, resp.body, time.Now())
		e.class = failure.ErrPermanent
		e.reason = "Toll accepted the call but its answer has no requestId"
		return "", e
	}
	return requestID, nil
}

// requestIDAnswer reads the requestId of Toll's answer to a declaration,
// {"requestId":"…"}. An answer of just that, its value free of escapes,
// is read without encoding/json's allocations; anything else is left to
// json.Unmarshal.
func requestIDAnswer(body []byte) (string, error) {
	const prefix, suffix = `{"requestId":"`, `"}`
	b := bytes.TrimSpace(body)
	if v, ok := bytes.CutPrefix(b, []byte(prefix)); ok {
		if v, ok := bytes.CutSuffix(v, []byte(suffix)); ok && plainASCII(v) {
			return string(v), nil
		}
	}
	var answer struct {
		RequestID string `json:"requestId"`
	}
	err := json.Unmarshal(body, &answer)
	return answer.RequestID, err
}

// plainASCII reports whether b is printable ASCII without quotes or
// backslashes: a JSON string's content that decodes to itself.
func plainASCII(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// rejection turns a 400 body into a *RejectedError. A body that does not
// hold the documented validationErrors still means Toll refused the
// content, so its text becomes the one error.
func rejection(status int, body []byte) *RejectedError {
	var parsed struct {
		ValidationErrors []struct {
			Field string `json:"field"`
			Error string `json:"error"`
		} `json:"validationErrors"`
	}
	if err := json.Unmarshal(body, &parsed); err == nil && len(parsed.ValidationErrors) > 0 {
		errs := make([]contract.FieldError, 0, len(parsed.ValidationErrors))
		for _, ve := range parsed.ValidationErrors {
			errs = append(errs, contract.FieldError{Path: ve.Field, Message: ve.Error})
		}
		return &RejectedError{Status: status, Errors: errs}
	}
	msg := oneLine(string(body), maxErrorBody)
	if msg == "" {
		msg = "Toll answered HTTP 400 without a body"
	}
	return &RejectedError{Status: status, Errors: []contract.FieldError{{Message: msg}}}
}

// ValidationStatus reads the result of a declaration request from the
// query API. Until Toll has processed it the error wraps ErrNotReady. An
// answer with a status other than SUCCESS or FAILURE is a transient error:
// it may be a state this client does not know yet.
func (c *Client) ValidationStatus(ctx context.Context, api API, level contract.Level, requestID string) (Validation, error) {
	if requestID == "" || level == "" {
		return Validation{}, fmt.Errorf("toll: validation status needs a level and a requestId: %w", failure.ErrPermanent)
	}
	path := api.QueryPath + "/" + url.PathEscape(string(level)) + "/validation-status/" + url.PathEscape(requestID)
	resp, err := c.do(ctx, api, http.MethodGet, path, nil, http.StatusNotFound)
	if err != nil {
		return Validation{}, err
	}
	if resp.status == http.StatusNotFound {
		return Validation{}, fmt.Errorf("toll: requestId %s: %w", requestID, ErrNotReady)
	}
	var body struct {
		Status           string            `json:"status"`
		RequestID        string            `json:"requestId"`
		MRN              string            `json:"mrn"`
		NotificationDate json.RawMessage   `json:"notificationDate"`
		Incomplete       []json.RawMessage `json:"incompleteDocumentationReasonList"`
		Errors           []json.RawMessage `json:"validationErrorList"`
	}
	if err := json.Unmarshal(resp.body, &body); err != nil {
		return Validation{}, fmt.Errorf("toll: GET %s: HTTP %d with an unreadable body (%s): %w", path, resp.status, oneLine(string(resp.body), maxErrorBody), failure.ErrTransient)
	}
	v := Validation{
		Status:           ValidationState(strings.ToUpper(body.Status)),
		RequestID:        body.RequestID,
		MRN:              body.MRN,
		NotificationDate: readable(body.NotificationDate),
	}
	switch v.Status {
	case ValidationSuccess:
		for _, r := range body.Incomplete {
			v.IncompleteDocumentation = append(v.IncompleteDocumentation, reasonText(r))
		}
	case ValidationFailure:
		for _, e := range body.Errors {
			v.Errors = append(v.Errors, validationError(e))
		}
	default:
		return Validation{}, fmt.Errorf("toll: GET %s: unknown validation status %q: %w", path, oneLine(body.Status, 40), failure.ErrTransient)
	}
	if v.RequestID == "" {
		v.RequestID = requestID
	}
	return v, nil
}

// reasonText renders one incompleteDocumentationReasonList element. The
// public sources show neither strings nor objects for sure, so both are
// read: a string as is, an object by its usual text fields, anything else
// as compact JSON.
func reasonText(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var obj map[string]any
	if json.Unmarshal(raw, &obj) == nil {
		text := firstString(obj, "description", "reason", "message", "text")
		code := firstString(obj, "code", "reasonCode", "type")
		switch {
		case text != "" && code != "":
			return code + ": " + text
		case text != "":
			return text
		case code != "":
			return code
		}
	}
	return readable(raw)
}

// validationError renders one validationErrorList element: the pointer's
// messageElementPath is the path, the description the message.
func validationError(raw json.RawMessage) contract.FieldError {
	var e struct {
		Description string `json:"description"`
		Pointer     struct {
			MessageElementPath string `json:"messageElementPath"`
		} `json:"pointer"`
	}
	if json.Unmarshal(raw, &e) != nil || e.Description == "" {
		return contract.FieldError{Path: e.Pointer.MessageElementPath, Message: readable(raw)}
	}
	return contract.FieldError{Path: e.Pointer.MessageElementPath, Message: e.Description}
}

func firstString(obj map[string]any, keys ...string) string {
	for _, k := range keys {
		if s, ok := obj[k].(string); ok && s != "" {
			return s
		}
	}
	return ""
}

// readable gives a JSON string's value, or any other JSON compacted onto
// one bounded line; null or nothing gives "".
func readable(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var buf bytes.Buffer
	if json.Compact(&buf, raw) == nil {
		return oneLine(buf.String(), maxErrorBody)
	}
	return oneLine(string(raw), maxErrorBody)
}

// TestAuth calls the API's test-auth endpoint: success proves that the
// integration gets a token Toll accepts for api's scope.
func (c *Client) TestAuth(ctx context.Context, api API) error {
	_, err := c.do(ctx, api, http.MethodGet, api.Path+"/test-auth", nil)
	return err
}
