package simulator

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Values that make a declaration fail Toll's asynchronous validation on
// purpose (see the package documentation).
const (
	// TriggerFailure in any string field of a declaration makes its
	// validation FAILURE.
	TriggerFailure = "SIM-FAILURE"
	// TriggerRejectGoods as a house consignment's goodsDescription makes
	// its validation FAILURE.
	TriggerRejectGoods = "REJECT"
)

// maxBodyBytes bounds declaration bodies.
const maxBodyBytes = 4 << 20

// movementAPI describes one of Toll's asynchronous declaration APIs. Road
// and air differ only in these values; the handlers are shared.
type movementAPI struct {
	name      string   // "road", "air": Declaration.API
	path      string   // write API, relative to the Toll base
	queryPath string   // query API, relative to the Toll base
	scopes    []string // a token with any of them may call both
}

func movementAPIs() []movementAPI {
	return []movementAPI{
		{
			name:      "road",
			path:      "movement/road/v2",
			queryPath: "movement/road/status/v2",
			scopes:    []string{"toll:movement/road/v2", "toll:eu/movement/road/v2"},
		},
		{
			name:      "air",
			path:      "movement/air/v1",
			queryPath: "movement/air/status/v1",
			scopes:    []string{"toll:movement/air", "toll:eu/movement/air"},
		},
	}
}

// Level names, as in the API paths.
const (
	levelTransport = "transport"
	levelMaster    = "master-consignment"
	levelHouse     = "house-consignment"
)

// Where declarations name their own and their parents' documents.
const (
	pathTransportID      = "activeBorderTransportMeans.identificationNumber"
	pathMasterDocNumber  = "consignmentMasterLevel.transportDocumentMasterLevel.documentNumber"
	pathMasterDocType    = "consignmentMasterLevel.transportDocumentMasterLevel.type"
	pathHouseDocNumber   = "consignmentHouseLevel.transportDocumentHouseLevel.documentNumber"
	pathHouseDocType     = "consignmentHouseLevel.transportDocumentHouseLevel.type"
	pathHouseMasterDoc   = "consignmentHouseLevel.consignmentMasterLevel.transportDocumentMasterLevel.documentNumber"
	pathGoodsDescription = "consignmentHouseLevel.goodsDescription"
)

// level describes one declaration level. Required fields follow the
// example bodies of DIGITOLL.md; the real validator requires more.
type level struct {
	name     string
	docPath  string // the document number that identifies a declaration
	docLabel string // how FAILURE descriptions name that number
	required []rule
	tree     bool // has status-with-descendants
}

func levels() []level {
	issued := rule{"documentIssueDate", kindInstant}
	return []level{
		{
			name: levelTransport, docPath: pathTransportID, docLabel: "Identification number", tree: true,
			required: []rule{
				issued,
				{"activeBorderTransportMeans", kindObject},
				{pathTransportID, kindString},
				{"carrier", kindObject},
				{"customsOfficeOfFirstEntry.referenceNumber", kindString},
				{"estimatedDateAndTimeOfArrival", kindInstant},
			},
		},
		{
			name: levelMaster, docPath: pathMasterDocNumber, docLabel: "Transport document number", tree: true,
			required: []rule{
				issued,
				{pathMasterDocNumber, kindString},
				{pathMasterDocType, kindString},
			},
		},
		{
			name: levelHouse, docPath: pathHouseDocNumber, docLabel: "Transport document number",
			required: []rule{
				issued,
				{pathHouseDocNumber, kindString},
				{pathHouseDocType, kindString},
				{pathHouseMasterDoc, kindString},
				{pathGoodsDescription, kindString},
				{"consignmentHouseLevel.consignor", kindObject},
				{"consignmentHouseLevel.consignee", kindObject},
			},
		},
	}
}

// declaration is a declaration Toll has accepted, under its MRN.
type declaration struct {
	api, level, mrn, docNumber, clientID string
	body                                 map[string]any
	cancelled                            bool
	entered                              bool
	entryOffice                          string
	entryTime                            time.Time
}

// docKey identifies a document number in use.
type docKey struct{ api, level, number string }

// request is one accepted write and the outcome its validation will
// report. It is not changed after it is stored.
type request struct {
	id, api, level, clientID string
	readyAt                  time.Time
	mrn                      string
	failures                 []validationError
}

