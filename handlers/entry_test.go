package handlers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/failure"
	"github.com/digitoll/digitoll-worker/simulator"
	"github.com/digitoll/digitoll-worker/toll"
)

// simClientID is the integration startSim registers.
const simClientID = "handlers-test"

// entryEnv is a simulator whose client may also present, with a road
// transport declared to present.
type entryEnv struct {
	*simEnv
	mrn string
}

func startEntrySim(t *testing.T) *entryEnv {
	t.Helper()
	env := startSim(t)
	env.sim.GrantScope(simClientID, toll.Scope(false, toll.EntryScopeBase))
	out, err := env.handler(toll.RoadV2()).Handle(t.Context(),
		request("truck", contract.OpCreate, contract.LevelTransport, "", declaration(contract.LevelTransport, "AB12345")))
	if err != nil || out.Status != contract.StatusAccepted {
		t.Fatalf("declaring the transport: %+v, %v", out, err)
	}
	return &entryEnv{simEnv: env, mrn: out.MRN}
}

func (e *entryEnv) entry() *Entry {
	return &Entry{
		Toll:   e.client,
		Retry:  RetryPolicy{Initial: 5 * time.Millisecond, Max: 50 * time.Millisecond, MaxElapsed: 10 * time.Second},
		Logger: slog.New(e.logs),
	}
}

func entryRequest(id, mrn string, rec *recorder) Request {
	return Request{
		Tenant: "default", Kind: contract.KindEntry, Delivery: 1, ReceivedAt: time.Now(),
		Submission: &contract.Submission{ID: id, Operation: contract.OpPresent, MRN: mrn,
			Presentation: &contract.Presentation{CustomsOfficeOfPresentation: "NO351001"}},
		Journal: &fakeJournal{rec: rec},
	}
}

func TestEntryPresents(t *testing.T) {
	env := startEntrySim(t)
	rec := &recorder{}
	out, err := env.entry().Handle(t.Context(), entryRequest("present-1", env.mrn, rec))
	if err != nil {
		t.Fatal(err)
	}
	id := PresentationRequestID("default", "present-1")
	want := Outcome{Status: contract.StatusAccepted, MRN: env.mrn, RequestID: id}
	if fmt.Sprintf("%+v", out) != fmt.Sprintf("%+v", want) {
		t.Errorf("outcome %+v, want %+v", out, want)
	}
	if got, want := fmt.Sprint(rec.list()), fmt.Sprint([]string{"sending", "sent " + id}); got != want {
		t.Errorf("journal %s, want %s", got, want)
	}
	if n := env.sim.Stats().Presentations(env.mrn); n != 1 {
		t.Errorf("Presentations = %d, want 1", n)
	}
	st, err := env.client.EntryStatus(t.Context(), toll.RoadV2(), env.mrn)
	if err != nil || !st.ValidEntry || st.CustomsOfficeOfEntry != "NO351001" {
		t.Errorf("entry status %+v, %v; want entered at NO351001", st, err)
	}
}

func TestEntryRejectsUnknownMRN(t *testing.T) {
	env := startEntrySim(t)
	rec := &recorder{}
	const unknown = "25NOAAAAAAAAAAAAAA"
	out, err := env.entry().Handle(t.Context(), entryRequest("present-unknown", unknown, rec))
	if err != nil {
		t.Fatal(err)
	}
	want := []contract.FieldError{{Path: "mrn", Message: "MRN " + unknown + " is not a known declaration"}}
	if out.Status != contract.StatusRejected || out.RequestID != "" || fmt.Sprint(out.Errors) != fmt.Sprint(want) {
		t.Errorf("outcome %+v, want rejected with %v", out, want)
	}
	if got := fmt.Sprint(rec.list()); got != "[sending]" {
		t.Errorf("journal %s, want only sending", got)
	}
}

