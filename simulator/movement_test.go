package simulator_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/digitoll/digitoll-worker/simulator"
)

func TestCreateSucceedsAfterValidationDelay(t *testing.T) {
	const delay = 50 * time.Millisecond
	srv := start(t, simulator.Config{ValidationDelay: delay})
	tok := roadToken(t, srv)

	posted := time.Now()
	id := submit(t, http.MethodPost, road(srv, "house-consignment"), tok, houseBody("HWB-0001", "MAWB-0001"))
	statusURL := roadQuery(srv, "house-consignment/validation-status/"+id)
	first := call(t, http.MethodGet, statusURL, tok, nil)
	// The simulator's clock read at the poll came before this one, so if
	// less than the delay has passed here, validation cannot be done.
	if time.Since(posted) < delay && first.status != http.StatusNotFound {
		t.Errorf("validation-status before the delay: %d %s, want 404", first.status, first.raw)
	}

	a := result(t, statusURL, tok)
	mrn := mustSucceed(t, a)
	yy := time.Now().UTC().Format("06")
	if !regexp.MustCompile(`^` + yy + `NO[A-Z0-9]{14}$`).MatchString(mrn) {
		t.Errorf("MRN %q does not look like %sNO + 14 uppercase letters or digits", mrn, yy)
	}
	if a.str("requestId") != id {
		t.Errorf("requestId %q, want %q", a.str("requestId"), id)
	}
	if list, ok := a.body["incompleteDocumentationReasonList"].([]any); !ok || len(list) != 0 {
		t.Errorf("incompleteDocumentationReasonList: %s", a.raw)
	}
	if _, err := time.Parse("2006-01-02T15:04:05Z", a.str("notificationDate")); err != nil {
		t.Errorf("notificationDate %q: %v", a.str("notificationDate"), err)
	}
}

func TestValidationStatusNotFoundUntilReady(t *testing.T) {
	clk := &clock{}
	srv := start(t, simulator.Config{Now: clk.Now, ValidationDelay: time.Minute})
	tok := roadToken(t, srv)
	id := submit(t, http.MethodPost, road(srv, "master-consignment"), tok, masterBody("MAWB-0001"))
	statusURL := roadQuery(srv, "master-consignment/validation-status/"+id)
	if a := call(t, http.MethodGet, statusURL, tok, nil); a.status != http.StatusNotFound {
		t.Fatalf("before the delay: %d %s", a.status, a.raw)
	}
	clk.Advance(time.Minute)
	mustSucceed(t, call(t, http.MethodGet, statusURL, tok, nil))

	// A later delay applies to later writes only.
	srv.SetValidationDelay(0)
	id = submit(t, http.MethodPost, road(srv, "master-consignment"), tok, masterBody("MAWB-0002"))
	mustSucceed(t, call(t, http.MethodGet, roadQuery(srv, "master-consignment/validation-status/"+id), tok, nil))
}