// validationError is an entry of a FAILURE's validationErrorList.
type validationError struct {
	Description string  `json:"description"`
	Pointer     pointer `json:"pointer"`
}

type pointer struct {
	MessageElementPath string `json:"messageElementPath"`
}

// registerMovement registers the write and query endpoints of api.
func (s *Server) registerMovement(mux *http.ServeMux, api movementAPI) {
	base := "/toll/api/" + api.path
	query := "/toll/api/" + api.queryPath
	s.handle(mux, "GET "+base+"/test-auth", s.tollAPI(api.scopes, func(w http.ResponseWriter, _ *http.Request, _ caller) {
		w.WriteHeader(http.StatusOK)
	}))
	for _, lvl := range levels() {
		write := s.tollAPI(api.scopes, func(w http.ResponseWriter, r *http.Request, c caller) {
			s.serveWrite(w, r, c, api, lvl)
		})
		s.handle(mux, "POST "+base+"/"+lvl.name, write)
		s.handle(mux, "PUT "+base+"/"+lvl.name+"/{mrn}", write)
		s.handle(mux, "DELETE "+base+"/"+lvl.name+"/{mrn}", write)

		// <level>/validation-status/{requestId} and
		// <level>/{mrn}/status-with-descendants both match
		// <level>/validation-status/status-with-descendants, so ServeMux
		// refuses to register both; one pattern dispatches to the two
		// routes, which still count and log under their own names.
		status := s.route("GET "+query+"/"+lvl.name+"/validation-status/{requestId}",
			s.tollAPI(api.scopes, func(w http.ResponseWriter, r *http.Request, c caller) {
				s.serveValidationStatus(w, r, c, api, lvl)
			}))
		var tree http.HandlerFunc
		if lvl.tree {
			tree = s.route("GET "+query+"/"+lvl.name+"/{mrn}/status-with-descendants",
				s.tollAPI(api.scopes, func(w http.ResponseWriter, r *http.Request, c caller) {
					s.serveTree(w, r, c, api, lvl)
				}))
		}
		mux.HandleFunc("GET "+query+"/"+lvl.name+"/{first}/{second}", func(w http.ResponseWriter, r *http.Request) {
			first, second := r.PathValue("first"), r.PathValue("second")
			switch {
			case first == "validation-status":
				r.SetPathValue("requestId", second)
				status(w, r)
			case tree != nil && second == "status-with-descendants":
				r.SetPathValue("mrn", first)
				tree(w, r)
			default:
				http.NotFound(w, r)
			}
		})
	}
	s.handle(mux, "GET "+query+"/entry/status/{mrn}", s.tollAPI(api.scopes, func(w http.ResponseWriter, r *http.Request, c caller) {
		s.serveEntryStatus(w, r, c, api)
	}))
}

// badRequest is a write refused synchronously.
type badRequest struct {
	status int          // 400, 413 or 415
	errs   []fieldError // for 400
	msg    string       // for 413 and 415
}

func (b *badRequest) write(w http.ResponseWriter) {
	if b.status == http.StatusBadRequest {
		writeJSON(w, http.StatusBadRequest, map[string]any{"validationErrors": b.errs})
		return
	}
	writeProblem(w, b.status, b.msg)
}

// serveWrite handles create (POST), update (PUT) and cancel (DELETE).
func (s *Server) serveWrite(w http.ResponseWriter, r *http.Request, c caller, api movementAPI, lvl level) {
	wr := write{api: api, lvl: lvl, method: r.Method, mrn: r.PathValue("mrn"), clientID: c.clientID}
	raw, body, bad := readDeclaration(w, r, r.Method == http.MethodDelete)
	wr.raw, wr.body = raw, body
	if bad == nil {
		var errs []fieldError
		if r.Method != http.MethodPost && !ValidMRN(wr.mrn) {
			errs = append(errs, fieldError{"mrn", "invalid MRN (18 characters: 2 digits, NO, 14 uppercase letters or digits)"})
		}
		switch {
		case r.Method == http.MethodDelete && body != nil:
			// The cancel body is optional; its date, if any, must be well formed.
			walkInstants(body, "", func(e fieldError) { errs = append(errs, e) })
		case r.Method != http.MethodDelete:
			errs = append(errs, validateDeclaration(body, lvl.required)...)
		}
		if len(errs) > 0 {
			bad = &badRequest{status: http.StatusBadRequest, errs: errs}
		}
	}
	if bad != nil {
		setRequestNote(r, "refused with "+http.StatusText(bad.status))
		s.recordInvalid(wr)
		bad.write(w)
		return
	}
	id := s.submit(wr)
	writeJSON(w, http.StatusAccepted, map[string]string{"requestId": id})
}