// The answer to the first presentation is lost after Toll processed it;
// the retry reuses the requestId, Toll refuses it as used, and that
// refusal is the proof the goods were presented once.
func TestEntryRetryAfterLostAnswerDoesNotPresentTwice(t *testing.T) {
	env := startEntrySim(t)
	env.sim.SetFaults(simulator.Faults{LoseResponses: 1})
	t.Cleanup(func() { env.sim.SetFaults(simulator.Faults{}) })
	rec := &recorder{}
	out, err := env.entry().Handle(t.Context(), entryRequest("present-lost", env.mrn, rec))
	if err != nil {
		t.Fatal(err)
	}
	id := PresentationRequestID("default", "present-lost")
	want := Outcome{Status: contract.StatusAccepted, MRN: env.mrn, RequestID: id, Note: noteAnswerLost}
	if fmt.Sprintf("%+v", out) != fmt.Sprintf("%+v", want) {
		t.Errorf("outcome %+v, want %+v", out, want)
	}
	st := env.sim.Stats()
	if n := st.Presentations(env.mrn); n != 1 {
		t.Errorf("Presentations = %d, want exactly 1", n)
	}
	if n := st.Requests(simulator.RoutePresentation); n != 2 {
		t.Errorf("%d presentation requests, want 2 (the lost one and the retry)", n)
	}
	if got, want := fmt.Sprint(rec.list()), fmt.Sprint([]string{"sending", "sending", "sent " + id}); got != want {
		t.Errorf("journal %s, want %s", got, want)
	}
	if len(env.logs.records("no answer to a presentation Toll may have received; sending it again with the same requestId")) != 1 {
		t.Error("the lost answer was not logged as a warning")
	}
}

