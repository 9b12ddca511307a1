package simulator_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/digitoll/digitoll-worker/simulator"
)

const scopeEntry = "toll:movement/entry"

// entryToken is a Toll token of clientKid for road and entry, after
// granting it the entry scope.
func entryToken(t *testing.T, srv *simulator.Server) string {
	t.Helper()
	srv.GrantScope(clientKid, scopeEntry)
	return exchange(t, srv, maskinportenToken(t, srv, kidGrant(t, srv, scopeRoad+" "+scopeEntry)))
}

func presentURL(srv *simulator.Server) string {
	return srv.TollBaseURL() + "/movement/presentation/v1/entry-summary-declaration"
}

func presentation(requestID, office, mrn string) map[string]any {
	return map[string]any{"requestId": requestID, "customsOfficeOfPresentation": office, "mrn": mrn}
}

// fieldErrors returns a 400's validationErrors as "field: error" lines.
func fieldErrors(t *testing.T, a answer) []string {
	t.Helper()
	if a.status != http.StatusBadRequest {
		t.Fatalf("want 400, got %d %s", a.status, a.raw)
	}
	list, _ := a.body["validationErrors"].([]any)
	var out []string
	for _, e := range list {
		m, _ := e.(map[string]any)
		out = append(out, m["field"].(string)+": "+m["error"].(string))
	}
	return out
}

func TestPresentation(t *testing.T) {
	srv := start(t, simulator.Config{})
	tok := entryToken(t, srv)
	mrn := mustSucceed(t, roadResult(t, srv, http.MethodPost, "transport", "", tok, transportBody("AB12345")))
	status := roadQuery(srv, "entry/status/"+mrn)
	if a := call(t, http.MethodGet, status, tok, nil); a.status != http.StatusOK || a.body["validEntry"] != false {
		t.Fatalf("entry status before presentation: %d %s", a.status, a.raw)
	}

	id := uuid.NewString()
	a := call(t, http.MethodPost, presentURL(srv), tok, presentation(id, "NO351001", mrn))
	if a.status != http.StatusOK || a.raw != "" {
		t.Fatalf("presentation: %d %q, want 200 with an empty body", a.status, a.raw)
	}
	a = call(t, http.MethodGet, status, tok, nil)
	if a.body["validEntry"] != true || a.str("customsOfficeOfEntry") != "NO351001" || a.str("timeOfEntry") == "" || a.str("mrn") != mrn {
		t.Errorf("entry status after presentation: %d %s", a.status, a.raw)
	}

	// Toll documents reusing a requestId as a validation error.
	if got := fieldErrors(t, call(t, http.MethodPost, presentURL(srv), tok, presentation(id, "NO351001", mrn))); len(got) != 1 || got[0] != "requestId: requestId already used" {
		t.Errorf("reused requestId: %q", got)
	}
	// A new requestId presents again.
	if a := call(t, http.MethodPost, presentURL(srv), tok, presentation(uuid.NewString(), "NO351001", mrn)); a.status != http.StatusOK {
		t.Errorf("second presentation with a new requestId: %d %s", a.status, a.raw)
	}

	// requestIds are per client: another client may use the same one for
	// its own declaration, an air one here.
	srv.GrantScope(clientX5c, scopeEntry)
	other := x5cToken(t, srv, scopeAir+" "+scopeEntry)
	airID := submit(t, http.MethodPost, srv.TollBaseURL()+"/movement/air/v1/house-consignment", other, houseBody("HWB-AIR", "MAWB-AIR"))
	airMRN := mustSucceed(t, result(t, srv.TollBaseURL()+"/movement/air/status/v1/house-consignment/validation-status/"+airID, other))
	if a := call(t, http.MethodPost, presentURL(srv), other, presentation(id, "NO372001", airMRN)); a.status != http.StatusOK {
		t.Errorf("another client's presentation with the same requestId: %d %s", a.status, a.raw)
	}
	if a := call(t, http.MethodGet, srv.TollBaseURL()+"/movement/air/status/v1/entry/status/"+airMRN, other, nil); a.body["validEntry"] != true || a.str("customsOfficeOfEntry") != "NO372001" {
		t.Errorf("air entry status: %d %s", a.status, a.raw)
	}

	st := srv.Stats()
	if st.Presentations(mrn) != 2 || st.Presentations(airMRN) != 1 {
		t.Errorf("Presentations = %d and %d, want 2 (the refused reuse does not count) and 1", st.Presentations(mrn), st.Presentations(airMRN))
	}
	if n := st.Requests(simulator.RoutePresentation); n != 4 {
		t.Errorf("Requests(RoutePresentation) = %d, want 4", n)
	}
}