// readDeclaration reads a write's body. A cancel may come without one
// (body nil).
func readDeclaration(w http.ResponseWriter, r *http.Request, optional bool) ([]byte, map[string]any, *badRequest) {
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		if _, tooLarge := errors.AsType[*http.MaxBytesError](err); tooLarge {
			return nil, nil, &badRequest{status: http.StatusRequestEntityTooLarge, msg: "request body too large"}
		}
		return nil, nil, &badRequest{status: http.StatusBadRequest, errs: []fieldError{{"", "could not read request body"}}}
	}
	if optional && len(bytes.TrimSpace(raw)) == 0 {
		return raw, nil, nil
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return raw, nil, &badRequest{status: http.StatusUnsupportedMediaType, msg: "Content-Type must be application/json"}
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil || dec.Decode(new(any)) != io.EOF {
		return raw, nil, &badRequest{status: http.StatusBadRequest, errs: []fieldError{{"", "malformed JSON"}}}
	}
	body, ok := v.(map[string]any)
	if !ok {
		return raw, nil, &badRequest{status: http.StatusBadRequest, errs: []fieldError{{"", "request body must be a JSON object"}}}
	}
	return raw, body, nil
}

// write is a declaration request that passed synchronous validation (or,
// for recordInvalid, did not).
type write struct {
	api      movementAPI
	lvl      level
	method   string
	mrn      string // from the path, for PUT and DELETE
	clientID string
	raw      []byte
	body     map[string]any // nil for a cancel without body
}

// recordInvalid records a write refused with 400, 413 or 415.
func (s *Server) recordInvalid(wr write) {
	s.mu.Lock()
	defer s.mu.Unlock()
	doc := stringAt(wr.body, wr.lvl.docPath)
	if wr.method == http.MethodDelete {
		if d := s.st.decls[wr.mrn]; d != nil {
			doc = d.docNumber
		}
	}
	s.st.record(Declaration{
		API: wr.api.name, Level: wr.lvl.name, Method: wr.method, DocumentNumber: doc,
		MRN: wr.mrn, Status: StatusInvalid, ClientID: wr.clientID, Body: slices.Clone(wr.raw), At: s.now(),
	})
}

// ForgetDeclarations forgets every declaration and write so far: their
// bodies, validation outcomes and MRNs, the document numbers in use, and
// what Stats lists of them (Declarations, Submissions). The counters of
// requests per route (Stats.Requests), the clients and their tokens stay.
// A long benchmark calls it between its rounds, once every result is in,
// so that the simulator's memory does not grow with every declaration
// sent; a status query of a forgotten write then answers 404.
func (s *Server) ForgetDeclarations() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st.requests = map[string]*request{}
	s.st.decls = map[string]*declaration{}
	s.st.docs = map[docKey]string{}
	s.st.submissions = map[string]int{}
	s.st.declarations = nil
}

func (st *state) record(d Declaration) {
	st.declarations = append(st.declarations, d)
	if d.DocumentNumber != "" {
		st.submissions[d.DocumentNumber]++
	}
}

// submit carries out a valid write: it decides at once what validation
// will report, applies it, and returns the requestId.
func (s *Server) submit(wr write) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	req := &request{
		id: uuid.NewString(), api: wr.api.name, level: wr.lvl.name, clientID: wr.clientID,
		readyAt: now.Add(s.st.validationDelay), mrn: wr.mrn,
	}
	doc, created, failure := s.st.apply(wr, now)
	if failure != nil {
		req.failures = []validationError{*failure}
	}
	if created != "" {
		req.mrn = created
	}
	s.st.requests[req.id] = req
	status := StatusSuccess
	if failure != nil {
		status = StatusFailure
	}
	s.st.record(Declaration{
		API: wr.api.name, Level: wr.lvl.name, Method: wr.method, DocumentNumber: doc, RequestID: req.id,
		MRN: req.mrn, Status: status, ClientID: wr.clientID, Body: slices.Clone(wr.raw), At: now,
	})
	return req.id
}

