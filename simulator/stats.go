package simulator

import (
	"encoding/json"
	"maps"
	"slices"
	"time"
)

// Statuses of a processed declaration request (Declaration.Status).
const (
	// StatusSuccess: accepted; validation-status answers SUCCESS.
	StatusSuccess = "SUCCESS"
	// StatusFailure: accepted with 202, but validation-status answers
	// FAILURE.
	StatusFailure = "FAILURE"
	// StatusInvalid: refused at once with 400 (or 413/415); no requestId.
	StatusInvalid = "INVALID"
)

// Declaration is one declaration request (POST, PUT or DELETE) that got
// past fault injection and authentication and so reached processing.
type Declaration struct {
	// API is "road" or "air".
	API string
	// Level is "transport", "master-consignment" or "house-consignment".
	Level string
	// Method is POST (create), PUT (update) or DELETE (cancel).
	Method string
	// DocumentNumber identifies the declaration, see Stats.Submissions.
	// For DELETE it is that of the cancelled declaration; empty if it
	// could not be determined.
	DocumentNumber string
	// RequestID is the requestId answered with 202; empty for INVALID.
	RequestID string
	// MRN is the MRN in the path (PUT, DELETE) or the one a successful
	// create was given.
	MRN string
	// Status is StatusSuccess, StatusFailure or StatusInvalid.
	Status string
	// ClientID is the integration whose token made the call.
	ClientID string
	// Body is the raw request body.
	Body json.RawMessage
	// At is when the simulator received it (Config.Now).
	At time.Time
}

// Stats is a snapshot of what the simulator has seen. It is a deep copy:
// it does not change as the simulator goes on.
type Stats struct {
	requests     map[string]int
	grants       map[scopeKey]int
	exchanges    map[scopeKey]int
	submissions  map[string]int
	declarations []Declaration
	// presentations counts accepted entry presentations by MRN.
	presentations map[string]int
}

type scopeKey struct{ clientID, scope string }

// Requests counts the requests that reached route, a method, a space and
// the path pattern, e.g. "POST /toll/api/movement/road/v2/house-consignment",
// "GET /toll/api/movement/road/status/v2/house-consignment/validation-status/{requestId}",
// RouteMaskinportenToken or RouteTokenExchange. Requests answered with an
// injected fault count; requests to unknown paths do not.
func (st Stats) Requests(route string) int { return st.requests[route] }

// Grants counts the Maskinporten tokens issued to clientID that include
// scope (a grant for several scopes counts once for each).
func (st Stats) Grants(clientID, scope string) int {
	return st.grants[scopeKey{clientID, scope}]
}

// Exchanges counts the Toll tokens issued to clientID that include scope.
func (st Stats) Exchanges(clientID, scope string) int {
	return st.exchanges[scopeKey{clientID, scope}]
}

// Submissions counts the POST, PUT and DELETE requests that reached
// processing (see Declaration) for the declaration with this transport
// document number, in any API: house-consignment
// consignmentHouseLevel.transportDocumentHouseLevel.documentNumber,
// master-consignment consignmentMasterLevel.transportDocumentMasterLevel.documentNumber,
// transport activeBorderTransportMeans.identificationNumber. A DELETE
// counts for the declaration its MRN names.
func (st Stats) Submissions(documentNumber string) int { return st.submissions[documentNumber] }

// Presentations counts the entry presentations of the declaration with
// this MRN that the simulator accepted (answered 200), including those
// whose answer was then lost to a fault. A presentation refused with 400,
// such as one that reuses a requestId, does not count.
func (st Stats) Presentations(mrn string) int { return st.presentations[mrn] }

// Declarations lists every declaration request that reached processing,
// in the order received.
func (st Stats) Declarations() []Declaration {
	out := make([]Declaration, len(st.declarations))
	for i, d := range st.declarations {
		d.Body = slices.Clone(d.Body)
		out[i] = d
	}
	return out
}

// Stats returns a snapshot of the simulator's counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{
		requests:      maps.Clone(s.st.requestCounts),
		grants:        maps.Clone(s.st.grants),
		exchanges:     maps.Clone(s.st.exchanges),
		submissions:   maps.Clone(s.st.submissions),
		declarations:  make([]Declaration, len(s.st.declarations)),
		presentations: maps.Clone(s.st.entry.counts),
	}
	for i, d := range s.st.declarations {
		d.Body = slices.Clone(d.Body)
		st.declarations[i] = d
	}
	return st
}