func TestValidationErrors(t *testing.T) {
	srv := start(t, simulator.Config{})
	tok := roadToken(t, srv)
	const instant = "invalid ISO-8601 instant in UTC (yyyy-MM-ddTHH:mm:ssZ)"
	type fe struct{ field, err string }
	tests := []struct {
		name  string
		level string
		body  map[string]any
		want  []fe
	}{
		{
			"house: fractions, missing and blank fields", "house-consignment",
			set(set(set(houseBody("HWB-1", "MAWB-1"),
				"documentIssueDate", "2025-01-15T08:05:00.123Z"),
				"consignmentHouseLevel.goodsDescription", nil),
				"consignmentHouseLevel.transportDocumentHouseLevel.documentNumber", "  "),
			[]fe{
				{"consignmentHouseLevel.goodsDescription", "must not be null"},
				{"consignmentHouseLevel.transportDocumentHouseLevel.documentNumber", "must not be blank"},
				{"documentIssueDate", instant},
			},
		},
		{
			"house: missing consignee and master link", "house-consignment",
			set(set(houseBody("HWB-1", "MAWB-1"), "consignmentHouseLevel.consignee", nil), "consignmentHouseLevel.consignmentMasterLevel", nil),
			[]fe{
				{"consignmentHouseLevel.consignee", "must not be null"},
				{"consignmentHouseLevel.consignmentMasterLevel", "must not be null"},
			},
		},
		{
			"transport: empty object", "transport", map[string]any{},
			[]fe{
				{"activeBorderTransportMeans", "must not be null"},
				{"carrier", "must not be null"},
				{"customsOfficeOfFirstEntry", "must not be null"},
				{"documentIssueDate", "must not be null"},
				{"estimatedDateAndTimeOfArrival", "must not be null"},
			},
		},
		{
			"transport: local times and a date", "transport",
			set(set(set(transportBody("AB12345"),
				"estimatedDateAndTimeOfArrival", "2025-01-15T14:00:00+01:00"),
				"scheduledDateAndTimeOfArrival", "2025-01-15 14:00:00"),
				"documentIssueDate", "2025-01-15"),
			[]fe{
				{"documentIssueDate", instant},
				{"estimatedDateAndTimeOfArrival", instant},
				{"scheduledDateAndTimeOfArrival", instant},
			},
		},
		{
			"master: no consignment, number as date", "master-consignment",
			map[string]any{"documentIssueDate": 20250115},
			[]fe{
				{"consignmentMasterLevel", "must not be null"},
				{"documentIssueDate", instant},
			},
		},
		{
			"master: wrong types", "master-consignment",
			set(set(masterBody("MAWB-1"), "consignmentMasterLevel.transportDocumentMasterLevel.documentNumber", 42),
				"consignmentMasterLevel.transportDocumentMasterLevel.type", nil),
			[]fe{
				{"consignmentMasterLevel.transportDocumentMasterLevel.documentNumber", "must be a string"},
				{"consignmentMasterLevel.transportDocumentMasterLevel.type", "must not be null"},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := call(t, http.MethodPost, road(srv, tc.level), tok, tc.body)
			if a.status != http.StatusBadRequest {
				t.Fatalf("got %d %s, want 400", a.status, a.raw)
			}
			list, _ := a.body["validationErrors"].([]any)
			var got []fe
			for _, e := range list {
				m, _ := e.(map[string]any)
				f, _ := m["field"].(string)
				msg, _ := m["error"].(string)
				got = append(got, fe{f, msg})
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("validationErrors\n got %v\nwant %v", got, tc.want)
			}
		})
	}
}

func TestWriteRefused(t *testing.T) {
	srv := start(t, simulator.Config{})
	tok := roadToken(t, srv)
	house := road(srv, "house-consignment")

	send := func(method, u, contentType, body string) answer {
		req, err := http.NewRequest(method, u, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		return do(t, req)
	}
	valid := `{"documentIssueDate":"2025-01-15T08:00:00Z"}`
	tests := []struct {
		name        string
		method, url string
		contentType string
		body        string
		status      int
		field       string
	}{
		{"array body", http.MethodPost, house, "application/json", `[]`, 400, ""},
		{"malformed JSON", http.MethodPost, house, "application/json", `{"documentIssueDate":`, 400, ""},
		{"trailing data", http.MethodPost, house, "application/json", valid + `{}`, 400, ""},
		{"empty body", http.MethodPost, house, "application/json", ``, 400, ""},
		{"no content type", http.MethodPost, house, "", valid, 415, ""},
		{"form content type", http.MethodPost, house, "application/x-www-form-urlencoded", valid, 415, ""},
		{"too large", http.MethodPost, house, "application/json", `{"x":"` + strings.Repeat("a", 5<<20) + `"}`, 413, ""},
		{"malformed MRN on update", http.MethodPut, house + "/25NO123", "application/json", valid, 400, "mrn"},
		{"lowercase MRN on cancel", http.MethodDelete, house + "/25no4tu2hud59ucbt8", "application/json", valid, 400, "mrn"},
		{"cancel with a bad date", http.MethodDelete, house + "/25NO4TU2HUD59UCBT8", "application/json", `{"documentIssueDate":"2025-01-15T08:00:00.5Z"}`, 400, "documentIssueDate"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := send(tc.method, tc.url, tc.contentType, tc.body)
			if a.status != tc.status {
				t.Fatalf("got %d %.200s, want %d", a.status, a.raw, tc.status)
			}
			if tc.status != 400 {
				return
			}
			list, _ := a.body["validationErrors"].([]any)
			if len(list) == 0 {
				t.Fatalf("400 without validationErrors: %s", a.raw)
			}
			if first, _ := list[0].(map[string]any); first["field"] != tc.field {
				t.Errorf("field %v, want %q", first["field"], tc.field)
			}
		})
	}
	for _, d := range srv.Stats().Declarations() {
		if d.Status != simulator.StatusInvalid || d.RequestID != "" {
			t.Errorf("refused write recorded as %s with requestId %q", d.Status, d.RequestID)
		}
	}
}