// apply changes the declarations as the write asks, unless validation
// fails. It returns the write's document number, the MRN a create was
// given and the failure, if any.
func (st *state) apply(wr write, now time.Time) (doc, created string, failure *validationError) {
	trigger := simulatedFailure(wr.body, wr.lvl)
	switch wr.method {
	case http.MethodPost:
		doc := stringAt(wr.body, wr.lvl.docPath)
		if trigger != nil {
			return doc, "", trigger
		}
		if f := st.docInUse(wr, doc, ""); f != nil {
			return doc, "", f
		}
		mrn := st.newMRN(now)
		st.decls[mrn] = &declaration{
			api: wr.api.name, level: wr.lvl.name, mrn: mrn, docNumber: doc, clientID: wr.clientID, body: wr.body,
		}
		st.docs[docKey{wr.api.name, wr.lvl.name, doc}] = mrn
		return doc, mrn, nil

	case http.MethodPut:
		doc := stringAt(wr.body, wr.lvl.docPath)
		d, f := st.lookup(wr)
		if f == nil {
			f = trigger
		}
		if f == nil {
			f = st.docInUse(wr, doc, d.mrn)
		}
		if f != nil {
			return doc, "", f
		}
		if doc != d.docNumber {
			delete(st.docs, docKey{d.api, d.level, d.docNumber})
			st.docs[docKey{d.api, d.level, doc}] = d.mrn
			d.docNumber = doc
		}
		d.body = wr.body
		return doc, "", nil

	default: // DELETE
		d, f := st.lookup(wr)
		doc := ""
		if d != nil {
			doc = d.docNumber
		}
		if f == nil {
			f = trigger
		}
		if f != nil {
			return doc, "", f
		}
		d.cancelled = true
		if st.docs[docKey{d.api, d.level, d.docNumber}] == d.mrn {
			delete(st.docs, docKey{d.api, d.level, d.docNumber})
		}
		return doc, "", nil
	}
}

// lookup finds the live declaration an update or cancel names. A
// declaration of another level, API or client is unknown to the caller.
func (st *state) lookup(wr write) (*declaration, *validationError) {
	d := st.decls[wr.mrn]
	if d == nil || d.api != wr.api.name || d.level != wr.lvl.name || d.clientID != wr.clientID {
		return nil, &validationError{"MRN " + wr.mrn + " is not a known " + wr.lvl.name + " declaration", pointer{"mrn"}}
	}
	if d.cancelled {
		return d, &validationError{"Declaration " + wr.mrn + " is cancelled", pointer{"mrn"}}
	}
	return d, nil
}

// docInUse fails a write whose document number a live declaration other
// than self already uses.
func (st *state) docInUse(wr write, doc, self string) *validationError {
	if mrn, used := st.docs[docKey{wr.api.name, wr.lvl.name, doc}]; used && mrn != self {
		return &validationError{wr.lvl.docLabel + " " + doc + " is already in use", pointer{wr.lvl.docPath}}
	}
	return nil
}

// simulatedFailure finds the values that fail validation on purpose.
func simulatedFailure(body map[string]any, lvl level) *validationError {
	if body == nil {
		return nil
	}
	if lvl.name == levelHouse && stringAt(body, pathGoodsDescription) == TriggerRejectGoods {
		return &validationError{"Goods description " + TriggerRejectGoods + " is not accepted (simulator trigger)", pointer{pathGoodsDescription}}
	}
	if p, ok := findString(body, "", TriggerFailure); ok {
		return &validationError{"Value " + TriggerFailure + " at " + p + " is not accepted (simulator trigger)", pointer{p}}
	}
	return nil
}

// mrnAttempts bounds the search for an unused MRN; with 70 random bits
// per MRN a second attempt is already improbable.
const mrnAttempts = 8

// newMRN mints an unused MRN: two digits of the year, NO, 14 uppercase
// letters or digits.
func (st *state) newMRN(now time.Time) string {
	for range mrnAttempts {
		// rand.Text is base32: uppercase letters and digits 2-7.
		mrn := now.UTC().Format("06") + "NO" + rand.Text()[:14]
		if _, taken := st.decls[mrn]; !taken {
			return mrn
		}
	}
	panic("simulator: no unused MRN found; the random source is broken")
}