func TestPresentationRefused(t *testing.T) {
	srv := start(t, simulator.Config{})
	tok := entryToken(t, srv)
	mrn := mustSucceed(t, roadResult(t, srv, http.MethodPost, "house-consignment", "", tok, houseBody("HWB-1", "MAWB-1")))
	cancelled := mustSucceed(t, roadResult(t, srv, http.MethodPost, "house-consignment", "", tok, houseBody("HWB-2", "MAWB-1")))
	mustSucceed(t, roadResult(t, srv, http.MethodDelete, "house-consignment", cancelled, tok, nil))
	x5cRoad := x5cToken(t, srv, scopeRoad)
	foreign := mustSucceed(t, roadResult(t, srv, http.MethodPost, "house-consignment", "", x5cRoad, houseBody("HWB-3", "MAWB-1")))
	const unknown = "25NOAAAAAAAAAAAAAA"

	tests := []struct {
		name string
		body any
		want []string
	}{
		{"requestId missing", map[string]any{"customsOfficeOfPresentation": "NO351001", "mrn": mrn}, []string{"requestId: must not be null"}},
		{"requestId not a UUID", presentation("req-1", "NO351001", mrn), []string{"requestId: must be a UUID"}},
		{"requestId a number", map[string]any{"requestId": 7, "customsOfficeOfPresentation": "NO351001", "mrn": mrn}, []string{"requestId: must be a string"}},
		{"requestId in braces", presentation("{"+uuid.NewString()+"}", "NO351001", mrn), []string{"requestId: must be a UUID"}},
		{"office blank", presentation(uuid.NewString(), " ", mrn), []string{"customsOfficeOfPresentation: must not be blank"}},
		{"office lowercase", presentation(uuid.NewString(), "no351001", mrn), []string{"customsOfficeOfPresentation: must be a customs office: 2 uppercase letters and 6 digits"}},
		{"office too long", presentation(uuid.NewString(), "NO3510012", mrn), []string{"customsOfficeOfPresentation: must be a customs office: 2 uppercase letters and 6 digits"}},
		{"mrn missing", map[string]any{"requestId": uuid.NewString(), "customsOfficeOfPresentation": "NO351001"}, []string{"mrn: must not be null"}},
		{"mrn malformed", presentation(uuid.NewString(), "NO351001", "25NO123"), []string{"mrn: invalid MRN (18 characters: 2 digits, NO, 14 uppercase letters or digits)"}},
		{"mrn unknown", presentation(uuid.NewString(), "NO351001", unknown), []string{"mrn: MRN " + unknown + " is not a known declaration"}},
		{"mrn of another client", presentation(uuid.NewString(), "NO351001", foreign), []string{"mrn: MRN " + foreign + " is not a known declaration"}},
		{"mrn cancelled", presentation(uuid.NewString(), "NO351001", cancelled), []string{"mrn: Declaration " + cancelled + " is cancelled"}},
		{"every error at once", presentation("x", "x", "x"), []string{
			"requestId: must be a UUID",
			"customsOfficeOfPresentation: must be a customs office: 2 uppercase letters and 6 digits",
			"mrn: invalid MRN (18 characters: 2 digits, NO, 14 uppercase letters or digits)",
		}},
		{"malformed JSON", `{"requestId":`, []string{": malformed JSON"}},
		{"not an object", `[]`, []string{": request body must be a JSON object"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := fieldErrors(t, call(t, http.MethodPost, presentURL(srv), tok, tt.body))
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("errors\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}

	t.Run("not JSON", func(t *testing.T) {
		req, err := http.NewRequest(http.MethodPost, presentURL(srv), strings.NewReader("requestId=x"))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Authorization", "Bearer "+tok)
		if a := do(t, req); a.status != http.StatusUnsupportedMediaType {
			t.Errorf("got %d %s, want 415", a.status, a.raw)
		}
	})
	t.Run("token without the entry scope", func(t *testing.T) {
		a := call(t, http.MethodPost, presentURL(srv), roadToken(t, srv), presentation(uuid.NewString(), "NO351001", mrn))
		if a.status != http.StatusForbidden {
			t.Errorf("got %d %s, want 403", a.status, a.raw)
		}
	})
	t.Run("no token", func(t *testing.T) {
		if a := call(t, http.MethodPost, presentURL(srv), "", presentation(uuid.NewString(), "NO351001", mrn)); a.status != http.StatusUnauthorized {
			t.Errorf("got %d %s, want 401", a.status, a.raw)
		}
	})

	if n := srv.Stats().Presentations(mrn); n != 0 {
		t.Errorf("Presentations = %d after refusals only", n)
	}
	if a := call(t, http.MethodGet, roadQuery(srv, "entry/status/"+mrn), tok, nil); a.body["validEntry"] != false {
		t.Errorf("refused presentations entered the goods: %s", a.raw)
	}
}

// noKeepAlive sends each request on a connection of its own, so that a
// dropped connection is never retried by the transport and every request
// counts once.
func noKeepAlive(t *testing.T) *http.Client {
	t.Helper()
	tr := &http.Transport{DisableKeepAlives: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// send makes a Toll API call and returns the status, or the transport's
// error when no answer came.
func send(t *testing.T, hc *http.Client, method, u, token string, body any) (int, error) {
	t.Helper()
	var data []byte
	if body != nil {
		var err error
		if data, err = json.Marshal(body); err != nil {
			t.Fatal(err)
		}
	}
	req, err := http.NewRequest(method, u, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

func TestFaultLoseResponse(t *testing.T) {
	srv := start(t, simulator.Config{})
	tok := entryToken(t, srv)
	hc := noKeepAlive(t)
	mrn := mustSucceed(t, roadResult(t, srv, http.MethodPost, "transport", "", tok, transportBody("AB12345")))

	t.Run("LoseResponses 1 loses exactly the next write's answer", func(t *testing.T) {
		srv.SetFaults(simulator.Faults{LoseResponses: 1})
		t.Cleanup(func() { srv.SetFaults(simulator.Faults{}) })
		// Reads are not writes: they keep their answers and the count.
		if code, err := send(t, hc, http.MethodGet, road(srv, "test-auth"), tok, nil); err != nil || code != http.StatusOK {
			t.Fatalf("test-auth: %d, %v", code, err)
		}
		id := uuid.NewString()
		if code, err := send(t, hc, http.MethodPost, presentURL(srv), tok, presentation(id, "NO351001", mrn)); err == nil {
			t.Fatalf("presentation answered %d; want the connection dropped", code)
		}
		if n := srv.Stats().Presentations(mrn); n != 1 {
			t.Fatalf("Presentations = %d, want 1: the lost answer's request was processed", n)
		}
		// The retry of a client that knows its requestId is refused as a
		// reuse, and answered.
		a := call(t, http.MethodPost, presentURL(srv), tok, presentation(id, "NO351001", mrn))
		if got := fieldErrors(t, a); len(got) != 1 || got[0] != "requestId: requestId already used" {
			t.Errorf("retry: %q", got)
		}
		if n := srv.Stats().Presentations(mrn); n != 1 {
			t.Errorf("Presentations = %d after the retry, want 1", n)
		}
	})

	t.Run("LoseResponseRate 1 processes road writes without answering", func(t *testing.T) {
		srv.SetFaults(simulator.Faults{LoseResponseRate: 1})
		t.Cleanup(func() { srv.SetFaults(simulator.Faults{}) })
		if code, err := send(t, hc, http.MethodPost, road(srv, "house-consignment"), tok, houseBody("HWB-LOST", "MAWB-1")); err == nil {
			t.Fatalf("create answered %d; want the connection dropped", code)
		}
		if code, err := send(t, hc, http.MethodGet, road(srv, "test-auth"), tok, nil); err != nil || code != http.StatusOK {
			t.Errorf("test-auth under LoseResponseRate: %d, %v", code, err)
		}
		// Refused writes are processed too, and lose their answer all the same.
		if code, err := send(t, hc, http.MethodPost, road(srv, "house-consignment"), tok, map[string]any{}); err == nil {
			t.Errorf("invalid create answered %d; want the connection dropped", code)
		}
		// A refused token is not processed, so its answer is not lost.
		if code, err := send(t, hc, http.MethodPost, road(srv, "house-consignment"), "bogus", houseBody("HWB-X", "MAWB-1")); err != nil || code != http.StatusUnauthorized {
			t.Errorf("bad token under LoseResponseRate: %d, %v; want 401", code, err)
		}
	})
	st := srv.Stats()
	if n := st.Submissions("HWB-LOST"); n != 1 {
		t.Errorf("Submissions(HWB-LOST) = %d, want 1: processed although unanswered", n)
	}
	var created bool
	for _, d := range st.Declarations() {
		created = created || d.DocumentNumber == "HWB-LOST" && d.Status == simulator.StatusSuccess && simulator.ValidMRN(d.MRN)
	}
	if !created {
		t.Error("the unanswered create made no declaration")
	}
	if n := st.Requests("POST /toll/api/movement/road/v2/house-consignment"); n != 3 {
		t.Errorf("house creates = %d, want 3", n)
	}
}

func TestFaultReset(t *testing.T) {
	srv := start(t, simulator.Config{})
	tok := entryToken(t, srv)
	hc := noKeepAlive(t)
	mrn := mustSucceed(t, roadResult(t, srv, http.MethodPost, "transport", "", tok, transportBody("AB12345")))
	srv.SetFaults(simulator.Faults{ResetRate: 1})

	if code, err := send(t, hc, http.MethodPost, presentURL(srv), tok, presentation(uuid.NewString(), "NO351001", mrn)); err == nil {
		t.Errorf("presentation answered %d; want the connection dropped", code)
	}
	if code, err := send(t, hc, http.MethodPost, road(srv, "house-consignment"), tok, houseBody("HWB-RESET", "MAWB-1")); err == nil {
		t.Errorf("create answered %d; want the connection dropped", code)
	}
	// Before authentication, and for reads as well.
	if code, err := send(t, hc, http.MethodGet, road(srv, "test-auth"), "", nil); err == nil {
		t.Errorf("test-auth answered %d; want the connection dropped", code)
	}
	// The token endpoints are not Toll API calls.
	maskinportenToken(t, srv, kidGrant(t, srv, scopeRoad))

	srv.SetFaults(simulator.Faults{})
	st := srv.Stats()
	if st.Presentations(mrn) != 0 || st.Submissions("HWB-RESET") != 0 {
		t.Errorf("reset calls were processed: %d presentations, %d submissions", st.Presentations(mrn), st.Submissions("HWB-RESET"))
	}
	for route, want := range map[string]int{
		simulator.RoutePresentation:                         1,
		"POST /toll/api/movement/road/v2/house-consignment": 1,
		"GET /toll/api/movement/road/v2/test-auth":          1,
	} {
		if n := st.Requests(route); n != want {
			t.Errorf("Requests(%s) = %d, want %d", route, n, want)
		}
	}
	if a := call(t, http.MethodGet, roadQuery(srv, "entry/status/"+mrn), tok, nil); a.body["validEntry"] != false {
		t.Errorf("a reset presentation entered the goods: %s", a.raw)
	}
}