func TestDuplicateDocumentNumber(t *testing.T) {
	srv := start(t, simulator.Config{})
	tok := roadToken(t, srv)
	mustSucceed(t, roadResult(t, srv, http.MethodPost, "house-consignment", "", tok, houseBody("HWB-0001", "MAWB-0001")))

	descs, paths := failureDescriptions(t, roadResult(t, srv, http.MethodPost, "house-consignment", "", tok, houseBody("HWB-0001", "MAWB-0001")))
	if !strings.Contains(descs[0], "Transport document number HWB-0001 is already in use") ||
		paths[0] != "consignmentHouseLevel.transportDocumentHouseLevel.documentNumber" {
		t.Errorf("FAILURE %v at %v", descs, paths)
	}
	// The number is in use per level: a master may carry it.
	mustSucceed(t, roadResult(t, srv, http.MethodPost, "master-consignment", "", tok, masterBody("HWB-0001")))
}

func TestUpdateAndCancel(t *testing.T) {
	srv := start(t, simulator.Config{})
	tok := roadToken(t, srv)
	mrn := mustSucceed(t, roadResult(t, srv, http.MethodPost, "house-consignment", "", tok, houseBody("HWB-0001", "MAWB-0001")))

	updated := set(houseBody("HWB-0001", "MAWB-0001"), "consignmentHouseLevel.goodsDescription", "brake pads")
	if got := mustSucceed(t, roadResult(t, srv, http.MethodPut, "house-consignment", mrn, tok, updated)); got != mrn {
		t.Errorf("update changed the MRN from %s to %s", mrn, got)
	}

	// An update may not take a number another declaration uses.
	mustSucceed(t, roadResult(t, srv, http.MethodPost, "house-consignment", "", tok, houseBody("HWB-0002", "MAWB-0001")))
	descs, _ := failureDescriptions(t, roadResult(t, srv, http.MethodPut, "house-consignment", mrn, tok, houseBody("HWB-0002", "MAWB-0001")))
	if !strings.Contains(descs[0], "already in use") {
		t.Errorf("update to a used number: %v", descs)
	}

	if got := mustSucceed(t, roadResult(t, srv, http.MethodDelete, "house-consignment", mrn, tok, map[string]any{"documentIssueDate": "2025-01-16T08:00:00Z"})); got != mrn {
		t.Errorf("cancel answered MRN %s, want %s", got, mrn)
	}
	descs, _ = failureDescriptions(t, roadResult(t, srv, http.MethodPut, "house-consignment", mrn, tok, updated))
	if !strings.Contains(descs[0], "cancelled") {
		t.Errorf("update after cancel: %v", descs)
	}
	descs, _ = failureDescriptions(t, roadResult(t, srv, http.MethodDelete, "house-consignment", mrn, tok, nil))
	if !strings.Contains(descs[0], "cancelled") {
		t.Errorf("second cancel: %v", descs)
	}
	// The cancelled declaration's number is free again.
	if got := mustSucceed(t, roadResult(t, srv, http.MethodPost, "house-consignment", "", tok, houseBody("HWB-0001", "MAWB-0001"))); got == mrn {
		t.Error("a new create reused the cancelled MRN")
	}

	t.Run("unknown MRN", func(t *testing.T) {
		descs, paths := failureDescriptions(t, roadResult(t, srv, http.MethodPut, "house-consignment", "25NOAAAAAAAAAAAAAA", tok, updated))
		if !strings.Contains(descs[0], "not a known") || paths[0] != "mrn" {
			t.Errorf("%v at %v", descs, paths)
		}
	})
	t.Run("MRN of another level", func(t *testing.T) {
		master := mustSucceed(t, roadResult(t, srv, http.MethodPost, "master-consignment", "", tok, masterBody("MAWB-0001")))
		failureDescriptions(t, roadResult(t, srv, http.MethodPut, "house-consignment", master, tok, updated))
	})
	t.Run("MRN of another client", func(t *testing.T) {
		other := x5cToken(t, srv, scopeRoad)
		mine := mustSucceed(t, roadResult(t, srv, http.MethodPost, "house-consignment", "", tok, houseBody("HWB-0003", "MAWB-0001")))
		failureDescriptions(t, roadResult(t, srv, http.MethodDelete, "house-consignment", mine, other, nil))
	})
}

