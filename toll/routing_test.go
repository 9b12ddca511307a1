package toll

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"

	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/failure"
	"github.com/digitoll/digitoll-worker/internal/buftest"
)

func TestRoutingRequest(t *testing.T) {
	var mu sync.Mutex
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Method+" "+r.URL.Path+"?"+r.URL.RawQuery)
		mu.Unlock()
		io.WriteString(w, `[]`)
	}))
	t.Cleanup(srv.Close)

	tokens := &fakeTokens{}
	c := newClient(srv, tokens, &buftest.Buffer{})
	for _, tc := range []struct {
		feed   contract.Feed
		marker string
	}{
		{contract.FeedHouseConsignment, ""},
		{contract.FeedTransport, "a b/c&d"},
	} {
		if _, err := c.Routing(t.Context(), tc.feed, tc.marker); err != nil {
			t.Fatalf("Routing(%s, %q): %v", tc.feed, tc.marker, err)
		}
	}
	c.Foreign = true
	if _, err := c.Routing(t.Context(), contract.FeedTransport, "m1"); err != nil {
		t.Fatal(err)
	}

	want := []string{
		"GET /api/movement/routing/v1/house-consignment?",
		"GET /api/movement/routing/v1/transport?marker=a+b%2Fc%26d",
		"GET /api/movement/routing/v1/transport?marker=m1",
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(got, want) {
		t.Errorf("requests\n%q\nwant\n%q", got, want)
	}
	if wantScopes := []string{"toll:movement/entry", "toll:movement/entry", "toll:eu/movement/entry"}; !slices.Equal(tokens.scopes, wantScopes) {
		t.Errorf("scopes %q, want %q", tokens.scopes, wantScopes)
	}
}

func TestRoutingAnswers(t *testing.T) {
	const first = `{"entrySummaryDeclarationMRN":"25NO4TU2HUD59UCBT8",
  "transportDocumentHouseLevel":{"referenceNumber":"HWB-1","type":"N750"},
  "routingResult":{"id":"r-1","routing":"TO_CONTROL","documentIssueDate":"2025-01-15T08:00:00Z"}}`
	const second = `{"routingResult":{"id":"r-2","routing":"SOMETHING_NEW"},"extra":[1,2]}`
	tests := []struct {
		name   string
		status int
		body   string
		want   []RoutingSignal
		class  failure.Class
	}{
		{name: "empty", status: 200, body: `[]`, want: []RoutingSignal{}},
		{name: "null is empty", status: 200, body: `null`, want: []RoutingSignal{}},
		{name: "signals kept byte for byte", status: 200, body: "[" + first + ",\n " + second + "]", want: []RoutingSignal{
			{ID: "r-1", Routing: "TO_CONTROL", Raw: []byte(first)},
			{ID: "r-2", Routing: "SOMETHING_NEW", Raw: []byte(second)},
		}},
		{name: "numeric id", status: 200, body: `[{"routingResult":{"id":12345,"routing":"TO_ENTRY"}}]`, want: []RoutingSignal{
			{ID: "12345", Routing: "TO_ENTRY", Raw: []byte(`{"routingResult":{"id":12345,"routing":"TO_ENTRY"}}`)},
		}},
		{name: "no routing value", status: 200, body: `[{"routingResult":{"id":"r-9"}}]`, want: []RoutingSignal{
			{ID: "r-9", Raw: []byte(`{"routingResult":{"id":"r-9"}}`)},
		}},
		{name: "signal without id", status: 200, body: `[{"routingResult":{"id":"r-1"}},{"routingResult":{"routing":"TO_ENTRY"}}]`, class: failure.Permanent},
		{name: "null id", status: 200, body: `[{"routingResult":{"id":null,"routing":"TO_ENTRY"}}]`, class: failure.Permanent},
		{name: "signal not an object", status: 200, body: `["r-1"]`, class: failure.Permanent},
		{name: "object instead of array", status: 200, body: `{"signals":[]}`, class: failure.Transient},
		{name: "html", status: 200, body: `<html>gateway</html>`, class: failure.Transient},
		{name: "unknown marker", status: 400, body: `{"validationErrors":[{"field":"marker","error":"unknown marker"}]}`, class: failure.Permanent},
		{name: "unavailable", status: 503, body: `{}`, class: failure.Transient},
		{name: "scope not granted", status: 403, body: `{}`, class: failure.Config},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, srv := newFakeToll(t, reply{status: tc.status, body: tc.body})
			got, err := newClient(srv, &fakeTokens{}, &buftest.Buffer{}).Routing(t.Context(), contract.FeedHouseConsignment, "m")
			if tc.class != 0 {
				if err == nil || failure.Classify(err) != tc.class {
					t.Fatalf("got %v (%v), want a %v error", got, err, tc.class)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.EqualFunc(got, tc.want, func(a, b RoutingSignal) bool {
				return a.ID == b.ID && a.Routing == b.Routing && bytes.Equal(a.Raw, b.Raw)
			}) {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestRoutingUnknownFeed(t *testing.T) {
	f, srv := newFakeToll(t, reply{status: 200, body: `[]`})
	_, err := newClient(srv, &fakeTokens{}, &buftest.Buffer{}).Routing(t.Context(), contract.Feed("entry"), "")
	if failure.Classify(err) != failure.Permanent {
		t.Errorf("unknown feed: %v, want a permanent error", err)
	}
	if n := len(f.seen()); n != 0 {
		t.Errorf("%d requests sent for an unknown feed", n)
	}
}
