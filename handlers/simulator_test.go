package handlers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/digitoll/digitoll-worker/auth"
	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/failure"
	"github.com/digitoll/digitoll-worker/simulator"
	"github.com/digitoll/digitoll-worker/toll"
)

const (
	routeRoadPostHouse   = "POST /toll/api/movement/road/v2/house-consignment"
	routeRoadStatusHouse = "GET /toll/api/movement/road/status/v2/house-consignment/validation-status/{requestId}"
)

// simEnv is a running simulator with a real token chain (Maskinporten
// grant, Toll exchange, cache) in front of a toll.Client.
type simEnv struct {
	sim    *simulator.Server
	client *toll.Client
	tokens *auth.Cache
	logs   *captureHandler
}

func startSim(t testing.TB) *simEnv {
	t.Helper()
	key, err := simulator.WriteDemoKey(t.TempDir(), "handlers-test")
	if err != nil {
		t.Fatal(err)
	}
	sim, err := simulator.Start(simulator.Config{
		Clients: []simulator.Client{key.Client(toll.Scope(false, toll.RoadV2().ScopeBase), toll.Scope(false, toll.AirV1().ScopeBase))},
	}, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	signer, err := auth.NewKeySigner(key.Key, key.KeyID)
	if err != nil {
		t.Fatal(err)
	}
	tokens := auth.NewCache(auth.CacheConfig{
		Maskinporten: &auth.Maskinporten{TokenURL: sim.TokenURL(), Issuer: sim.Issuer(), ClientID: key.ClientID, Signer: signer},
		Exchanger:    &auth.Exchanger{URL: sim.TollBaseURL() + "/access/external/oauth/token"},
	})
	t.Cleanup(tokens.Close)
	logs := newCaptureHandler()
	env := &simEnv{
		sim:    sim,
		tokens: tokens,
		logs:   logs,
		client: &toll.Client{BaseURL: sim.TollBaseURL(), Tokens: tokens, Timeout: 5 * time.Second, Logger: slog.New(logs)},
	}
	t.Cleanup(func() { env.checkNoTokenInLogs(t) })
	return env
}

// handler returns a road (or air) handler with short policies.
func (e *simEnv) handler(api toll.API) *Movement {
	return &Movement{
		API:    api,
		Toll:   e.client,
		Retry:  RetryPolicy{Initial: 5 * time.Millisecond, Max: 50 * time.Millisecond, MaxElapsed: 10 * time.Second},
		Poll:   PollPolicy{Initial: 5 * time.Millisecond, Max: 50 * time.Millisecond, Multiplier: 1.5, Timeout: 10 * time.Second},
		Logger: slog.New(e.logs),
	}
}

// checkNoTokenInLogs fetches the (cached) Toll token and makes sure no log
// line of the test contains it.
func (e *simEnv) checkNoTokenInLogs(t testing.TB) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	tok, err := e.tokens.Token(ctx, toll.Scope(false, toll.RoadV2().ScopeBase))
	if err != nil {
		t.Errorf("token for the log check: %v", err)
		return
	}
	if strings.Contains(e.logs.text(), tok) {
		t.Error("a log line contains the Toll access token")
	}
}

