package simulator

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"time"
)

// TriggerControl as the value of any string field of an accepted house
// consignment or transport declaration makes its routing signal
// TO_CONTROL instead of TO_ENTRY (see the package documentation).
const TriggerControl = "SIM-CONTROL"

// DefaultRoutingPageSize is the most signals one routing feed answer holds
// when Config.RoutingPageSize is zero: Toll's documented page size.
const DefaultRoutingPageSize = 1000

// Routing feeds, as the last segment of their paths.
const (
	RoutingFeedHouseConsignment = "house-consignment"
	RoutingFeedTransport        = "transport"
)

// Routing values the simulator gives. Toll has others; clients must pass
// on whatever they get.
const (
	RoutingToEntry   = "TO_ENTRY"
	RoutingToControl = "TO_CONTROL"
)

// Routes of the routing feeds, as counted by Stats.Requests.
const (
	RouteRoutingHouseConsignment = "GET /toll/api/movement/routing/v1/house-consignment"
	RouteRoutingTransport        = "GET /toll/api/movement/routing/v1/transport"
)

// routingFeeds are the feeds with the declaration level that fills each.
func routingFeeds() map[string]string {
	return map[string]string{RoutingFeedHouseConsignment: levelHouse, RoutingFeedTransport: levelTransport}
}

// routingState holds every client's routing feeds. Server.mu guards it.
//
// A signal is appended when its declaration's SUCCESS becomes visible (the
// validation delay has passed), not when the declaration is written: a
// client that saw SUCCESS finds the signal, and one that has not yet
// cannot. Because the delay may change between writes, a later write can
// become visible first; signals are therefore appended, and given their
// ids, only once visible, so that a feed never grows in the middle,
// behind a marker a client already holds.
type routingState struct {
	// pageSize is the most signals one answer holds; 0 means
	// DefaultRoutingPageSize.
	pageSize int
	// scanned is how many of state.declarations have been looked at.
	scanned int
	// pending are signals of accepted declarations not yet visible.
	pending []pendingSignal
	feeds   map[feedKey]*routingFeed
	// lastID numbers signals across all feeds.
	lastID uint64
	// idPrefix is drawn at random per simulator, so that a restarted
	// simulator's ids differ from its predecessor's, as a real reset feed's
	// would: a client that kept its store (and the stream's duplicate
	// window on "<tenant>/<id>") must not take a new signal for one it
	// has published.
	idPrefix string
}

// feedKey names one client's feed: each integration has its own.
type feedKey struct{ clientID, feed string }

// routingFeed is an append-only list of signals (JSON) with an index from
// routing id to position, for markers.
type routingFeed struct {
	signals []json.RawMessage
	byID    map[string]int
}

// pendingSignal is the signal of an accepted declaration, waiting for its
// validation to become visible.
type pendingSignal struct {
	key     feedKey
	readyAt time.Time
	decl    Declaration
}

// routingSignal is the shape of a signal in DIGITOLL.md.
type routingSignal struct {
	EntrySummaryDeclarationMRN  string         `json:"entrySummaryDeclarationMRN"`
	TransportDocumentHouseLevel *houseDocument `json:"transportDocumentHouseLevel,omitempty"`
	ActiveBorderTransportMeans  any            `json:"activeBorderTransportMeans,omitempty"`
	RoutingResult               routingResult  `json:"routingResult"`
}

type houseDocument struct {
	ReferenceNumber string `json:"referenceNumber"`
	Type            string `json:"type"`
}

type routingResult struct {
	ID                string `json:"id"`
	Routing           string `json:"routing"`
	DocumentIssueDate string `json:"documentIssueDate"`
}

// registerRouting registers the two routing feeds.
func (s *Server) registerRouting(mux *http.ServeMux) {
	for _, feed := range []string{RoutingFeedHouseConsignment, RoutingFeedTransport} {
		s.handle(mux, "GET /toll/api/movement/routing/v1/"+feed, s.tollAPI(entryScopes(), func(w http.ResponseWriter, r *http.Request, c caller) {
			s.serveRouting(w, r, c, feed)
		}))
	}
}

