package toll

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/failure"
)

// ErrNotReady is wrapped by ValidationStatus errors when Toll has not yet
// processed a request (the query API answers 404 until it has). It is a
// normal state while polling, not a failure.
var ErrNotReady = errors.New("toll: validation result not ready yet")

// ErrAmbiguous is wrapped, together with failure.ErrTransient, when a
// request was written to Toll in full but no answer came back (connection
// reset, timeout, body cut short). Toll may have processed the request. For
// GETs that does not matter; for a declaration it means a retry could
// create a second request for the same submission, which Toll would later
// refuse as a duplicate. Whoever retries a non-idempotent call must decide
// with its own records whether to repeat it.
var ErrAmbiguous = errors.New("toll: no answer to a request Toll may have processed")

// ErrNotSent is wrapped by errors of calls that ended before their
// request could leave: the rate limiter's wait, getting the token, or the
// caller's hook (see WithBeforeSend) failed. Toll cannot have acted on
// such a call.
var ErrNotSent = errors.New("toll: request not sent")

// NotProcessed reports whether err, from a Toll call, says for certain
// that Toll did not act on the request, so that repeating it cannot make
// a duplicate and no record of a call in flight needs to outlive it:
//   - ErrNotSent: the call ended before its request could leave;
//   - a *NetworkError that had not written the whole request (connection
//     refused, DNS failure, a write cut short): Toll cannot act on a
//     request it did not receive in full;
//   - 429 Too Many Requests: refused by the rate limit before processing;
//   - 503 Service Unavailable: Toll (or its gateway) refused the request
//     before processing it, for overload or maintenance. This is the
//     status's meaning in RFC 9110 and how the simulator's ErrorRate
//     fault answers; DIGITOLL.md documents no 503 after Toll acted;
//   - any other 4xx (400 with validation errors included): Toll answered
//     that it refused the request, so it created nothing.
//
// Everything else may have reached Toll: a request written in full with
// no answer (ErrAmbiguous), 500, 502, 504 and other 5xx (a gateway may
// answer them after the service behind it acted, e.g. 504 after a slow
// write), a 2xx whose answer could not be used, and errors this package
// does not know.
func NotProcessed(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, ErrNotSent) {
		return true
	}
	if ne, ok := errors.AsType[*NetworkError](err); ok {
		return !ne.Written
	}
	if _, ok := errors.AsType[*RejectedError](err); ok {
		return true
	}
	if he, ok := errors.AsType[*HTTPError](err); ok {
		switch s := he.StatusCode; {
		case s == http.StatusTooManyRequests, s == http.StatusServiceUnavailable:
			return true
		case s >= 400 && s < 500:
			return true
		}
	}
	return false
}

// earlierAttemptPhrases are the words of FAILURE descriptions by which
// Toll refuses a declaration because of one it already holds: the
// document number of a create is in use ("… is already in use", "One or
// more transport documents are already submitted", DIGITOLL.md), or the
// declaration a cancel names is cancelled already. Such a FAILURE may be
// Toll meeting an earlier attempt of the same submission whose answer was
// lost. The wording is the simulator's and DIGITOLL.md's; Toll documents
// no error codes for them.
var earlierAttemptPhrases = []string{"already in use", "already submitted", "is cancelled", "already cancelled"}

// SplitEarlierAttempt separates the validation errors of a FAILURE into
// those that may be Toll meeting an earlier attempt of the same
// submission (see earlierAttemptPhrases) and the others.
func SplitEarlierAttempt(errs []contract.FieldError) (earlier, other []contract.FieldError) {
	for _, fe := range errs {
		msg := strings.ToLower(fe.Message)
		hit := false
		for _, p := range earlierAttemptPhrases {
			if strings.Contains(msg, p) {
				hit = true
				break
			}
		}
		if hit {
			earlier = append(earlier, fe)
		} else {
			other = append(other, fe)
		}
	}
	return earlier, other
}

// maxErrorBody bounds how much of a response body goes into an error.
const maxErrorBody = 300