// ValidMRN reports whether s has the form of an MRN: 18 characters, two
// digits of a year, NO, 14 uppercase letters or digits.
func ValidMRN(s string) bool {
	if len(s) != 18 || s[2:4] != "NO" {
		return false
	}
	for i := range len(s) {
		c := s[i]
		switch {
		case i < 2:
			if c < '0' || c > '9' {
				return false
			}
		case i >= 4:
			if (c < '0' || c > '9') && (c < 'A' || c > 'Z') {
				return false
			}
		}
	}
	return true
}

// successStatus and failureStatus are validation-status answers.
type successStatus struct {
	Status                            string `json:"status"`
	RequestID                         string `json:"requestId"`
	NotificationDate                  string `json:"notificationDate"`
	MRN                               string `json:"mrn"`
	IncompleteDocumentationReasonList []any  `json:"incompleteDocumentationReasonList"`
}

type failureStatus struct {
	Status              string            `json:"status"`
	RequestID           string            `json:"requestId"`
	NotificationDate    string            `json:"notificationDate"`
	ValidationErrorList []validationError `json:"validationErrorList"`
}

// serveValidationStatus answers 404 until validation is done, then
// SUCCESS (200) or FAILURE (202). Requests of another level, API or
// client are unknown.
func (s *Server) serveValidationStatus(w http.ResponseWriter, r *http.Request, c caller, api movementAPI, lvl level) {
	id := r.PathValue("requestId")
	s.mu.Lock()
	req := s.st.requests[id]
	now := s.now()
	s.mu.Unlock()
	if req == nil || req.api != api.name || req.level != lvl.name || req.clientID != c.clientID {
		writeProblem(w, http.StatusNotFound, "unknown requestId")
		return
	}
	if now.Before(req.readyAt) {
		writeProblem(w, http.StatusNotFound, "validation not finished")
		return
	}
	date := req.readyAt.UTC().Format(instantLayout)
	if len(req.failures) > 0 {
		writeJSON(w, http.StatusAccepted, failureStatus{
			Status: StatusFailure, RequestID: req.id, NotificationDate: date, ValidationErrorList: req.failures,
		})
		return
	}
	writeJSON(w, http.StatusOK, successStatus{
		Status: StatusSuccess, RequestID: req.id, NotificationDate: date, MRN: req.mrn,
		IncompleteDocumentationReasonList: []any{},
	})
}

// Statuses of declarations in status-with-descendants.
const (
	treeAccepted    = "ACCEPTED"
	treeCancelled   = "CANCELLED"
	treeNotReceived = "NOT_RECEIVED"
)

// transportTree, masterTree and houseTree are the simulator's
// status-with-descendants answers. The real shape is richer; these carry
// the links and weights.
type transportTree struct {
	MRN                  string       `json:"mrn"`
	Status               string       `json:"status"`
	IdentificationNumber string       `json:"identificationNumber"`
	MasterConsignments   []masterTree `json:"masterConsignments"`
}

type masterTree struct {
	MRN               string      `json:"mrn,omitempty"`
	DocumentNumber    string      `json:"documentNumber"`
	Type              string      `json:"type,omitempty"`
	Status            string      `json:"status"`
	GrossMass         any         `json:"grossMass,omitempty"`
	HouseConsignments []houseTree `json:"houseConsignments"`
}

type houseTree struct {
	MRN            string `json:"mrn"`
	DocumentNumber string `json:"documentNumber"`
	Type           string `json:"type,omitempty"`
	Status         string `json:"status"`
	GrossMass      any    `json:"grossMass,omitempty"`
}

// serveTree answers status-with-descendants for a transport or master
// the caller declared. Descendants link by document number and may have
// been declared by anyone.
func (s *Server) serveTree(w http.ResponseWriter, r *http.Request, c caller, api movementAPI, lvl level) {
	mrn := r.PathValue("mrn")
	if !ValidMRN(mrn) {
		writeJSON(w, http.StatusBadRequest, map[string]any{"validationErrors": []fieldError{{"mrn", "invalid MRN"}}})
		return
	}
	s.mu.Lock()
	ans, ok := s.st.tree(mrn, c, api, lvl)
	s.mu.Unlock()
	if !ok {
		writeProblem(w, http.StatusNotFound, "unknown MRN")
		return
	}
	writeJSON(w, http.StatusOK, ans)
}