// An earlier delivery that died mid-call presented; the redelivery's
// "requestId already used" is its success.
func TestEntryUnresolvedEarlierDelivery(t *testing.T) {
	env := startEntrySim(t)
	h := env.entry()
	if out, err := h.Handle(t.Context(), entryRequest("present-crash", env.mrn, &recorder{})); err != nil || out.Status != contract.StatusAccepted {
		t.Fatalf("first delivery: %+v, %v", out, err)
	}

	rec := &recorder{}
	req := entryRequest("present-crash", env.mrn, rec)
	req.Delivery, req.Unresolved = 2, true
	out, err := h.Handle(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	id := PresentationRequestID("default", "present-crash")
	want := Outcome{Status: contract.StatusAccepted, MRN: env.mrn, RequestID: id, Note: noteAnswerLost}
	if fmt.Sprintf("%+v", out) != fmt.Sprintf("%+v", want) {
		t.Errorf("outcome %+v, want %+v", out, want)
	}
	if got, want := fmt.Sprint(rec.list()), fmt.Sprint([]string{"sending", "sent " + id}); got != want {
		t.Errorf("journal %s, want %s", got, want)
	}
	if n := env.sim.Stats().Presentations(env.mrn); n != 1 {
		t.Errorf("Presentations = %d, want 1", n)
	}
}

// Without a lost attempt, "requestId already used" is not explained by
// anything this submission did: a rejection (e.g. two submissions that
// share an id).
func TestEntryRequestIDUsedOnFirstTry(t *testing.T) {
	env := startEntrySim(t)
	h := env.entry()
	if out, err := h.Handle(t.Context(), entryRequest("present-twice", env.mrn, &recorder{})); err != nil || out.Status != contract.StatusAccepted {
		t.Fatalf("first: %+v, %v", out, err)
	}
	out, err := h.Handle(t.Context(), entryRequest("present-twice", env.mrn, &recorder{}))
	if err != nil {
		t.Fatal(err)
	}
	want := []contract.FieldError{{Path: "requestId", Message: "requestId already used"}}
	if out.Status != contract.StatusRejected || fmt.Sprint(out.Errors) != fmt.Sprint(want) || out.Note != noteIDUsedFirstTry {
		t.Errorf("outcome %+v, want rejected with %v and a note", out, want)
	}
	if n := env.sim.Stats().Presentations(env.mrn); n != 1 {
		t.Errorf("Presentations = %d, want 1", n)
	}
}

func TestEntryEarlierDeliveryRecordedRequestID(t *testing.T) {
	env := startEntrySim(t)
	rec := &recorder{}
	req := entryRequest("present-done", env.mrn, rec)
	req.RequestID, req.Delivery = PresentationRequestID("default", "present-done"), 2
	out, err := env.entry().Handle(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	want := Outcome{Status: contract.StatusAccepted, MRN: env.mrn, RequestID: req.RequestID, Note: noteEarlierDelivery}
	if fmt.Sprintf("%+v", out) != fmt.Sprintf("%+v", want) {
		t.Errorf("outcome %+v, want %+v", out, want)
	}
	if n := env.sim.Stats().Requests(simulator.RoutePresentation); n != 0 {
		t.Errorf("%d presentation requests, want none", n)
	}
	if ev := rec.list(); len(ev) != 0 {
		t.Errorf("journal %q, want no calls", ev)
	}
}

// fakePresenter answers the n-th Present (from 1) with its behaviour.
type fakePresenter struct {
	rec     *recorder
	present func(n int) error
	n       int
}

// Authorize passes.
func (f *fakePresenter) Authorize(context.Context, toll.API) error { return nil }

func (f *fakePresenter) Present(ctx context.Context, p toll.Presentation) error {
	if err := toll.RunBeforeSend(ctx); err != nil {
		return err
	}
	f.n++
	f.rec.add("present " + p.RequestID)
	return f.present(f.n)
}

func TestEntryHandle(t *testing.T) {
	const mrn = "25NO4TU2HUD59UCBT8"
	id := PresentationRequestID("default", "s-1")
	used := &toll.RejectedError{Status: 400, Errors: []contract.FieldError{{Path: "requestId", Message: "requestId already used"}}}
	usedAndMRN := &toll.RejectedError{Status: 400, Errors: []contract.FieldError{{Path: "requestId", Message: "requestId already used"}, {Path: "mrn", Message: "unknown"}}}
	tests := []struct {
		name       string
		present    func(n int) error
		sentErr    error
		want       Outcome
		wantClass  failure.Class
		wantEvents []string
	}{
		{
			name: "a transient failure is retried",
			present: func(n int) error {
				if n == 1 {
					return errUnavailable
				}
				return nil
			},
			want:       Outcome{Status: contract.StatusAccepted, MRN: mrn, RequestID: id},
			wantEvents: []string{"sending", "present " + id, "sending", "present " + id, "sent " + id},
		},
		{
			name: "lost answer, then used together with a content error, is a rejection",
			present: func(n int) error {
				if n == 1 {
					return errAmbiguous
				}
				return usedAndMRN
			},
			want:       Outcome{Status: contract.StatusRejected, Errors: usedAndMRN.Errors},
			wantEvents: []string{"sending", "present " + id, "sending", "present " + id},
		},
		{
			name:       "a failing Sent after presenting is transient",
			present:    func(int) error { return nil },
			sentErr:    errors.New("kv down"),
			wantClass:  failure.Transient,
			wantEvents: []string{"sending", "present " + id, "sent " + id},
		},
		{
			name: "a lost answer that never clears is transient and ambiguous",
			present: func(int) error {
				return errAmbiguous
			},
			wantClass: failure.Transient,
		},
		{
			name:       "403 is configuration",
			present:    func(int) error { return fmt.Errorf("HTTP 403: %w", failure.ErrConfig) },
			wantClass:  failure.Config,
			wantEvents: []string{"sending", "present " + id},
		},
		{
			name: "a 502 Toll may have answered after presenting, then used, is accepted",
			present: func(n int) error {
				if n == 1 {
					return fmt.Errorf("HTTP 502: %w", failure.ErrTransient)
				}
				return used
			},
			want:       Outcome{Status: contract.StatusAccepted, MRN: mrn, RequestID: id, Note: noteAnswerLost},
			wantEvents: []string{"sending", "present " + id, "sending", "present " + id, "sent " + id},
		},
		{
			name: "a call that never left, then used, is a rejection",
			present: func(n int) error {
				if n == 1 {
					return fmt.Errorf("rate limited: %w: %w", toll.ErrNotSent, failure.ErrTransient)
				}
				return used
			},
			want:       Outcome{Status: contract.StatusRejected, Errors: used.Errors, Note: noteIDUsedFirstTry},
			wantEvents: []string{"sending", "present " + id, "sending", "present " + id},
		},
		{
			name:       "used on the first try is a rejection",
			present:    func(int) error { return used },
			want:       Outcome{Status: contract.StatusRejected, Errors: used.Errors, Note: noteIDUsedFirstTry},
			wantEvents: []string{"sending", "present " + id},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{}
			h := &Entry{Toll: &fakePresenter{rec: rec, present: tt.present},
				Retry: RetryPolicy{Initial: time.Millisecond, Max: 5 * time.Millisecond, MaxElapsed: 200 * time.Millisecond}}
			req := entryRequest("s-1", mrn, rec)
			req.Journal = &fakeJournal{rec: rec, sentErr: tt.sentErr}
			out, err := h.Handle(t.Context(), req)
			if tt.wantClass != 0 {
				if err == nil || failure.Classify(err) != tt.wantClass {
					t.Fatalf("outcome %+v, err %v; want a %v error", out, err, tt.wantClass)
				}
			} else if err != nil || fmt.Sprintf("%+v", out) != fmt.Sprintf("%+v", tt.want) {
				t.Fatalf("outcome %+v, err %v; want %+v", out, err, tt.want)
			}
			if tt.wantEvents != nil && fmt.Sprint(rec.list()) != fmt.Sprint(tt.wantEvents) {
				t.Errorf("events %q, want %q", rec.list(), tt.wantEvents)
			}
		})
	}
}

func TestEntryPoison(t *testing.T) {
	h := &Entry{Toll: &fakePresenter{rec: &recorder{}, present: func(int) error { t.Error("Toll called"); return nil }}}
	tests := map[string]func(r *Request){
		"no submission":   func(r *Request) { r.Submission = nil },
		"no mrn":          func(r *Request) { r.Submission.MRN = "" },
		"not present":     func(r *Request) { r.Submission.Operation = contract.OpCreate },
		"no presentation": func(r *Request) { r.Submission.Presentation = nil },
		"no office":       func(r *Request) { r.Submission.Presentation.CustomsOfficeOfPresentation = "" },
	}
	for name, spoil := range tests {
		t.Run(name, func(t *testing.T) {
			req := entryRequest("s-1", "25NO4TU2HUD59UCBT8", &recorder{})
			spoil(&req)
			if _, err := h.Handle(t.Context(), req); !errors.Is(err, failure.ErrPoison) {
				t.Errorf("err = %v, want poison", err)
			}
		})
	}
	if _, err := (&Entry{}).Handle(t.Context(), entryRequest("s-1", "25NO4TU2HUD59UCBT8", &recorder{})); !errors.Is(err, failure.ErrConfig) {
		t.Errorf("no Toll client: err = %v, want config", err)
	}
}

func TestPresentationRequestID(t *testing.T) {
	a := PresentationRequestID("default", "s-1")
	u, err := uuid.Parse(a)
	if err != nil || u.Version() != 5 || len(a) != 36 {
		t.Fatalf("%q is not a canonical name-based (SHA-1) UUID: %v", a, err)
	}
	if PresentationRequestID("default", "s-1") != a {
		t.Error("not stable")
	}
	for _, other := range [][2]string{{"acme", "s-1"}, {"default", "s-2"}, {"default/s", "1"}} {
		if PresentationRequestID(other[0], other[1]) == a {
			t.Errorf("%q collides with default/s-1", other)
		}
	}
}