// declaration returns a valid body for level whose document number is doc.
func declaration(level contract.Level, doc string) json.RawMessage {
	var body string
	switch level {
	case contract.LevelTransport:
		body = `{"documentIssueDate":"2025-01-15T08:00:00Z",
 "activeBorderTransportMeans":{"identificationNumber":"` + doc + `","typeOfIdentification":"30","countryCode":"NO","modeOfTransportCode":"3"},
 "carrier":{"name":"Carrier AS","identificationNumber":"999999999"},
 "customsOfficeOfFirstEntry":{"referenceNumber":"NO372001"},
 "estimatedDateAndTimeOfArrival":"2025-01-15T14:00:00Z",
 "consignmentMasterLevel":[{"transportDocumentMasterLevel":{"documentNumber":"MAWB-` + doc + `","type":"N741"}}]}`
	case contract.LevelMasterConsignment:
		body = `{"documentIssueDate":"2025-01-15T08:02:00Z",
 "consignmentMasterLevel":{"containerIndicator":0,"grossMass":1200,"carrier":{"identificationNumber":"999999999"},
   "transportDocumentMasterLevel":{"documentNumber":"` + doc + `","type":"N741"}}}`
	case contract.LevelHouseConsignment:
		body = `{"documentIssueDate":"2025-01-15T08:05:00Z",
 "consignmentHouseLevel":{"containerIndicator":0,"totalGrossMass":120.5,"numberOfPackages":3,"goodsDescription":"brake discs",
   "transportDocumentHouseLevel":{"documentNumber":"` + doc + `","type":"N750"},
   "consignmentMasterLevel":{"carrierIdentificationNumber":"999999999","transportDocumentMasterLevel":{"documentNumber":"MAWB-0001","type":"N741"}},
   "consignor":{"name":"Sender AB","typeOfPerson":2,"address":{"city":"Göteborg","country":"SE"}},
   "consignee":{"name":"Receiver AS","identificationNumber":"888888888","typeOfPerson":2,"address":{"city":"Oslo","country":"NO"}}}}`
	}
	return json.RawMessage(body)
}

func request(id string, op contract.Operation, level contract.Level, mrn string, decl json.RawMessage) Request {
	return Request{
		Tenant: "default", Kind: contract.KindRoad, Delivery: 1, ReceivedAt: time.Now(),
		Submission: &contract.Submission{ID: id, Operation: op, Level: level, MRN: mrn, Declaration: decl},
	}
}

func TestSimulatorEveryLevelAndOperation(t *testing.T) {
	env := startSim(t)
	h := env.handler(toll.RoadV2())
	for _, level := range []contract.Level{contract.LevelTransport, contract.LevelMasterConsignment, contract.LevelHouseConsignment} {
		t.Run(string(level), func(t *testing.T) {
			doc := "DOC-" + strings.ToUpper(string(level[:4]))
			created, err := h.Handle(t.Context(), request("c", contract.OpCreate, level, "", declaration(level, doc)))
			if err != nil {
				t.Fatal(err)
			}
			if created.Status != contract.StatusAccepted || !contract.ValidMRN(created.MRN) || created.RequestID == "" {
				t.Fatalf("create: %+v, want accepted with an MRN and a requestId", created)
			}
			updated, err := h.Handle(t.Context(), request("u", contract.OpUpdate, level, created.MRN, declaration(level, doc)))
			if err != nil {
				t.Fatal(err)
			}
			if updated.Status != contract.StatusAccepted || updated.MRN != created.MRN || updated.RequestID == created.RequestID {
				t.Fatalf("update: %+v, want accepted for MRN %s with a new requestId", updated, created.MRN)
			}
			deleted, err := h.Handle(t.Context(), request("d", contract.OpDelete, level, created.MRN, nil))
			if err != nil {
				t.Fatal(err)
			}
			if deleted.Status != contract.StatusAccepted || deleted.MRN != created.MRN {
				t.Fatalf("delete: %+v, want accepted for MRN %s", deleted, created.MRN)
			}
			if n := env.sim.Stats().Submissions(doc); n != 3 {
				t.Errorf("simulator saw %d writes for %s, want 3", n, doc)
			}
		})
	}
	t.Run("air uses the same handler", func(t *testing.T) {
		out, err := env.handler(toll.AirV1()).Handle(t.Context(), request("air", contract.OpCreate, contract.LevelHouseConsignment, "", declaration(contract.LevelHouseConsignment, "AWB-1")))
		if err != nil || out.Status != contract.StatusAccepted || !contract.ValidMRN(out.MRN) {
			t.Fatalf("air create: %+v, %v; want accepted with an MRN", out, err)
		}
		if n := env.sim.Stats().Requests("POST /toll/api/movement/air/v1/house-consignment"); n != 1 {
			t.Errorf("%d air POSTs, want 1", n)
		}
	})
}