func TestSimulatedFailures(t *testing.T) {
	srv := start(t, simulator.Config{})
	tok := roadToken(t, srv)
	tests := []struct {
		name, level string
		body        map[string]any
		path        string
	}{
		{"REJECT goods", "house-consignment", set(houseBody("HWB-1", "MAWB-1"), "consignmentHouseLevel.goodsDescription", simulator.TriggerRejectGoods), "consignmentHouseLevel.goodsDescription"},
		{"SIM-FAILURE nested", "house-consignment", set(houseBody("HWB-2", "MAWB-1"), "consignmentHouseLevel.consignor.address.city", simulator.TriggerFailure), "consignmentHouseLevel.consignor.address.city"},
		{"SIM-FAILURE in an array", "transport", transportBody("AB1", simulator.TriggerFailure), "consignmentMasterLevel[0].transportDocumentMasterLevel.documentNumber"},
		{"SIM-FAILURE as the number", "master-consignment", masterBody(simulator.TriggerFailure), "consignmentMasterLevel.transportDocumentMasterLevel.documentNumber"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			descs, paths := failureDescriptions(t, roadResult(t, srv, http.MethodPost, tc.level, "", tok, tc.body))
			if paths[0] != tc.path || !strings.Contains(descs[0], "simulator trigger") {
				t.Errorf("%v at %v, want path %s", descs, paths, tc.path)
			}
		})
	}
	// A failed create does not take the number.
	mustSucceed(t, roadResult(t, srv, http.MethodPost, "house-consignment", "", tok, houseBody("HWB-1", "MAWB-1")))
}

func TestValidationStatusIsolation(t *testing.T) {
	srv := start(t, simulator.Config{})
	tok := roadToken(t, srv)
	id := submit(t, http.MethodPost, road(srv, "house-consignment"), tok, houseBody("HWB-0001", "MAWB-0001"))
	mustSucceed(t, result(t, roadQuery(srv, "house-consignment/validation-status/"+id), tok))

	other := x5cToken(t, srv, scopeRoad+" "+scopeAir)
	tests := []struct {
		name, url, token string
	}{
		{"another client", roadQuery(srv, "house-consignment/validation-status/"+id), other},
		{"another level", roadQuery(srv, "master-consignment/validation-status/"+id), tok},
		{"transport level", roadQuery(srv, "transport/validation-status/"+id), tok},
		{"another API", srv.TollBaseURL() + "/movement/air/status/v1/house-consignment/validation-status/" + id, other},
		{"unknown requestId", roadQuery(srv, "house-consignment/validation-status/9f1c7a2e-3b4d-4e5f-8a6b-7c8d9e0f1a2b"), tok},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if a := call(t, http.MethodGet, tc.url, tc.token, nil); a.status != http.StatusNotFound {
				t.Errorf("got %d %s, want 404", a.status, a.raw)
			}
		})
	}
}

