package toll

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/failure"
)

// ErrRequestIDUsed is matched (errors.Is) by a *RejectedError one of whose
// errors says that the presentation's requestId was used before. Toll
// documents reusing a requestId as a validation error; a client that
// retries a presentation with the same requestId after losing the first
// answer gets it when the first attempt had in fact been presented.
var ErrRequestIDUsed = errors.New("toll: requestId already used")

// presentationPath is the entry summary declaration presentation,
// relative to PresentationV1().Path.
const presentationPath = "/entry-summary-declaration"

// Presentation presents the goods of an entry summary declaration at a
// customs office.
type Presentation struct {
	// RequestID is a UUID the client chooses. Toll refuses one it has
	// seen before, so retries of one presentation must reuse it.
	RequestID string `json:"requestId"`
	// CustomsOfficeOfPresentation is the office's reference number, e.g.
	// "NO351001".
	CustomsOfficeOfPresentation string `json:"customsOfficeOfPresentation"`
	// MRN is the MRN of the declaration presented (in practice the
	// transport's or a house consignment's).
	MRN string `json:"mrn"`
}

// Present sends a presentation. Any 2xx means presented, whatever its
// body (Toll documents an empty one). A 400 is returned as *RejectedError,
// which matches ErrRequestIDUsed when Toll says the requestId was used
// before. Other failures are *HTTPError or *NetworkError; a *NetworkError
// wrapping ErrAmbiguous means Toll may have presented it, and repeating
// the call with the same RequestID is how to find out.
func (c *Client) Present(ctx context.Context, p Presentation) error {
	if p.RequestID == "" || p.CustomsOfficeOfPresentation == "" || p.MRN == "" {
		return fmt.Errorf("toll: a presentation needs requestId, customsOfficeOfPresentation and mrn: %w", failure.ErrPermanent)
	}
	body, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("toll: encoding the presentation: %w: %w", err, failure.ErrPermanent)
	}
	api := PresentationV1()
	resp, err := c.do(ctx, api, http.MethodPost, api.Path+presentationPath, body, http.StatusBadRequest)
	if err != nil {
		return err
	}
	if resp.status == http.StatusBadRequest {
		return rejection(resp.status, resp.body)
	}
	return nil
}

// Is makes a rejection that reports a reused requestId match
// ErrRequestIDUsed.
func (e *RejectedError) Is(target error) bool {
	if target != ErrRequestIDUsed {
		return false
	}
	for _, fe := range e.Errors {
		if RequestIDUsed(fe) {
			return true
		}
	}
	return false
}

// RequestIDUsed reports whether a validation error says that the
// requestId was used before. No public source shows Toll's exact words,
// so it matches loosely: the field is requestId (or the message names it)
// and the message says "already used" or "already in use", in any case.
func RequestIDUsed(fe contract.FieldError) bool {
	msg := strings.ToLower(fe.Message)
	field := strings.ToLower(fe.Path)
	aboutID := field == "requestid" || strings.HasSuffix(field, ".requestid") || strings.Contains(msg, "requestid")
	return aboutID && (strings.Contains(msg, "already used") || strings.Contains(msg, "already in use"))
}
