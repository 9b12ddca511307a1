package worker

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/handlers"
)

// orderedToll is a fake Toll that records the order in which submissions
// reach it and gives each create its own MRN.
type orderedToll struct {
	servesAll
	mu    sync.Mutex
	order []string
	mrns  map[string]string // submission id -> MRN given or acted on
}

func (o *orderedToll) Handle(_ context.Context, req handlers.Request) (handlers.Outcome, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	s := req.Submission
	o.order = append(o.order, s.ID)
	mrn := s.MRN
	if s.Operation == contract.OpCreate {
		mrn = fmt.Sprintf("25NO%014d", len(o.order))
	}
	o.mrns[s.ID] = mrn
	return handlers.Outcome{Status: contract.StatusAccepted, MRN: mrn, RequestID: "req-" + s.ID}, nil
}

func (o *orderedToll) position(id string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Index(o.order, id)
}

func movement(id, op, level, after string) []byte {
	return fmt.Appendf(nil, `{"id":%q,"operation":%q,"level":%q,"after":%q,"declaration":{"n":1}}`, id, op, level, after)
}

// Published in reverse order, with updates chained by after and no MRN,
// the declarations still reach Toll in a valid order, and each update acts
// on the MRN its predecessor got.
func TestAfterOrdersSubmissionsAndResolvesMRNs(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	toll := &orderedToll{mrns: map[string]string{}}
	startWorker(t, e.js, Config{Handlers: map[contract.Kind]Handler{contract.KindRoad: toll}, Concurrency: 8})

	msgs := []struct{ id, op, level, after string }{
		{"house-update", "update", "house-consignment", "house-create"},
		{"house-create", "create", "house-consignment", "master-create"},
		{"master-update", "update", "master-consignment", "master-create"},
		{"master-create", "create", "master-consignment", "transport-create"},
		{"transport-create", "create", "transport", ""},
	}
	for _, m := range msgs {
		body := movement(m.id, m.op, m.level, m.after)
		if m.after == "" {
			body = fmt.Appendf(nil, `{"id":%q,"operation":"create","level":"transport","declaration":{"n":1}}`, m.id)
		}
		submit(t, e.js, roadSubject, "default/"+m.id, body, nil)
	}
	results := collect(t, e.js, contract.StreamResults, roadResults, len(msgs), 60*time.Second)
	for _, m := range results {
		if r := decodeResult(t, m); r.Status != contract.StatusAccepted {
			t.Errorf("%s: %s %v", r.ID, r.Status, r.Errors)
		}
	}
	for _, m := range msgs {
		if m.after != "" && toll.position(m.after) > toll.position(m.id) {
			t.Errorf("%s reached Toll before %s, which it names in after (order %v)", m.id, m.after, toll.order)
		}
	}
	for update, create := range map[string]string{"house-update": "house-create", "master-update": "master-create"} {
		if got, want := toll.mrns[update], toll.mrns[create]; got != want || got == "" {
			t.Errorf("%s acted on MRN %q, want %q from %s", update, got, want, create)
		}
	}
}

// An update whose predecessor was rejected has no MRN to act on: it is
// answered with a rejection naming after, and never sent to Toll.
func TestAfterARejectionLeavesNothingToUpdate(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	h := &fakeHandler{behaviour: func(_ context.Context, req handlers.Request) (handlers.Outcome, error) {
		return handlers.Outcome{Status: contract.StatusRejected, Errors: []contract.FieldError{{Path: "x", Message: "bad"}}}, nil
	}}
	startWorker(t, e.js, Config{Handlers: map[contract.Kind]Handler{contract.KindRoad: h}})
	submit(t, e.js, roadSubject, "", movement("c1", "create", "transport", ""), nil)
	submit(t, e.js, roadSubject, "", movement("u1", "update", "transport", "c1"), nil)
	var upd contract.Result
	for _, m := range collect(t, e.js, contract.StreamResults, roadResults, 2, 30*time.Second) {
		if r := decodeResult(t, m); r.ID == "u1" {
			upd = r
		}
	}
	if upd.Status != contract.StatusRejected || len(upd.Errors) != 1 || upd.Errors[0].Path != "after" {
		t.Fatalf("update result %+v, want a rejection naming after", upd)
	}
	if h.callsOf("u1") != 0 {
		t.Fatalf("the update reached Toll %d times", h.callsOf("u1"))
	}
}

// after may name a submission of another kind: an entry presentation
// waits for the road transport it presents and takes its MRN.
func TestAfterAcrossKinds(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	road := &orderedToll{mrns: map[string]string{}}
	entry := &fakeHandler{behaviour: func(_ context.Context, req handlers.Request) (handlers.Outcome, error) {
		return handlers.Outcome{Status: contract.StatusAccepted, MRN: req.Submission.MRN}, nil
	}}
	startWorker(t, e.js, Config{Handlers: map[contract.Kind]Handler{contract.KindRoad: road, contract.KindEntry: entry}})
	submit(t, e.js, contract.SubmitSubject(contract.KindEntry, contract.DefaultTenant), "",
		[]byte(`{"id":"present-1","operation":"present","after":"truck-1","presentation":{"customsOfficeOfPresentation":"NO351001"}}`), nil)
	submit(t, e.js, roadSubject, "", fmt.Appendf(nil, `{"id":"truck-1","operation":"create","level":"transport","declaration":{"n":1}}`), nil)
	r := decodeResult(t, collect(t, e.js, contract.StreamResults, contract.ResultSubject(contract.KindEntry, contract.DefaultTenant), 1, 30*time.Second)[0])
	if r.Status != contract.StatusAccepted || r.MRN == "" || r.MRN != road.mrns["truck-1"] {
		t.Fatalf("presentation %+v, want accepted with the transport's MRN %q", r, road.mrns["truck-1"])
	}
}
