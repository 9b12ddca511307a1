package toll

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/failure"
)

// RoutingV1 is Toll's routing feed API (movement/routing/v1), a pull feed
// per level under the entry scope. It has no query API.
func RoutingV1() API {
	return API{
		Kind:      contract.KindEntry,
		Path:      "movement/routing/v1",
		ScopeBase: EntryScopeBase,
	}
}

// ErrUnknownMarker is wrapped by Routing's error when Toll answers 400 to
// a request with a marker: the only thing such a request carries besides
// the feed is the marker, so the feed does not know it (the feed was reset,
// as a restarted simulator's is). The error stays permanent: asking again
// with the same marker gives the same answer.
var ErrUnknownMarker = errors.New("toll: the routing feed does not know the marker")

// RoutingSignal is one signal of a routing feed. Raw is the signal as Toll
// sent it, to be passed on unchanged; ID and Routing are read from it for
// paging and for headers.
type RoutingSignal struct {
	// ID is routingResult.id, the marker to page on with. A JSON number
	// is kept as its literal text: the id is documented only as opaque.
	ID string
	// Routing is routingResult.routing: TO_CONTROL, TO_ENTRY or another
	// value Toll may add, empty if absent.
	Routing string
	// Raw is the signal's JSON, byte for byte.
	Raw json.RawMessage
}

// Routing reads the signals of feed after marker (from the start of the
// feed when marker is empty): at most one page, in feed order; none means
// caught up. The next page starts after the last signal's ID.
//
// An unreadable answer is transient (a proxy's error page looks like one).
// A signal without routingResult.id is a permanent protocol error: the
// feed cannot be paged past it, and asking again gives the same answer.
// Other failures are *HTTPError or *NetworkError, classified as for every
// call; a marker Toll does not know gives a permanent 400, which also wraps
// ErrUnknownMarker.
func (c *Client) Routing(ctx context.Context, feed contract.Feed, marker string) ([]RoutingSignal, error) {
	switch feed {
	case contract.FeedHouseConsignment, contract.FeedTransport:
	default:
		return nil, fmt.Errorf("toll: unknown routing feed %q: %w", feed, failure.ErrPermanent)
	}
	api := RoutingV1()
	path := api.Path + "/" + string(feed)
	if marker != "" {
		path += "?marker=" + url.QueryEscape(marker)
	}
	resp, err := c.do(ctx, api, http.MethodGet, path, nil)
	var he *HTTPError
	if marker != "" && errors.As(err, &he) && he.StatusCode == http.StatusBadRequest {
		return nil, fmt.Errorf("%w %q: %w", ErrUnknownMarker, marker, err)
	}
	if err != nil {
		return nil, err
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(resp.body, &raws); err != nil {
		return nil, fmt.Errorf("toll: GET %s: HTTP %d with a body that is not a JSON array (%s): %w", path, resp.status, oneLine(string(resp.body), maxErrorBody), failure.ErrTransient)
	}
	signals := make([]RoutingSignal, 0, len(raws))
	for i, raw := range raws {
		s, err := routingSignal(raw)
		if err != nil {
			return nil, fmt.Errorf("toll: GET %s: signal %d of %d: %w", path, i+1, len(raws), err)
		}
		signals = append(signals, s)
	}
	return signals, nil
}

// routingSignal reads the id and routing of one signal.
func routingSignal(raw json.RawMessage) (RoutingSignal, error) {
	var s struct {
		RoutingResult struct {
			ID      json.RawMessage `json:"id"`
			Routing json.RawMessage `json:"routing"`
		} `json:"routingResult"`
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return RoutingSignal{}, fmt.Errorf("not a JSON object (%s): %w", oneLine(string(raw), maxErrorBody), failure.ErrPermanent)
	}
	id := scalarText(s.RoutingResult.ID)
	if id == "" {
		return RoutingSignal{}, fmt.Errorf("no routingResult.id (%s): %w", oneLine(string(raw), maxErrorBody), failure.ErrPermanent)
	}
	return RoutingSignal{ID: id, Routing: scalarText(s.RoutingResult.Routing), Raw: raw}, nil
}

// scalarText is a JSON string's value or a number's literal text; any
// other JSON (null, objects, arrays) gives "".
func scalarText(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return n.String()
	}
	return ""
}