func TestSimulatorRejections(t *testing.T) {
	env := startSim(t)
	h := env.handler(toll.RoadV2())

	t.Run("400 lists every validation error", func(t *testing.T) {
		var body map[string]any
		if err := json.Unmarshal(declaration(contract.LevelHouseConsignment, "HWB-BAD"), &body); err != nil {
			t.Fatal(err)
		}
		body["documentIssueDate"] = "2025-01-15 08:05"
		delete(body["consignmentHouseLevel"].(map[string]any), "goodsDescription")
		decl, _ := json.Marshal(body)
		rec := &recorder{}
		req := request("bad", contract.OpCreate, contract.LevelHouseConsignment, "", decl)
		req.Journal = &fakeJournal{rec: rec}
		out, err := h.Handle(t.Context(), req)
		if err != nil {
			t.Fatal(err)
		}
		want := []contract.FieldError{
			{Path: "consignmentHouseLevel.goodsDescription", Message: "must not be null"},
			{Path: "documentIssueDate", Message: "invalid ISO-8601 instant in UTC (yyyy-MM-ddTHH:mm:ssZ)"},
		}
		if out.Status != contract.StatusRejected || out.RequestID != "" || fmt.Sprint(out.Errors) != fmt.Sprint(want) {
			t.Errorf("outcome %+v, want rejected without requestId, errors %v", out, want)
		}
		if ev := rec.list(); fmt.Sprint(ev) != "[sending]" {
			t.Errorf("journal %q, want only sending", ev)
		}
	})

	t.Run("duplicate document number is a FAILURE", func(t *testing.T) {
		decl := declaration(contract.LevelHouseConsignment, "HWB-DUP")
		first, err := h.Handle(t.Context(), request("first", contract.OpCreate, contract.LevelHouseConsignment, "", decl))
		if err != nil || first.Status != contract.StatusAccepted {
			t.Fatalf("first: %+v, %v; want accepted", first, err)
		}
		second, err := h.Handle(t.Context(), request("second", contract.OpCreate, contract.LevelHouseConsignment, "", decl))
		if err != nil {
			t.Fatal(err)
		}
		if second.Status != contract.StatusRejected || second.RequestID == "" || len(second.Errors) != 1 ||
			!strings.Contains(second.Errors[0].Message, "already in use") {
			t.Errorf("second: %+v, want rejected with a requestId and an 'already in use' error", second)
		}
	})
}

func TestSimulatorSlowValidation(t *testing.T) {
	env := startSim(t)
	env.sim.SetValidationDelay(300 * time.Millisecond)
	h := env.handler(toll.RoadV2())
	h.Poll = PollPolicy{Initial: 20 * time.Millisecond, Max: 200 * time.Millisecond, Multiplier: 1.5, Timeout: 10 * time.Second}

	out, err := h.Handle(t.Context(), request("slow", contract.OpCreate, contract.LevelHouseConsignment, "", declaration(contract.LevelHouseConsignment, "HWB-SLOW")))
	if err != nil || out.Status != contract.StatusAccepted || !contract.ValidMRN(out.MRN) {
		t.Fatalf("%+v, %v; want accepted with an MRN", out, err)
	}
	if n := env.sim.Stats().Requests(routeRoadStatusHouse); n < 3 {
		t.Errorf("%d polls, want several", n)
	}
	var pauses []time.Duration
	for _, r := range env.logs.records("validation not ready") {
		pauses = append(pauses, r.attr("pause").Duration())
	}
	if len(pauses) < 2 {
		t.Fatalf("pauses %v, want at least two not-ready polls", pauses)
	}
	for i := 1; i < len(pauses); i++ {
		if pauses[i] < pauses[i-1] || (pauses[i] == pauses[i-1] && pauses[i] != h.Poll.Max) {
			t.Errorf("pauses %v do not grow up to the maximum", pauses)
			break
		}
	}
}