func TestStatusWithDescendants(t *testing.T) {
	srv := start(t, simulator.Config{})
	tok := roadToken(t, srv)
	transport := mustSucceed(t, roadResult(t, srv, http.MethodPost, "transport", "", tok, transportBody("AB12345", "MAWB-1", "MAWB-2")))
	master := mustSucceed(t, roadResult(t, srv, http.MethodPost, "master-consignment", "", tok, masterBody("MAWB-1")))
	house1 := mustSucceed(t, roadResult(t, srv, http.MethodPost, "house-consignment", "", tok, houseBody("HWB-1", "MAWB-1")))
	house2 := mustSucceed(t, roadResult(t, srv, http.MethodPost, "house-consignment", "", tok, houseBody("HWB-2", "MAWB-1")))
	mustSucceed(t, roadResult(t, srv, http.MethodDelete, "house-consignment", house2, tok, nil))

	a := call(t, http.MethodGet, roadQuery(srv, "transport/"+transport+"/status-with-descendants"), tok, nil)
	if a.status != http.StatusOK || a.str("mrn") != transport || a.str("identificationNumber") != "AB12345" {
		t.Fatalf("transport tree: %d %s", a.status, a.raw)
	}
	masters, _ := a.body["masterConsignments"].([]any)
	if len(masters) != 2 {
		t.Fatalf("masterConsignments: %s", a.raw)
	}
	m1, _ := masters[0].(map[string]any)
	m2, _ := masters[1].(map[string]any)
	if m1["mrn"] != master || m1["status"] != "ACCEPTED" || m1["grossMass"] != float64(1200) {
		t.Errorf("first master: %v", m1)
	}
	if m2["documentNumber"] != "MAWB-2" || m2["status"] != "NOT_RECEIVED" {
		t.Errorf("second master: %v", m2)
	}
	houses, _ := m1["houseConsignments"].([]any)
	if len(houses) != 1 {
		t.Fatalf("houses (the cancelled one left out): %v", houses)
	}
	if h, _ := houses[0].(map[string]any); h["mrn"] != house1 || h["documentNumber"] != "HWB-1" || h["grossMass"] != 120.5 {
		t.Errorf("house: %v", h)
	}

	a = call(t, http.MethodGet, roadQuery(srv, "master-consignment/"+master+"/status-with-descendants"), tok, nil)
	if a.status != http.StatusOK || a.str("mrn") != master || a.str("documentNumber") != "MAWB-1" {
		t.Errorf("master tree: %d %s", a.status, a.raw)
	}
	if a := call(t, http.MethodGet, roadQuery(srv, "master-consignment/"+transport+"/status-with-descendants"), tok, nil); a.status != http.StatusNotFound {
		t.Errorf("transport MRN as master: %d", a.status)
	}
	if a := call(t, http.MethodGet, roadQuery(srv, "house-consignment/"+house1+"/status-with-descendants"), tok, nil); a.status != http.StatusNotFound {
		t.Errorf("house tree: %d", a.status)
	}
	st := srv.Stats()
	if n := st.Requests("GET /toll/api/movement/road/status/v2/transport/{mrn}/status-with-descendants"); n != 1 {
		t.Errorf("transport tree requests = %d, want 1", n)
	}
	if n := st.Requests("GET /toll/api/movement/road/status/v2/master-consignment/{mrn}/status-with-descendants"); n != 2 {
		t.Errorf("master tree requests = %d, want 2", n)
	}
}

func TestEntryStatus(t *testing.T) {
	srv := start(t, simulator.Config{})
	tok := roadToken(t, srv)
	mrn := mustSucceed(t, roadResult(t, srv, http.MethodPost, "transport", "", tok, transportBody("AB12345")))
	u := roadQuery(srv, "entry/status/"+mrn)
	if a := call(t, http.MethodGet, u, tok, nil); a.status != 200 || a.body["validEntry"] != false || a.str("mrn") != mrn {
		t.Errorf("before entry: %d %s", a.status, a.raw)
	}
	if !srv.MarkEntered(mrn, "NO372001") || srv.MarkEntered("25NOAAAAAAAAAAAAAA", "NO372001") {
		t.Fatal("MarkEntered did not know which MRNs exist")
	}
	if a := call(t, http.MethodGet, u, tok, nil); a.body["validEntry"] != true || a.str("customsOfficeOfEntry") != "NO372001" || a.str("timeOfEntry") == "" {
		t.Errorf("after entry: %d %s", a.status, a.raw)
	}
	if a := call(t, http.MethodGet, roadQuery(srv, "entry/status/25NOAAAAAAAAAAAAAA"), tok, nil); a.status != 404 {
		t.Errorf("unknown MRN: %d", a.status)
	}
	if a := call(t, http.MethodGet, roadQuery(srv, "entry/status/nope"), tok, nil); a.status != 400 {
		t.Errorf("malformed MRN: %d", a.status)
	}
}

