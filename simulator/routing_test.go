package simulator_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/digitoll/digitoll-worker/simulator"
)

const routingScope = "toll:movement/entry"

// signal is the part of a routing signal the tests look at.
type signal struct {
	MRN   string `json:"entrySummaryDeclarationMRN"`
	House *struct {
		ReferenceNumber string `json:"referenceNumber"`
		Type            string `json:"type"`
	} `json:"transportDocumentHouseLevel"`
	Means  map[string]any `json:"activeBorderTransportMeans"`
	Result struct {
		ID                string `json:"id"`
		Routing           string `json:"routing"`
		DocumentIssueDate string `json:"documentIssueDate"`
	} `json:"routingResult"`
}

// routingToken grants clientKid the entry scope and returns a Toll token
// for road and entry.
func routingToken(t *testing.T, srv *simulator.Server) string {
	t.Helper()
	srv.GrantScope(clientKid, routingScope)
	return exchange(t, srv, maskinportenToken(t, srv, kidGrant(t, srv, scopeRoad+" "+routingScope)))
}

// readFeed reads one page of feed after marker, failing unless 200.
func readFeed(t *testing.T, srv *simulator.Server, token, feed, marker string) []signal {
	t.Helper()
	a := callFeed(t, srv, token, feed, marker)
	if a.status != http.StatusOK {
		t.Fatalf("GET routing %s after %q: %d %s", feed, marker, a.status, a.raw)
	}
	var page []signal
	if err := json.Unmarshal([]byte(a.raw), &page); err != nil || page == nil {
		t.Fatalf("routing %s: not a JSON array: %v %s", feed, err, a.raw)
	}
	return page
}

func callFeed(t *testing.T, srv *simulator.Server, token, feed, marker string) answer {
	t.Helper()
	u := srv.TollBaseURL() + "/movement/routing/v1/" + feed
	if marker != "" {
		u += "?marker=" + url.QueryEscape(marker)
	}
	return call(t, http.MethodGet, u, token, nil)
}

func TestRoutingSignalsOfAcceptedDeclarations(t *testing.T) {
	srv := start(t, simulator.Config{})
	tok := routingToken(t, srv)

	transportMRN := mustSucceed(t, roadResult(t, srv, http.MethodPost, "transport", "", tok, transportBody("AB12345", "MAWB-1")))
	mustSucceed(t, roadResult(t, srv, http.MethodPost, "master-consignment", "", tok, masterBody("MAWB-1")))
	houseMRN := mustSucceed(t, roadResult(t, srv, http.MethodPost, "house-consignment", "", tok, houseBody("HWB-1", "MAWB-1")))
	controlled := set(houseBody("HWB-2", "MAWB-OTHER"), "consignmentHouseLevel.goodsDescription", simulator.TriggerControl)
	controlledMRN := mustSucceed(t, roadResult(t, srv, http.MethodPost, "house-consignment", "", tok, controlled))
	// Neither a FAILURE nor a cancel routes anything.
	failed := set(houseBody("HWB-3", "MAWB-1"), "consignmentHouseLevel.goodsDescription", simulator.TriggerFailure)
	roadResult(t, srv, http.MethodPost, "house-consignment", "", tok, failed)
	mustSucceed(t, roadResult(t, srv, http.MethodDelete, "house-consignment", controlledMRN, tok, nil))

	transports := readFeed(t, srv, tok, simulator.RoutingFeedTransport, "")
	if len(transports) != 1 {
		t.Fatalf("transport feed: %d signals, want 1: %+v", len(transports), transports)
	}
	tr := transports[0]
	if tr.MRN != transportMRN || tr.Result.Routing != simulator.RoutingToEntry || tr.Means["identificationNumber"] != "AB12345" || tr.House != nil {
		t.Errorf("transport signal %+v, want MRN %s, TO_ENTRY, means AB12345, no house document", tr, transportMRN)
	}
	if _, err := time.Parse("2006-01-02T15:04:05Z", tr.Result.DocumentIssueDate); err != nil {
		t.Errorf("documentIssueDate %q: %v", tr.Result.DocumentIssueDate, err)
	}

	houses := readFeed(t, srv, tok, simulator.RoutingFeedHouseConsignment, "")
	if len(houses) != 2 {
		t.Fatalf("house feed: %d signals, want 2: %+v", len(houses), houses)
	}
	h := houses[0]
	if h.MRN != houseMRN || h.Result.Routing != simulator.RoutingToEntry || h.House == nil || h.House.ReferenceNumber != "HWB-1" || h.House.Type != "N750" {
		t.Errorf("house signal %+v, want MRN %s, TO_ENTRY, HWB-1 N750", h, houseMRN)
	}
	if h.Means["identificationNumber"] != "AB12345" {
		t.Errorf("house signal means %v, want the transport listing MAWB-1 (AB12345)", h.Means)
	}
	c := houses[1]
	if c.MRN != controlledMRN || c.Result.Routing != simulator.RoutingToControl || c.Means != nil {
		t.Errorf("controlled house signal %+v, want MRN %s, TO_CONTROL, no means (no transport lists its master)", c, controlledMRN)
	}
	ids := map[string]bool{tr.Result.ID: true, h.Result.ID: true, c.Result.ID: true}
	if len(ids) != 3 || ids[""] {
		t.Errorf("routing ids %v are not three distinct ids", ids)
	}
}