func TestSimulatorServiceUnavailableStorm(t *testing.T) {
	env := startSim(t)
	h := env.handler(toll.RoadV2())
	// Fetch the token first so that the storm hits the declaration.
	if _, err := env.tokens.Token(t.Context(), toll.Scope(false, toll.RoadV2().ScopeBase)); err != nil {
		t.Fatal(err)
	}
	env.sim.SetFaults(simulator.Faults{ErrorRate: 1})

	// The storm ends once three POSTs have been refused.
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer env.sim.SetFaults(simulator.Faults{})
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for env.sim.Stats().Requests(routeRoadPostHouse) < 3 {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(func() { cancel(); wg.Wait() })

	rec := &recorder{}
	req := request("storm", contract.OpCreate, contract.LevelHouseConsignment, "", declaration(contract.LevelHouseConsignment, "HWB-STORM"))
	req.Journal = &fakeJournal{rec: rec}
	out, err := h.Handle(t.Context(), req)
	if err != nil || out.Status != contract.StatusAccepted || !contract.ValidMRN(out.MRN) {
		t.Fatalf("%+v, %v; want accepted with an MRN", out, err)
	}
	posts := env.sim.Stats().Requests(routeRoadPostHouse)
	if posts < 4 {
		t.Errorf("%d POSTs, want at least 3 refused and 1 accepted", posts)
	}
	if n := env.sim.Stats().Submissions("HWB-STORM"); n != 1 {
		t.Errorf("%d declarations processed, want 1", n)
	}
	if n := rec.count("sending"); n != posts {
		t.Errorf("journal Sending called %d times for %d POSTs, want one per attempt", n, posts)
	}
}

func TestSimulatorResumeWithRequestID(t *testing.T) {
	env := startSim(t)
	h := env.handler(toll.RoadV2())
	req := request("resume", contract.OpCreate, contract.LevelHouseConsignment, "", declaration(contract.LevelHouseConsignment, "HWB-RESUME"))
	first, err := h.Handle(t.Context(), req)
	if err != nil || first.Status != contract.StatusAccepted {
		t.Fatalf("%+v, %v; want accepted", first, err)
	}

	rec := &recorder{}
	req.RequestID = first.RequestID
	req.Delivery = 2
	req.Journal = &fakeJournal{rec: rec}
	again, err := h.Handle(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprintf("%+v", again) != fmt.Sprintf("%+v", first) {
		t.Errorf("resumed outcome %+v, want %+v", again, first)
	}
	if n := env.sim.Stats().Requests(routeRoadPostHouse); n != 1 {
		t.Errorf("%d POSTs, want the first delivery's one only", n)
	}
	if ev := rec.list(); len(ev) != 0 {
		t.Errorf("journal calls %q on a resume, want none", ev)
	}
}

// postCountingJournal records, at each journal call, how many POSTs the
// simulator has seen so far.
type postCountingJournal struct {
	sim    *simulator.Server
	mu     sync.Mutex
	events []string
}

func (j *postCountingJournal) record(what string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.events = append(j.events, fmt.Sprintf("%s after %d POSTs", what, j.sim.Stats().Requests(routeRoadPostHouse)))
}

func (j *postCountingJournal) Sending(context.Context) error { j.record("sending"); return nil }

// Release is not recorded: the test counts POSTs against Sending and Sent.
func (j *postCountingJournal) Release(context.Context, bool) error { return nil }

func (j *postCountingJournal) Sent(_ context.Context, id string) error {
	if id == "" {
		return fmt.Errorf("empty requestId")
	}
	j.record("sent")
	return nil
}

func TestSimulatorJournalBracketsThePost(t *testing.T) {
	env := startSim(t)
	j := &postCountingJournal{sim: env.sim}
	req := request("journal", contract.OpCreate, contract.LevelHouseConsignment, "", declaration(contract.LevelHouseConsignment, "HWB-JOURNAL"))
	req.Journal = j
	out, err := env.handler(toll.RoadV2()).Handle(t.Context(), req)
	if err != nil || out.Status != contract.StatusAccepted {
		t.Fatalf("%+v, %v; want accepted", out, err)
	}
	if got, want := fmt.Sprint(j.events), "[sending after 0 POSTs sent after 1 POSTs]"; got != want {
		t.Errorf("journal %s, want %s", got, want)
	}
}

// captureHandler keeps every log record and renders it as text, for
// tests that read what was logged.
type captureHandler struct {
	store *captureStore
	inner slog.Handler
}

type captureStore struct {
	mu      sync.Mutex
	records []slog.Record
	buf     bytes.Buffer
}

type lockedWriter struct{ s *captureStore }

func (w lockedWriter) Write(p []byte) (int, error) { return w.s.buf.Write(p) }

func newCaptureHandler() *captureHandler {
	s := &captureStore{}
	return &captureHandler{store: s, inner: slog.NewTextHandler(lockedWriter{s}, &slog.HandlerOptions{Level: slog.LevelDebug})}
}

func (h *captureHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *captureHandler) Handle(ctx context.Context, r slog.Record) error {
	h.store.mu.Lock()
	defer h.store.mu.Unlock()
	h.store.records = append(h.store.records, r.Clone())
	return h.inner.Handle(ctx, r)
}

func (h *captureHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &captureHandler{store: h.store, inner: h.inner.WithAttrs(as)}
}

func (h *captureHandler) WithGroup(name string) slog.Handler {
	return &captureHandler{store: h.store, inner: h.inner.WithGroup(name)}
}

func (h *captureHandler) text() string {
	h.store.mu.Lock()
	defer h.store.mu.Unlock()
	return h.store.buf.String()
}

// loggedRecord is a record whose own attributes can be looked up.
type loggedRecord struct{ slog.Record }

func (r loggedRecord) attr(key string) slog.Value {
	var v slog.Value
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == key {
			v = a.Value
			return false
		}
		return true
	})
	return v
}