// tree builds the status-with-descendants answer for mrn; false if the
// caller declared no such transport or master.
func (st *state) tree(mrn string, c caller, api movementAPI, lvl level) (any, bool) {
	d := st.decls[mrn]
	if d == nil || d.api != api.name || d.level != lvl.name || d.clientID != c.clientID {
		return nil, false
	}
	if lvl.name == levelMaster {
		return st.masterNode(d), true
	}
	t := transportTree{MRN: d.mrn, Status: declStatus(d), IdentificationNumber: d.docNumber, MasterConsignments: []masterTree{}}
	refs, _ := d.body["consignmentMasterLevel"].([]any)
	for _, ref := range refs {
		doc := stringAt(ref, "transportDocumentMasterLevel.documentNumber")
		if doc == "" {
			continue
		}
		if m := st.decls[st.docs[docKey{api.name, levelMaster, doc}]]; m != nil {
			t.MasterConsignments = append(t.MasterConsignments, st.masterNode(m))
			continue
		}
		t.MasterConsignments = append(t.MasterConsignments, masterTree{
			DocumentNumber: doc, Type: stringAt(ref, "transportDocumentMasterLevel.type"),
			Status: treeNotReceived, HouseConsignments: []houseTree{},
		})
	}
	return t, true
}

func declStatus(d *declaration) string {
	if d.cancelled {
		return treeCancelled
	}
	return treeAccepted
}

// masterNode builds a master's subtree: the live houses that name its
// document number.
func (st *state) masterNode(m *declaration) masterTree {
	n := masterTree{
		MRN: m.mrn, DocumentNumber: m.docNumber, Type: stringAt(m.body, pathMasterDocType),
		Status: declStatus(m), GrossMass: valueAt(m.body, "consignmentMasterLevel.grossMass"),
		HouseConsignments: []houseTree{},
	}
	for _, h := range st.decls {
		if h.api != m.api || h.level != levelHouse || h.cancelled || stringAt(h.body, pathHouseMasterDoc) != m.docNumber {
			continue
		}
		n.HouseConsignments = append(n.HouseConsignments, houseTree{
			MRN: h.mrn, DocumentNumber: h.docNumber, Type: stringAt(h.body, pathHouseDocType),
			Status: treeAccepted, GrossMass: valueAt(h.body, "consignmentHouseLevel.totalGrossMass"),
		})
	}
	slices.SortFunc(n.HouseConsignments, func(a, b houseTree) int {
		return strings.Compare(a.DocumentNumber+a.MRN, b.DocumentNumber+b.MRN)
	})
	return n
}

// entryStatus is the answer of entry/status.
type entryStatus struct {
	ValidEntry           bool   `json:"validEntry"`
	CustomsOfficeOfEntry string `json:"customsOfficeOfEntry,omitempty"`
	TimeOfEntry          string `json:"timeOfEntry,omitempty"`
	MRN                  string `json:"mrn"`
}

// serveEntryStatus says whether the goods of a declaration the caller
// made have entered Norway; false until MarkEntered.
func (s *Server) serveEntryStatus(w http.ResponseWriter, r *http.Request, c caller, api movementAPI) {
	mrn := r.PathValue("mrn")
	if !ValidMRN(mrn) {
		writeJSON(w, http.StatusBadRequest, map[string]any{"validationErrors": []fieldError{{"mrn", "invalid MRN"}}})
		return
	}
	s.mu.Lock()
	d := s.st.decls[mrn]
	known := d != nil && d.api == api.name && d.clientID == c.clientID
	ans := entryStatus{MRN: mrn}
	if known && d.entered {
		ans.ValidEntry = true
		ans.CustomsOfficeOfEntry = d.entryOffice
		ans.TimeOfEntry = d.entryTime.UTC().Format(instantLayout)
	}
	s.mu.Unlock()
	if !known {
		writeProblem(w, http.StatusNotFound, "unknown MRN")
		return
	}
	writeJSON(w, http.StatusOK, ans)
}

// MarkEntered records that the goods of the declaration with mrn entered
// at customsOffice (e.g. "NO372001") now, so that entry/status answers
// validEntry true. It reports whether the MRN is known.
func (s *Server) MarkEntered(mrn, customsOffice string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.st.decls[mrn]
	if d == nil {
		return false
	}
	d.entered, d.entryOffice, d.entryTime = true, customsOffice, s.now()
	return true
}