// A signal appears when SUCCESS becomes visible, not when the declaration
// is written, and a declaration that becomes visible first is signalled
// first.
func TestRoutingSignalWhenSuccessIsVisible(t *testing.T) {
	clk := &clock{}
	srv := start(t, simulator.Config{Now: clk.Now, ValidationDelay: time.Minute})
	tok := routingToken(t, srv)

	submit(t, http.MethodPost, road(srv, "house-consignment"), tok, houseBody("HWB-SLOW", "MAWB-1"))
	srv.SetValidationDelay(time.Second)
	submit(t, http.MethodPost, road(srv, "house-consignment"), tok, houseBody("HWB-FAST", "MAWB-1"))
	if got := readFeed(t, srv, tok, simulator.RoutingFeedHouseConsignment, ""); len(got) != 0 {
		t.Fatalf("signals before validation is done: %+v", got)
	}
	clk.Advance(2 * time.Second)
	first := readFeed(t, srv, tok, simulator.RoutingFeedHouseConsignment, "")
	if len(first) != 1 || first[0].House.ReferenceNumber != "HWB-FAST" {
		t.Fatalf("after 2s: %+v, want HWB-FAST only", first)
	}
	clk.Advance(time.Minute)
	rest := readFeed(t, srv, tok, simulator.RoutingFeedHouseConsignment, first[0].Result.ID)
	if len(rest) != 1 || rest[0].House.ReferenceNumber != "HWB-SLOW" {
		t.Fatalf("after a minute, after the first marker: %+v, want HWB-SLOW only", rest)
	}
}

func TestRoutingPagesAndMarkers(t *testing.T) {
	srv := start(t, simulator.Config{RoutingPageSize: 3})
	tok := routingToken(t, srv)
	if err := srv.AddRoutingSignals(clientKid, simulator.RoutingFeedHouseConsignment, 7); err != nil {
		t.Fatal(err)
	}

	var all []signal
	marker := ""
	sizes := []int{}
	for range 10 { // bounded: 7 signals in pages of 3 take 4 reads
		page := readFeed(t, srv, tok, simulator.RoutingFeedHouseConsignment, marker)
		sizes = append(sizes, len(page))
		if len(page) == 0 {
			break
		}
		all = append(all, page...)
		marker = page[len(page)-1].Result.ID
	}
	if want := []int{3, 3, 1, 0}; !slices.Equal(sizes, want) {
		t.Errorf("page sizes %v, want %v", sizes, want)
	}
	seen := map[string]bool{}
	for _, s := range all {
		if seen[s.Result.ID] || s.Result.Routing != simulator.RoutingToEntry || !simulator.ValidMRN(s.MRN) || s.House == nil {
			t.Errorf("signal %+v: repeated id or not a synthetic TO_ENTRY house signal", s)
		}
		seen[s.Result.ID] = true
	}

	srv.SetRoutingPageSize(0)
	if got := readFeed(t, srv, tok, simulator.RoutingFeedHouseConsignment, ""); len(got) != 7 {
		t.Errorf("default page size: %d signals, want all 7", len(got))
	}

	// A marker is only good on its own feed of its own client.
	srv.GrantScope(clientX5c, routingScope)
	other := x5cToken(t, srv, routingScope)
	for _, tc := range []struct {
		name, token, feed, marker string
	}{
		{"unknown marker", tok, simulator.RoutingFeedHouseConsignment, "no-such-marker"},
		{"marker of the other feed", tok, simulator.RoutingFeedTransport, marker},
		{"marker of another client", other, simulator.RoutingFeedHouseConsignment, marker},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if a := callFeed(t, srv, tc.token, tc.feed, tc.marker); a.status != http.StatusBadRequest {
				t.Errorf("got %d %s, want 400", a.status, a.raw)
			}
		})
	}
	if got := readFeed(t, srv, other, simulator.RoutingFeedHouseConsignment, ""); len(got) != 0 {
		t.Errorf("another client's feed holds %d signals, want none", len(got))
	}

	if err := srv.AddRoutingSignals(clientKid, "entry", 1); err == nil {
		t.Error("AddRoutingSignals accepted an unknown feed")
	}
	if err := srv.AddRoutingSignals(clientKid, simulator.RoutingFeedTransport, -1); err == nil {
		t.Error("AddRoutingSignals accepted a negative count")
	}
}

func TestRoutingNeedsTheEntryScope(t *testing.T) {
	srv := start(t, simulator.Config{})
	if a := callFeed(t, srv, "", simulator.RoutingFeedTransport, ""); a.status != http.StatusUnauthorized {
		t.Errorf("without a token: %d, want 401", a.status)
	}
	if a := callFeed(t, srv, roadToken(t, srv), simulator.RoutingFeedTransport, ""); a.status != http.StatusForbidden {
		t.Errorf("with a road token: %d, want 403", a.status)
	}
	readFeed(t, srv, routingToken(t, srv), simulator.RoutingFeedTransport, "")
	if got := srv.Stats().Requests(simulator.RouteRoutingTransport); got != 3 {
		t.Errorf("Stats counts %d transport feed requests, want 3", got)
	}
}
