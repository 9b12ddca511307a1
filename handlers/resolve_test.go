package handlers

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/simulator"
	"github.com/digitoll/digitoll-worker/toll"
)

// acceptedPost is the simulator's accepted create of doc, or fails.
func acceptedPost(t *testing.T, sim *simulator.Server, doc string) (mrn string, posts int) {
	t.Helper()
	for _, d := range sim.Stats().Declarations() {
		if d.Method != http.MethodPost || d.DocumentNumber != doc {
			continue
		}
		posts++
		if d.Status == simulator.StatusSuccess {
			if mrn != "" {
				t.Fatalf("%s accepted twice", doc)
			}
			mrn = d.MRN
		}
	}
	if mrn == "" {
		t.Fatalf("the simulator accepted no create of %s", doc)
	}
	return mrn, posts
}

// houseUnder is a house declaration with document number doc under the
// master with document number master.
func houseUnder(doc, master string) json.RawMessage {
	return json.RawMessage(strings.Replace(string(declaration(contract.LevelHouseConsignment, doc)), "MAWB-0001", master, 1))
}

// With Toll's answer to a create lost after Toll accepted it, a master
// is found among its transport's descendants and a house among its
// master's: the result is accepted with the MRN Toll gave, and the
// declaration is not sent again.
func TestLostCreateAnswerIsFoundUnderTheParent(t *testing.T) {
	env := startSim(t)
	h := env.handler(toll.RoadV2())
	transport, err := h.Handle(t.Context(), request("t", contract.OpCreate, contract.LevelTransport, "", declaration(contract.LevelTransport, "TR-1")))
	if err != nil || transport.Status != contract.StatusAccepted {
		t.Fatalf("transport: %+v %v", transport, err)
	}
	// The transport names MAWB-TR-1.
	env.sim.SetFaults(simulator.Faults{LoseResponses: 1})
	req := request("m", contract.OpCreate, contract.LevelMasterConsignment, "", declaration(contract.LevelMasterConsignment, "MAWB-TR-1"))
	req.AfterMRN = transport.MRN
	master, err := h.Handle(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	mrn, posts := acceptedPost(t, env.sim, "MAWB-TR-1")
	if master.Status != contract.StatusAccepted || master.MRN != mrn || posts != 1 {
		t.Fatalf("master: %+v after %d POSTs, want accepted with Toll's MRN %s after 1 POST", master, posts, mrn)
	}
	if !strings.Contains(master.Note, "answer to an attempt was lost") {
		t.Errorf("master note %q does not say how the MRN was found", master.Note)
	}

	env.sim.SetFaults(simulator.Faults{LoseResponses: 1})
	req = request("h", contract.OpCreate, contract.LevelHouseConsignment, "", houseUnder("HWB-TR-1", "MAWB-TR-1"))
	req.AfterMRN = master.MRN
	house, err := h.Handle(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	mrn, posts = acceptedPost(t, env.sim, "HWB-TR-1")
	if house.Status != contract.StatusAccepted || house.MRN != mrn || posts != 1 {
		t.Fatalf("house: %+v after %d POSTs, want accepted with Toll's MRN %s after 1 POST", house, posts, mrn)
	}
}

// A redelivery after a worker died during the call (Unresolved) looks
// first as well.
func TestUnresolvedRedeliveryFindsTheDeclaration(t *testing.T) {
	env := startSim(t)
	h := env.handler(toll.RoadV2())
	transport, err := h.Handle(t.Context(), request("t", contract.OpCreate, contract.LevelTransport, "", declaration(contract.LevelTransport, "TR-2")))
	if err != nil || transport.Status != contract.StatusAccepted {
		t.Fatalf("transport: %+v %v", transport, err)
	}
	decl := declaration(contract.LevelMasterConsignment, "MAWB-TR-2")
	if first, err := h.Handle(t.Context(), request("m", contract.OpCreate, contract.LevelMasterConsignment, "", decl)); err != nil || first.Status != contract.StatusAccepted {
		t.Fatalf("first attempt: %+v %v", first, err)
	}
	req := request("m", contract.OpCreate, contract.LevelMasterConsignment, "", decl)
	req.Unresolved, req.AfterMRN = true, transport.MRN
	out, err := h.Handle(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	mrn, posts := acceptedPost(t, env.sim, "MAWB-TR-2")
	if out.Status != contract.StatusAccepted || out.MRN != mrn || posts != 1 {
		t.Errorf("%+v after %d POSTs, want accepted with %s and no second POST", out, posts, mrn)
	}
}

// A transport has no lookup: a lost answer ends unresolved, with Toll's
// duplicate FAILURE, the repeat's requestId and the identification
// number, never rejected.
func TestLostTransportAnswerIsUnresolved(t *testing.T) {
	env := startSim(t)
	h := env.handler(toll.RoadV2())
	env.sim.SetFaults(simulator.Faults{LoseResponses: 1})
	out, err := h.Handle(t.Context(), request("t", contract.OpCreate, contract.LevelTransport, "", declaration(contract.LevelTransport, "TR-LOST")))
	if err != nil {
		t.Fatal(err)
	}
	_, posts := acceptedPost(t, env.sim, "TR-LOST")
	if out.Status != contract.StatusUnresolved || posts != 2 || out.RequestID == "" || len(out.Errors) == 0 {
		t.Fatalf("%+v after %d POSTs, want unresolved with the repeat's requestId and errors after 2 POSTs", out, posts)
	}
	if !strings.Contains(out.Note, "TR-LOST") || !strings.Contains(out.Note, out.RequestID) {
		t.Errorf("note %q names neither the identification number nor the repeat's requestId", out.Note)
	}
}

// A cancel of a master whose answer was lost is confirmed by the master's
// own status-with-descendants.
func TestLostCancelAnswerIsConfirmed(t *testing.T) {
	env := startSim(t)
	h := env.handler(toll.RoadV2())
	created, err := h.Handle(t.Context(), request("m", contract.OpCreate, contract.LevelMasterConsignment, "", declaration(contract.LevelMasterConsignment, "MAWB-DEL")))
	if err != nil || created.Status != contract.StatusAccepted {
		t.Fatalf("create: %+v %v", created, err)
	}
	env.sim.SetFaults(simulator.Faults{LoseResponses: 1})
	out, err := h.Handle(t.Context(), request("d", contract.OpDelete, contract.LevelMasterConsignment, created.MRN, nil))
	if err != nil {
		t.Fatal(err)
	}
	if out.Status != contract.StatusAccepted || out.MRN != created.MRN || !strings.Contains(out.Note, "CANCELLED") {
		t.Errorf("%+v, want accepted for %s with a note saying how it was confirmed", out, created.MRN)
	}
	deletes := 0
	for _, d := range env.sim.Stats().Declarations() {
		if d.Method == http.MethodDelete {
			deletes++
		}
	}
	if deletes != 1 {
		t.Errorf("%d DELETEs, want the lost one only", deletes)
	}
}

// releasingJournal records Sending, Sent and Release; with sendingErr
// set it refuses Sending.
type releasingJournal struct {
	mu         sync.Mutex
	events     []string
	sendingErr error
}

func (j *releasingJournal) add(e string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.events = append(j.events, e)
}

func (j *releasingJournal) list() string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return strings.Join(j.events, " ")
}

func (j *releasingJournal) Sending(context.Context) error {
	if j.sendingErr != nil {
		j.add("sending refused")
		return j.sendingErr
	}
	j.add("sending")
	return nil
}

func (j *releasingJournal) Sent(_ context.Context, id string) error {
	j.add("sent " + id)
	return nil
}
func (j *releasingJournal) Release(_ context.Context, maybeSent bool) error {
	j.add(fmt.Sprintf("release(maybeSent=%v)", maybeSent))
	return nil
}

// A call Toll refused before processing it (429, 503) releases the
// journal's record at once with nothing maybe sent; a call whose answer
// was lost releases it too, saying Toll may hold it.
func TestRefusedCallsReleaseTheJournal(t *testing.T) {
	for _, tc := range []struct {
		name   string
		faults simulator.Faults
		want   string
	}{
		{"503", simulator.Faults{ErrorRate: 1}, "sending release(maybeSent=false)"},
		{"429", simulator.Faults{TooManyRate: 1}, "sending release(maybeSent=false)"},
		{"answer lost", simulator.Faults{LoseResponseRate: 1}, "sending release(maybeSent=true)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := startSim(t)
			h := env.handler(toll.RoadV2())
			h.Retry.MaxElapsed = 1 // one attempt
			env.sim.SetFaults(tc.faults)
			j := &releasingJournal{}
			req := request("r", contract.OpCreate, contract.LevelTransport, "", declaration(contract.LevelTransport, "TR-REL"))
			req.Journal = j
			if _, err := h.Handle(t.Context(), req); err == nil {
				t.Fatal("no error from a call that got no answer")
			}
			if got := j.list(); !strings.HasPrefix(got, tc.want) || strings.Contains(got, "sent") {
				t.Errorf("journal %q, want it to start %q", got, tc.want)
			}
		})
	}
}

// fakeQueryAPI answers the lookups of a handler without a simulator.
type fakeQueryAPI struct {
	*fakeAPI
	tree     toll.StatusTree
	entryErr error
}

func (f *fakeQueryAPI) StatusWithDescendants(context.Context, toll.API, contract.Level, string) (toll.StatusTree, error) {
	return f.tree, nil
}

func (f *fakeQueryAPI) EntryStatus(_ context.Context, _ toll.API, mrn string) (toll.EntryStatus, error) {
	return toll.EntryStatus{MRN: mrn}, f.entryErr
}

// The outcome of a duplicate FAILURE after a lost answer: found under the
// parent and confirmed as this integration's, accepted; listed but not
// confirmed (another integration's number), unresolved; with other
// validation errors beside it, rejected (the same content failed the
// earlier attempt too).
func TestFailureAfterLostAnswer(t *testing.T) {
	const childMRN = "25NO4TU2HUD59UCBT8"
	dup := contract.FieldError{Path: "x", Message: "Transport document number HWB-9 is already in use"}
	tree := toll.StatusTree{Root: toll.Consignment{Level: contract.LevelMasterConsignment, Children: []toll.Consignment{
		{Level: contract.LevelHouseConsignment, MRN: childMRN, DocumentNumber: "HWB-9", Status: "ACCEPTED"},
	}}}
	tests := []struct {
		name     string
		errs     []contract.FieldError
		entryErr error
		afterMRN string
		want     contract.Status
		wantMRN  string
	}{
		{"found and confirmed", []contract.FieldError{dup}, nil, "25NO000000000MASTR", contract.StatusAccepted, childMRN},
		{"listed but another integration's", []contract.FieldError{dup}, toll.ErrNotFound, "25NO000000000MASTR", contract.StatusUnresolved, ""},
		{"parent unknown", []contract.FieldError{dup}, nil, "", contract.StatusUnresolved, ""},
		{"content errors as well", []contract.FieldError{dup, {Path: "documentIssueDate", Message: "must not be null"}}, nil, "25NO000000000MASTR", contract.StatusRejected, ""},
		{"content errors only", []contract.FieldError{{Path: "documentIssueDate", Message: "must not be null"}}, nil, "25NO000000000MASTR", contract.StatusRejected, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &Movement{API: toll.RoadV2(), Toll: &fakeQueryAPI{fakeAPI: &fakeAPI{rec: &recorder{}}, tree: tree, entryErr: tt.entryErr}}
			req := request("h", contract.OpCreate, contract.LevelHouseConsignment, "", houseUnder("HWB-9", "MAWB-9"))
			req.AfterMRN = tt.afterMRN
			out := m.failure(t.Context(), req, "req-2", tt.errs, m.logger())
			if out.Status != tt.want || out.MRN != tt.wantMRN || out.Note == "" {
				t.Errorf("%+v, want %s with MRN %q and a note", out, tt.want, tt.wantMRN)
			}
		})
	}
}

func TestDocumentNumber(t *testing.T) {
	for _, tc := range []struct {
		level contract.Level
		body  json.RawMessage
		want  string
	}{
		{contract.LevelTransport, declaration(contract.LevelTransport, "AB12345"), "AB12345"},
		{contract.LevelMasterConsignment, declaration(contract.LevelMasterConsignment, "MAWB-1"), "MAWB-1"},
		{contract.LevelHouseConsignment, houseUnder("HWB-1", "MAWB-1"), "HWB-1"},
		{contract.LevelHouseConsignment, json.RawMessage(`{"consignmentHouseLevel":"x"}`), ""},
		{contract.LevelMasterConsignment, nil, ""},
	} {
		if got := documentNumber(tc.level, tc.body); got != tc.want {
			t.Errorf("documentNumber(%s, %.60s) = %q, want %q", tc.level, tc.body, got, tc.want)
		}
	}
}
