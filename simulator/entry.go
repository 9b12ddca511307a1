package simulator

import (
	"net/http"

	"github.com/google/uuid"
)

// RoutePresentation is the entry presentation endpoint, as counted by
// Stats.Requests.
const RoutePresentation = "POST /toll/api/movement/presentation/v1/entry-summary-declaration"

// Messages of the presentation API's 400 answers.
const (
	msgUUID          = "must be a UUID"
	msgOffice        = "must be a customs office: 2 uppercase letters and 6 digits"
	msgMRN           = "invalid MRN (18 characters: 2 digits, NO, 14 uppercase letters or digits)"
	msgRequestIDUsed = "requestId already used"
)

// entryScopes may call the entry APIs: presentation and the routing feed.
func entryScopes() []string {
	return []string{"toll:movement/entry", "toll:eu/movement/entry"}
}

// presentations is what the simulator remembers of entry presentations.
// Server.mu guards it.
type presentations struct {
	// used holds the requestIds of accepted presentations per client:
	// Toll refuses a requestId a client has used before.
	used map[clientRequest]bool
	// counts counts accepted presentations per MRN, for Stats.
	counts map[string]int
}

type clientRequest struct{ clientID, requestID string }

func newPresentations() presentations {
	return presentations{used: map[clientRequest]bool{}, counts: map[string]int{}}
}

// presentation is a presentation body whose fields are strings.
type presentation struct {
	requestID, office, mrn string
}

func (s *Server) registerEntry(mux *http.ServeMux) {
	s.handle(mux, RoutePresentation, s.tollAPI(entryScopes(), s.servePresentation))
}

// servePresentation presents the goods of a declaration the caller made
// at a customs office: 200 with an empty body, after which entry/status
// of the road or air query API answers validEntry true. Every error found
// is reported in one 400, as with declarations; a requestId the client
// used before is one of them.
func (s *Server) servePresentation(w http.ResponseWriter, r *http.Request, c caller) {
	_, body, bad := readDeclaration(w, r, false)
	if bad != nil {
		setRequestNote(r, "refused with "+http.StatusText(bad.status))
		bad.write(w)
		return
	}
	p, errs := readPresentation(body)
	s.mu.Lock()
	errs = append(errs, s.st.checkPresentation(p, c)...)
	if len(errs) == 0 {
		s.st.entry.used[clientRequest{c.clientID, p.requestID}] = true
		s.st.entry.counts[p.mrn]++
	}
	s.mu.Unlock()
	if len(errs) > 0 {
		setRequestNote(r, "presentation refused")
		(&badRequest{status: http.StatusBadRequest, errs: errs}).write(w)
		return
	}
	s.MarkEntered(p.mrn, p.office)
	w.WriteHeader(http.StatusOK)
}

// readPresentation checks the form of each field. A field that is
// missing or not a string is reported as for declarations; fields it does
// not know are ignored.
func readPresentation(body map[string]any) (presentation, []fieldError) {
	var errs []fieldError
	field := func(name string, valid func(string) bool, msg string) string {
		if e, bad := checkRule(body, rule{name, kindString}); bad {
			errs = append(errs, e)
			return ""
		}
		v := body[name].(string)
		if !valid(v) {
			errs = append(errs, fieldError{name, msg})
			return ""
		}
		return v
	}
	// One statement per field, not one composite literal: the order in
	// which the literal's calls and the read of errs happen is not
	// specified, and Go 1.26.8 miscompiles that form into a corrupt slice
	// (a segfault in encoding/json).
	var p presentation
	p.requestID = field("requestId", validUUID, msgUUID)
	p.office = field("customsOfficeOfPresentation", validOffice, msgOffice)
	p.mrn = field("mrn", ValidMRN, msgMRN)
	return p, errs
}

// checkPresentation checks what depends on the simulator's state: the
// requestId is new for this client, and the MRN is a live road or air
// declaration of this client, of any level. Fields readPresentation
// refused are empty and not checked again.
func (st *state) checkPresentation(p presentation, c caller) []fieldError {
	var errs []fieldError
	if p.requestID != "" && st.entry.used[clientRequest{c.clientID, p.requestID}] {
		errs = append(errs, fieldError{"requestId", msgRequestIDUsed})
	}
	if p.mrn != "" {
		switch d := st.decls[p.mrn]; {
		case d == nil || d.clientID != c.clientID:
			errs = append(errs, fieldError{"mrn", "MRN " + p.mrn + " is not a known declaration"})
		case d.cancelled:
			errs = append(errs, fieldError{"mrn", "Declaration " + p.mrn + " is cancelled"})
		}
	}
	return errs
}

// validUUID accepts a UUID in its canonical 36-character form only, as a
// JSON field is written.
func validUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	_, err := uuid.Parse(s)
	return err == nil
}

// validOffice reports whether s is a customs office reference number: two
// uppercase letters and six digits, e.g. NO351001.
func validOffice(s string) bool {
	if len(s) != 8 {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if i < 2 && (c < 'A' || c > 'Z') || i >= 2 && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}