func TestAirAPI(t *testing.T) {
	srv := start(t, simulator.Config{})
	tok := x5cToken(t, srv, scopeAir)
	air := srv.TollBaseURL() + "/movement/air/v1/"
	id := submit(t, http.MethodPost, air+"house-consignment", tok, houseBody("HWB-0001", "MAWB-0001"))
	mrn := mustSucceed(t, result(t, srv.TollBaseURL()+"/movement/air/status/v1/house-consignment/validation-status/"+id, tok))

	// Road and air keep apart: the same number is free on road, and the
	// air MRN is unknown there.
	roadTok := x5cToken(t, srv, scopeRoad)
	mustSucceed(t, roadResult(t, srv, http.MethodPost, "house-consignment", "", roadTok, houseBody("HWB-0001", "MAWB-0001")))
	failureDescriptions(t, roadResult(t, srv, http.MethodPut, "house-consignment", mrn, roadTok, houseBody("HWB-0001", "MAWB-0001")))

	st := srv.Stats()
	if n := st.Requests("POST /toll/api/movement/air/v1/house-consignment"); n != 1 {
		t.Errorf("air creates = %d, want 1", n)
	}
	if d := st.Declarations()[0]; d.API != "air" || d.MRN != mrn {
		t.Errorf("first declaration %+v", d)
	}
}

func TestStats(t *testing.T) {
	srv := start(t, simulator.Config{})
	tok := roadToken(t, srv)
	body := houseBody("HWB-0001", "MAWB-0001")
	mrn := mustSucceed(t, roadResult(t, srv, http.MethodPost, "house-consignment", "", tok, body))
	failureDescriptions(t, roadResult(t, srv, http.MethodPost, "house-consignment", "", tok, body))
	mustSucceed(t, roadResult(t, srv, http.MethodDelete, "house-consignment", mrn, tok, nil))
	call(t, http.MethodPost, road(srv, "house-consignment"), tok, set(houseBody("HWB-0001", "M"), "documentIssueDate", "today"))
	mustSucceed(t, roadResult(t, srv, http.MethodPost, "master-consignment", "", tok, masterBody("MAWB-0001")))
	mustSucceed(t, roadResult(t, srv, http.MethodPost, "transport", "", tok, transportBody("AB12345")))

	st := srv.Stats()
	for doc, want := range map[string]int{"HWB-0001": 4, "MAWB-0001": 1, "AB12345": 1, "HWB-9999": 0} {
		if got := st.Submissions(doc); got != want {
			t.Errorf("Submissions(%s) = %d, want %d", doc, got, want)
		}
	}
	if got := st.Requests("POST /toll/api/movement/road/v2/house-consignment"); got != 3 {
		t.Errorf("house creates = %d, want 3", got)
	}
	if got := st.Requests("DELETE /toll/api/movement/road/v2/house-consignment/{mrn}"); got != 1 {
		t.Errorf("house cancels = %d, want 1", got)
	}
	if got := st.Requests("GET /toll/api/movement/road/status/v2/house-consignment/validation-status/{requestId}"); got < 3 {
		t.Errorf("house status polls = %d, want at least 3", got)
	}

	decls := st.Declarations()
	type summary struct{ level, method, doc, status string }
	var got []summary
	for _, d := range decls {
		got = append(got, summary{d.Level, d.Method, d.DocumentNumber, d.Status})
		if d.ClientID != clientKid || len(d.Body) == 0 && d.Method != http.MethodDelete {
			t.Errorf("declaration %+v", d)
		}
	}
	want := []summary{
		{"house-consignment", "POST", "HWB-0001", "SUCCESS"},
		{"house-consignment", "POST", "HWB-0001", "FAILURE"},
		{"house-consignment", "DELETE", "HWB-0001", "SUCCESS"},
		{"house-consignment", "POST", "HWB-0001", "INVALID"},
		{"master-consignment", "POST", "MAWB-0001", "SUCCESS"},
		{"transport", "POST", "AB12345", "SUCCESS"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("declarations\n got %v\nwant %v", got, want)
	}
	if decls[0].MRN != mrn || decls[0].RequestID == "" || decls[1].MRN != "" {
		t.Errorf("MRNs and requestIds: %+v", decls[:2])
	}

	// The snapshot is a deep copy.
	decls[0].Body[0] = 'X'
	if srv.Stats().Declarations()[0].Body[0] == 'X' || st.Declarations()[0].Body[0] == 'X' {
		t.Error("changing a snapshot changed the simulator")
	}
	call(t, http.MethodPost, road(srv, "house-consignment"), tok, houseBody("HWB-0002", "MAWB-0001"))
	if st.Submissions("HWB-0002") != 0 || srv.Stats().Submissions("HWB-0002") != 1 {
		t.Error("an old snapshot changed, or a new one did not")
	}
}

func TestForgetDeclarations(t *testing.T) {
	srv := start(t, simulator.Config{})
	tok := roadToken(t, srv)
	const create = "POST /toll/api/movement/road/v2/house-consignment"
	body := houseBody("HWB-0001", "MAWB-0001")
	id := submit(t, http.MethodPost, road(srv, "house-consignment"), tok, body)
	statusURL := roadQuery(srv, "house-consignment/validation-status/"+id)
	mustSucceed(t, result(t, statusURL, tok))

	srv.ForgetDeclarations()
	st := srv.Stats()
	if n := len(st.Declarations()); n != 0 || st.Submissions("HWB-0001") != 0 {
		t.Errorf("after forgetting: %d declarations, %d submissions of HWB-0001, want none", n, st.Submissions("HWB-0001"))
	}
	if got := st.Requests(create); got != 1 {
		t.Errorf("house creates after forgetting = %d, want 1 (the counters stay)", got)
	}
	if got := call(t, http.MethodGet, statusURL, tok, nil); got.status != http.StatusNotFound {
		t.Errorf("validation-status of a forgotten write: %d %s, want 404", got.status, got.raw)
	}
	// The token still works and the document number is free again.
	mustSucceed(t, roadResult(t, srv, http.MethodPost, "house-consignment", "", tok, body))
	if got := srv.Stats().Requests(create); got != 2 {
		t.Errorf("house creates = %d, want 2", got)
	}
}

func TestConcurrentWrites(t *testing.T) {
	srv := start(t, simulator.Config{})
	tok := roadToken(t, srv)
	const workers, each = 6, 5
	var wg sync.WaitGroup
	ids := make(chan string, workers*each)
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				id, err := create(road(srv, "house-consignment"), tok, houseBody(fmt.Sprintf("HWB-%d-%d", w, i), "MAWB-1"))
				if err != nil {
					errs <- err
					continue
				}
				ids <- id
			}
		})
	}
	wg.Wait()
	close(ids)
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	seen := map[string]bool{}
	for id := range ids {
		mrn := mustSucceed(t, result(t, roadQuery(srv, "house-consignment/validation-status/"+id), tok))
		if seen[mrn] {
			t.Errorf("MRN %s given twice", mrn)
		}
		seen[mrn] = true
	}
	if n := len(srv.Stats().Declarations()); n != workers*each {
		t.Errorf("%d declarations, want %d", n, workers*each)
	}
}