// HTTPError is an answer from Toll with a status the caller could not use.
// It classifies itself (see package failure) through Unwrap:
//   - 401 after a retry with a fresh token, and 403: failure.ErrConfig;
//   - 429 and 5xx: failure.ErrTransient, with RetryAfter from the header;
//   - other statuses: failure.ErrPermanent.
//
// It never holds request headers, so no token can leak through it.
type HTTPError struct {
	Method string
	// Path is relative to the base URL.
	Path       string
	StatusCode int
	// Body is the start of the response body on one line.
	Body string

	reason     string
	class      error
	retryAfter time.Duration
}

func newHTTPError(method, path string, status int, header http.Header, body []byte, now time.Time) *HTTPError {
	e := &HTTPError{Method: method, Path: path, StatusCode: status, Body: oneLine(string(body), maxErrorBody)}
	switch {
	case status == http.StatusUnauthorized:
		// Reached only when the retry with a fresh token failed as well.
		e.class = failure.ErrConfig
	case status == http.StatusForbidden:
		e.class = failure.ErrConfig
		e.reason = "scope not granted to the integration, or token for the wrong audience"
	case status == http.StatusTooManyRequests || status >= 500:
		e.class = failure.ErrTransient
		e.retryAfter = parseRetryAfter(header.Get("Retry-After"), now)
	default:
		e.class = failure.ErrPermanent
	}
	return e
}

// Error describes the call and Toll's answer on one line.
func (e *HTTPError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "toll: %s %s: HTTP %d", e.Method, e.Path, e.StatusCode)
	if t := http.StatusText(e.StatusCode); t != "" {
		b.WriteString(" " + t)
	}
	if e.reason != "" {
		b.WriteString(": " + e.reason)
	}
	if e.Body != "" {
		b.WriteString(": " + e.Body)
	}
	return b.String()
}

// Unwrap returns the failure class sentinel, so errors.Is(err,
// failure.ErrTransient) and failure.Classify work.
func (e *HTTPError) Unwrap() error { return e.class }

// RetryAfter is the delay Toll asked for with Retry-After, or zero.
func (e *HTTPError) RetryAfter() time.Duration { return e.retryAfter }

// parseRetryAfter reads delta-seconds or an HTTP date; anything else, or a
// time in the past, gives zero.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		// Clamp absurd values so the multiplication cannot overflow.
		return time.Duration(min(secs, 86400)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}

// NetworkError is a request that got no HTTP answer. It is always
// transient. When the request had been written in full before the failure
// it also wraps ErrAmbiguous: Toll may have received and processed it.
// When it was not (connection refused, DNS failure, a write cut short),
// Toll cannot have acted on it and repeating it is safe.
type NetworkError struct {
	Method string
	Path   string
	// Written reports whether the whole request reached the connection.
	Written bool
	Err     error
}

// Error describes the call and what went wrong on one line.
func (e *NetworkError) Error() string {
	if e.Written {
		return fmt.Sprintf("toll: %s %s: request sent but no answer (Toll may have processed it): %v", e.Method, e.Path, e.Err)
	}
	return fmt.Sprintf("toll: %s %s: request not sent: %v", e.Method, e.Path, e.Err)
}

// Unwrap exposes the cause, failure.ErrTransient and, when Written,
// ErrAmbiguous.
func (e *NetworkError) Unwrap() []error {
	if e.Written {
		return []error{e.Err, failure.ErrTransient, ErrAmbiguous}
	}
	return []error{e.Err, failure.ErrTransient}
}

// RejectedError is Toll refusing a declaration's content with 400 and a
// list of validation errors. It is a business answer, not a failure: it
// carries no failure class (failure.Classify would call it transient), so
// callers must check for it with errors.As before classifying.
type RejectedError struct {
	Status int
	Errors []contract.FieldError
}

// Error summarises the validation errors on one line.
func (e *RejectedError) Error() string {
	parts := make([]string, 0, len(e.Errors))
	for _, fe := range e.Errors {
		if fe.Path == "" {
			parts = append(parts, fe.Message)
		} else {
			parts = append(parts, fe.Path+": "+fe.Message)
		}
	}
	return oneLine(fmt.Sprintf("toll rejected the declaration (HTTP %d): %s", e.Status, strings.Join(parts, "; ")), 1000)
}

// oneLine folds whitespace so s fits on one log line and cuts it at max
// bytes (on a rune boundary).
func oneLine(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