func (h *captureHandler) records(msg string) []loggedRecord {
	h.store.mu.Lock()
	defer h.store.mu.Unlock()
	var out []loggedRecord
	for _, r := range h.store.records {
		if r.Message == msg {
			out = append(out, loggedRecord{r})
		}
	}
	return out
}

// The probe a paused kind relies on fails while the scope is not granted
// and succeeds once it is.
func TestMovementProbeFollowsTheScopeGrant(t *testing.T) {
	e := startSim(t)
	m := e.handler(toll.RoadV2())
	e.sim.RevokeScope("handlers-test", "toll:movement/road/v2")
	if err := m.Probe(context.Background()); failure.Classify(err) != failure.Config {
		t.Fatalf("probe without the scope: %v (class %v), want a configuration failure", err, failure.Classify(err))
	}
	e.sim.GrantScope("handlers-test", "toll:movement/road/v2")
	// The token cache hands the refusal back until its backoff (about a
	// second) has passed; then the probe asks again and passes.
	if err := m.Probe(context.Background()); !errors.As(err, new(*auth.BackoffError)) {
		t.Fatalf("probe right after the grant: %v, want the refusal from the token cache's backoff", err)
	}
	waitFor(t, func() bool { return m.Probe(context.Background()) == nil })
}

// A worker that died during its Toll call, for a house whose master's MRN
// is unknown, ends unresolved: the next delivery sends again (Toll offers
// no other way to an answer), and Toll's duplicate FAILURE may be it
// meeting the earlier attempt, so it is not reported as a rejection. An
// unrelated first attempt's duplicate is a plain rejection.
func TestUnresolvedAttemptThatMeetsItsDuplicateSaysSo(t *testing.T) {
	env := startSim(t)
	h := env.handler(toll.RoadV2())
	decl := declaration(contract.LevelHouseConsignment, "HWB-LOST-1")
	first, err := h.Handle(t.Context(), request("lost-1", contract.OpCreate, contract.LevelHouseConsignment, "", decl))
	if err != nil || first.Status != contract.StatusAccepted {
		t.Fatalf("first attempt: %+v %v", first, err)
	}
	for _, tc := range []struct {
		unresolved bool
		want       contract.Status
	}{{true, contract.StatusUnresolved}, {false, contract.StatusRejected}} {
		req := request("lost-1", contract.OpCreate, contract.LevelHouseConsignment, "", decl)
		req.Unresolved = tc.unresolved
		out, err := h.Handle(t.Context(), req)
		if err != nil {
			t.Fatal(err)
		}
		if out.Status != tc.want || len(out.Errors) == 0 || !strings.Contains(out.Errors[0].Message, "already in use") {
			t.Fatalf("unresolved=%v: %+v, want %s with Toll's duplicate FAILURE", tc.unresolved, out, tc.want)
		}
		if got := strings.Contains(out.Note, "HWB-LOST-1") && out.RequestID != ""; got != tc.unresolved {
			t.Errorf("unresolved=%v: note %q, requestId %q", tc.unresolved, out.Note, out.RequestID)
		}
	}
}