// serveRouting answers up to a page of the caller's signals after the
// marker (from the start without one), or 400 for a marker the feed does
// not hold.
func (s *Server) serveRouting(w http.ResponseWriter, r *http.Request, c caller, feed string) {
	marker := r.URL.Query().Get("marker")
	s.mu.Lock()
	s.st.promoteRouting(s.now())
	page, ok := s.st.routing.page(feedKey{c.clientID, feed}, marker)
	s.mu.Unlock()
	if !ok {
		setRequestNote(r, "unknown routing marker")
		writeJSON(w, http.StatusBadRequest, map[string]any{"validationErrors": []fieldError{{"marker", "unknown marker"}}})
		return
	}
	writeJSON(w, http.StatusOK, page)
}

// page returns the signals after marker, at most a page of them; false if
// marker is not an id of this feed. The slice is fresh, the signals are
// never changed after they are stored.
func (rs *routingState) page(key feedKey, marker string) ([]json.RawMessage, bool) {
	f := rs.feeds[key]
	from := 0
	if marker != "" {
		if f == nil {
			return nil, false
		}
		i, ok := f.byID[marker]
		if !ok {
			return nil, false
		}
		from = i + 1
	}
	out := []json.RawMessage{}
	if f == nil {
		return out, true
	}
	size := rs.pageSize
	if size <= 0 {
		size = DefaultRoutingPageSize
	}
	end := min(from+size, len(f.signals))
	return append(out, f.signals[from:end]...), true
}

// promoteRouting moves the signals of accepted declarations into their
// feeds once their validation is visible at now. It reads the declaration
// record, which only grows, from where it stopped last time.
func (st *state) promoteRouting(now time.Time) {
	rs := &st.routing
	for ; rs.scanned < len(st.declarations); rs.scanned++ {
		d := st.declarations[rs.scanned]
		if p, ok := st.routable(d); ok {
			rs.pending = append(rs.pending, p)
		}
	}
	var ready []pendingSignal
	rs.pending = slices.DeleteFunc(rs.pending, func(p pendingSignal) bool {
		if now.Before(p.readyAt) {
			return false
		}
		ready = append(ready, p)
		return true
	})
	// Visible together: in the order they became visible, then written.
	slices.SortStableFunc(ready, func(a, b pendingSignal) int { return a.readyAt.Compare(b.readyAt) })
	var links transportLinks
	for _, p := range ready {
		st.appendSignal(p.key, st.declarationSignal(p, &links), p.readyAt)
	}
}

// routable reports whether d feeds a routing feed: an accepted create or
// update (not a cancel) of a house consignment or transport.
func (st *state) routable(d Declaration) (pendingSignal, bool) {
	if d.Status != StatusSuccess || d.Method == http.MethodDelete {
		return pendingSignal{}, false
	}
	var feed string
	for f, lvl := range routingFeeds() {
		if lvl == d.Level {
			feed = f
		}
	}
	req := st.requests[d.RequestID]
	if feed == "" || req == nil {
		return pendingSignal{}, false
	}
	return pendingSignal{key: feedKey{d.ClientID, feed}, readyAt: req.readyAt, decl: d}, true
}

// declarationSignal builds the signal of an accepted declaration. A house
// consignment's means of transport is known when a live transport of the
// same API and client lists the house's master document; links finds it.
func (st *state) declarationSignal(p pendingSignal, links *transportLinks) routingSignal {
	body := decodeBody(p.decl.Body)
	sig := routingSignal{EntrySummaryDeclarationMRN: p.decl.MRN, RoutingResult: routingResult{Routing: RoutingToEntry}}
	if _, control := findString(body, "", TriggerControl); control {
		sig.RoutingResult.Routing = RoutingToControl
	}
	if p.key.feed == RoutingFeedTransport {
		sig.ActiveBorderTransportMeans = valueAt(body, "activeBorderTransportMeans")
		return sig
	}
	sig.TransportDocumentHouseLevel = &houseDocument{
		ReferenceNumber: stringAt(body, pathHouseDocNumber),
		Type:            stringAt(body, pathHouseDocType),
	}
	if t := links.find(st, masterLink{p.decl.API, p.decl.ClientID, stringAt(body, pathHouseMasterDoc)}); t != nil {
		sig.ActiveBorderTransportMeans = valueAt(t.body, "activeBorderTransportMeans")
	}
	return sig
}

// masterLink is a master document as a transport of one API and client
// lists it.
type masterLink struct{ api, clientID, masterDoc string }

