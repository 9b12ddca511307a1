package toll

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/failure"
)

// ErrNotFound is wrapped, with failure.ErrPermanent, when a query API
// answers 404: Toll knows no declaration of this integration under the
// MRN (or not at that level).
var ErrNotFound = errors.New("toll: not found")

// StatusTree is a status-with-descendants answer: a transport with its
// master consignments and their house consignments, or a master with its
// houses.
type StatusTree struct {
	// Root is the declaration asked about. It is the zero Consignment
	// (see Recognised) when the answer has a shape this client does not
	// read; Raw still holds it.
	Root Consignment
	// Raw is Toll's answer as it came.
	Raw json.RawMessage
}

// Recognised reports whether Root was read from the answer; if not, only
// Raw tells what Toll said.
func (t StatusTree) Recognised() bool { return t.Root.Level != "" }

// Consignment is one declaration in a status-with-descendants answer. The
// public sources describe the answer only as "weights and the masters and
// houses received under it", so the fields read are those the bundled
// simulator sends; a field Toll names otherwise stays empty.
type Consignment struct {
	Level contract.Level
	// MRN is empty for a master the transport names but Toll has not
	// received.
	MRN string
	// Status is Toll's status of the declaration as written, e.g.
	// ACCEPTED, CANCELLED or NOT_RECEIVED.
	Status string
	// DocumentNumber is the transport document number of a consignment,
	// or the identification number of a transport's means.
	DocumentNumber string
	// DocumentType is e.g. N741 (master) or N750 (house).
	DocumentType string
	// GrossMass is the gross mass as Toll wrote it (kg), or "".
	GrossMass string
	// Children are the masters of a transport or the houses of a master.
	Children []Consignment
}

// treeNode is the wire form of a status-with-descendants node. Scalars
// are raw so that a value of an unexpected type does not lose the rest.
type treeNode struct {
	MRN                  json.RawMessage `json:"mrn"`
	Status               json.RawMessage `json:"status"`
	IdentificationNumber json.RawMessage `json:"identificationNumber"`
	DocumentNumber       json.RawMessage `json:"documentNumber"`
	Type                 json.RawMessage `json:"type"`
	GrossMass            json.RawMessage `json:"grossMass"`
	TotalGrossMass       json.RawMessage `json:"totalGrossMass"`
	MasterConsignments   []treeNode      `json:"masterConsignments"`
	HouseConsignments    []treeNode      `json:"houseConsignments"`
}

func (n treeNode) consignment(level contract.Level) Consignment {
	c := Consignment{
		Level:          level,
		MRN:            readable(n.MRN),
		Status:         readable(n.Status),
		DocumentNumber: readable(n.DocumentNumber),
		DocumentType:   readable(n.Type),
		GrossMass:      readable(n.GrossMass),
	}
	if c.DocumentNumber == "" {
		c.DocumentNumber = readable(n.IdentificationNumber)
	}
	if c.GrossMass == "" {
		c.GrossMass = readable(n.TotalGrossMass)
	}
	children, childLevel := n.HouseConsignments, contract.LevelHouseConsignment
	if level == contract.LevelTransport {
		children, childLevel = n.MasterConsignments, contract.LevelMasterConsignment
	}
	for _, ch := range children {
		c.Children = append(c.Children, ch.consignment(childLevel))
	}
	return c
}

// StatusWithDescendants reads what Toll has received under a transport
// or master consignment (level) of api: its masters and houses, their
// MRNs, statuses and weights. A 404 wraps ErrNotFound.
func (c *Client) StatusWithDescendants(ctx context.Context, api API, level contract.Level, mrn string) (StatusTree, error) {
	if level != contract.LevelTransport && level != contract.LevelMasterConsignment {
		return StatusTree{}, fmt.Errorf("toll: status-with-descendants of level %q: only transport and master-consignment have descendants: %w", level, failure.ErrPermanent)
	}
	if mrn == "" {
		return StatusTree{}, fmt.Errorf("toll: status-with-descendants needs an MRN: %w", failure.ErrPermanent)
	}
	path := api.QueryPath + "/" + url.PathEscape(string(level)) + "/" + url.PathEscape(mrn) + "/status-with-descendants"
	body, err := c.query(ctx, api, path, mrn)
	if err != nil {
		return StatusTree{}, err
	}
	tree := StatusTree{Raw: body}
	var root treeNode
	if json.Unmarshal(body, &root) == nil {
		if n := root.consignment(level); n.MRN != "" || n.Status != "" || n.DocumentNumber != "" || len(n.Children) > 0 {
			tree.Root = n
		}
	}
	return tree, nil
}

// EntryStatus says whether the goods of a declaration have entered Norway.
type EntryStatus struct {
	ValidEntry bool
	// CustomsOfficeOfEntry is e.g. "NO372001"; empty before entry.
	CustomsOfficeOfEntry string
	// TimeOfEntry is kept as Toll wrote it; empty before entry.
	TimeOfEntry string
	MRN         string
}

// EntryStatus reads entry/status of a declaration from api's query API
// (entry has no query API of its own). A 404 wraps ErrNotFound.
func (c *Client) EntryStatus(ctx context.Context, api API, mrn string) (EntryStatus, error) {
	if mrn == "" {
		return EntryStatus{}, fmt.Errorf("toll: entry status needs an MRN: %w", failure.ErrPermanent)
	}
	path := api.QueryPath + "/entry/status/" + url.PathEscape(mrn)
	body, err := c.query(ctx, api, path, mrn)
	if err != nil {
		return EntryStatus{}, err
	}
	var answer struct {
		ValidEntry           bool            `json:"validEntry"`
		CustomsOfficeOfEntry json.RawMessage `json:"customsOfficeOfEntry"`
		TimeOfEntry          json.RawMessage `json:"timeOfEntry"`
		MRN                  string          `json:"mrn"`
	}
	if err := json.Unmarshal(body, &answer); err != nil {
		return EntryStatus{}, fmt.Errorf("toll: GET %s: unreadable answer (%s): %w", path, oneLine(string(body), maxErrorBody), failure.ErrTransient)
	}
	st := EntryStatus{
		ValidEntry:           answer.ValidEntry,
		CustomsOfficeOfEntry: readable(answer.CustomsOfficeOfEntry),
		TimeOfEntry:          readable(answer.TimeOfEntry),
		MRN:                  answer.MRN,
	}
	if st.MRN == "" {
		st.MRN = mrn
	}
	return st, nil
}

// query GETs path from a query API; 404 becomes ErrNotFound.
func (c *Client) query(ctx context.Context, api API, path, mrn string) ([]byte, error) {
	if api.QueryPath == "" {
		return nil, fmt.Errorf("toll: %s has no query API: %w", api.Path, failure.ErrPermanent)
	}
	resp, err := c.do(ctx, api, http.MethodGet, path, nil, http.StatusNotFound)
	if err != nil {
		return nil, err
	}
	if resp.status == http.StatusNotFound {
		return nil, fmt.Errorf("toll: GET %s: MRN %s: %w: %w", path, mrn, ErrNotFound, failure.ErrPermanent)
	}
	return resp.body, nil
}