// create posts a declaration from any goroutine and returns its requestId.
func create(u, token string, body any) (string, error) {
	data, err := json.Marshal(body)
	if err != nil {
		return "", err
	}
	req, err := http.NewRequest(http.MethodPost, u, bytes.NewReader(data))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var ans struct{ RequestID string }
	if err := json.NewDecoder(resp.Body).Decode(&ans); err != nil || resp.StatusCode != http.StatusAccepted {
		return "", fmt.Errorf("create: %d %v", resp.StatusCode, err)
	}
	return ans.RequestID, nil
}

func TestValidMRN(t *testing.T) {
	for mrn, want := range map[string]bool{
		"22NO4TU2HUD59UCBT8":  true,
		"25NOAAAAAAAAAAAAAA":  true,
		"25NO4TU2HUD59UCBT":   false,
		"25NO4TU2HUD59UCBT89": false,
		"25SE4TU2HUD59UCBT8":  false,
		"2XNO4TU2HUD59UCBT8":  false,
		"25NO4tu2HUD59UCBT8":  false,
		"25NO4TU2HUD59UCB-8":  false,
	} {
		if got := simulator.ValidMRN(mrn); got != want {
			t.Errorf("ValidMRN(%q) = %v, want %v", mrn, got, want)
		}
	}
}