// transportLinks maps master documents to the live transport listing
// them. It is built on first use, once per promotion, so that signalling
// many houses costs one pass over the declarations, not one per house.
type transportLinks map[masterLink]*declaration

// find returns the live transport listing l's master document; of
// several, the one with the lowest MRN, so that the answer does not
// depend on map order.
func (links *transportLinks) find(st *state, l masterLink) *declaration {
	if l.masterDoc == "" {
		return nil
	}
	if *links == nil {
		*links = transportLinks{}
		for _, d := range st.decls {
			if d.level != levelTransport || d.cancelled {
				continue
			}
			refs, _ := d.body["consignmentMasterLevel"].([]any)
			for _, ref := range refs {
				k := masterLink{d.api, d.clientID, stringAt(ref, "transportDocumentMasterLevel.documentNumber")}
				if have := (*links)[k]; k.masterDoc != "" && (have == nil || d.mrn < have.mrn) {
					(*links)[k] = d
				}
			}
		}
	}
	return (*links)[l]
}

// decodeBody reads a recorded declaration body, keeping numbers as
// written; a body that is not a JSON object gives nil.
func decodeBody(raw []byte) map[string]any {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var body map[string]any
	if dec.Decode(&body) != nil {
		return nil
	}
	return body
}

// appendSignal gives sig the next id and the issue date at, and appends
// it to the feed of key.
func (st *state) appendSignal(key feedKey, sig routingSignal, at time.Time) {
	rs := &st.routing
	rs.lastID++
	// Monotonic and unique across feeds, but meant to be opaque: clients
	// must page with it, never compare or compute with it.
	if rs.idPrefix == "" {
		rs.idPrefix = "rt-" + strconv.FormatUint(rand.Uint64()&0xffffff, 36) + "-"
	}
	sig.RoutingResult.ID = rs.idPrefix + strconv.FormatUint(rs.lastID, 10)
	sig.RoutingResult.DocumentIssueDate = at.UTC().Format(instantLayout)
	data, err := json.Marshal(sig)
	if err != nil {
		// Bodies were decoded from JSON, so they encode again.
		panic(fmt.Sprintf("simulator: encode routing signal: %v", err))
	}
	if rs.feeds == nil {
		rs.feeds = map[feedKey]*routingFeed{}
	}
	f := rs.feeds[key]
	if f == nil {
		f = &routingFeed{byID: map[string]int{}}
		rs.feeds[key] = f
	}
	f.byID[sig.RoutingResult.ID] = len(f.signals)
	f.signals = append(f.signals, data)
}

// AddRoutingSignals appends n synthetic TO_ENTRY signals to clientID's
// feed ("house-consignment" or "transport"), for tests that need many
// pages without declaring as many consignments. Signals of declarations
// already visible come first. Synthetic signals carry a fresh MRN and a
// made-up house document ("SIM-HWB-<id>") or means of transport
// ("SIM-<id>").
func (s *Server) AddRoutingSignals(clientID, feed string, n int) error {
	if _, ok := routingFeeds()[feed]; !ok {
		return fmt.Errorf("simulator: unknown routing feed %q (want %s or %s)", feed, RoutingFeedHouseConsignment, RoutingFeedTransport)
	}
	if n < 0 {
		return fmt.Errorf("simulator: cannot add %d routing signals", n)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	s.st.promoteRouting(now)
	key := feedKey{clientID, feed}
	for range n {
		seq := strconv.FormatUint(s.st.routing.lastID+1, 10)
		sig := routingSignal{EntrySummaryDeclarationMRN: s.st.newMRN(now), RoutingResult: routingResult{Routing: RoutingToEntry}}
		if feed == RoutingFeedTransport {
			sig.ActiveBorderTransportMeans = map[string]any{
				"identificationNumber": "SIM-" + seq, "typeOfIdentification": "30", "countryCode": "NO", "modeOfTransportCode": "3",
			}
		} else {
			sig.TransportDocumentHouseLevel = &houseDocument{ReferenceNumber: "SIM-HWB-" + seq, Type: "N750"}
		}
		s.st.appendSignal(key, sig, now)
	}
	return nil
}

// SetRoutingPageSize changes the most signals one routing feed answer
// holds; n <= 0 restores DefaultRoutingPageSize. Tests page through a
// feed with small pages.
func (s *Server) SetRoutingPageSize(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st.routing.pageSize = n
}
