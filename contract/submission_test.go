package contract_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/digitoll/digitoll-worker/contract"
)

const houseCreate = `{"id":"acme-HWB-0001-create","operation":"create","level":"house-consignment",
 "after":"acme-MAWB-0001-create","declaration":{"documentIssueDate":"2025-01-15T08:05:00Z"},
 "metadata":{"shipmentRef":"S-1234"}}`

func TestParseSubmissionAcceptsTheContractExample(t *testing.T) {
	s, err := contract.ParseSubmission(contract.KindRoad, []byte(houseCreate))
	if err != nil {
		t.Fatal(err)
	}
	if s.ID != "acme-HWB-0001-create" || s.Operation != contract.OpCreate || s.Level != contract.LevelHouseConsignment ||
		s.After != "acme-MAWB-0001-create" || s.Metadata["shipmentRef"] != "S-1234" ||
		!strings.Contains(string(s.Declaration), "documentIssueDate") {
		t.Errorf("parsed %+v", s)
	}
}

func TestParseSubmissionRejectsMalformed(t *testing.T) {
	tests := []struct {
		name string
		kind contract.Kind
		body string
		want string
	}{
		{"not json", contract.KindRoad, `hello`, "not a submission JSON object"},
		{"array", contract.KindRoad, `[]`, "not a submission JSON object"},
		{"trailing data", contract.KindRoad, `{"id":"a","operation":"create","level":"transport","declaration":{}} {}`, "after the JSON object"},
		{"unknown field", contract.KindRoad, `{"id":"a","operation":"create","level":"transport","declaration":{},"mnr":"x"}`, "unknown field"},
		{"missing id", contract.KindRoad, `{"operation":"create","level":"transport","declaration":{}}`, "id is missing"},
		{"bad id", contract.KindRoad, `{"id":"a b","operation":"create","level":"transport","declaration":{}}`, "is not 1-128"},
		{"long id", contract.KindRoad, `{"id":"` + strings.Repeat("a", 129) + `","operation":"create","level":"transport","declaration":{}}`, "is not 1-128"},
		{"after itself", contract.KindRoad, `{"id":"a","after":"a","operation":"create","level":"transport","declaration":{}}`, "itself"},
		{"bad operation", contract.KindRoad, `{"id":"a","operation":"upsert","level":"transport","declaration":{}}`, "not create, update or delete"},
		{"missing level", contract.KindRoad, `{"id":"a","operation":"create","declaration":{}}`, "level is missing"},
		{"bad level", contract.KindAir, `{"id":"a","operation":"create","level":"pallet","declaration":{}}`, "is not transport"},
		{"missing declaration", contract.KindRoad, `{"id":"a","operation":"create","level":"transport"}`, "declaration is missing"},
		{"null declaration", contract.KindRoad, `{"id":"a","operation":"create","level":"transport","declaration":null}`, "declaration is missing"},
		{"declaration not object", contract.KindRoad, `{"id":"a","operation":"create","level":"transport","declaration":[1]}`, "not a JSON object"},
		{"create with mrn", contract.KindRoad, `{"id":"a","operation":"create","level":"transport","mrn":"25NO4TU2HUD59UCBT8","declaration":{}}`, "must not carry mrn"},
		{"update without mrn", contract.KindRoad, `{"id":"a","operation":"update","level":"transport","declaration":{}}`, "needs mrn"},
		{"bad mrn", contract.KindRoad, `{"id":"a","operation":"update","level":"transport","mrn":"123","declaration":{}}`, "18-character MRN"},
		{"entry without office", contract.KindEntry, `{"id":"a","operation":"present","mrn":"25NO4TU2HUD59UCBT8"}`, "customsOfficeOfPresentation"},
		{"document both", contract.KindDocument, `{"id":"a","operation":"upload","document":{"declarationId":"1","documentType":"faktura","filename":"a.pdf","content":"AA==","object":"o"}}`, "exactly one"},
		{"document neither", contract.KindDocument, `{"id":"a","operation":"upload","document":{"declarationId":"1","documentType":"faktura","filename":"a.pdf"}}`, "exactly one"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := contract.ParseSubmission(tt.kind, []byte(tt.body))
			if !errors.Is(err, contract.ErrMalformed) {
				t.Fatalf("err = %v, want ErrMalformed", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %q, want it to mention %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("err spans lines: %q", err)
			}
		})
	}
}

func TestDeleteNeedsNoDeclaration(t *testing.T) {
	_, err := contract.ParseSubmission(contract.KindRoad, []byte(`{"id":"a","operation":"delete","level":"transport","mrn":"25NO4TU2HUD59UCBT8"}`))
	if err != nil {
		t.Fatal(err)
	}
}

func TestSubjects(t *testing.T) {
	kind, tenant, err := contract.ParseSubmitSubject(contract.SubmitSubject(contract.KindAir, "acme-1"))
	if err != nil || kind != contract.KindAir || tenant != "acme-1" {
		t.Fatalf("round trip: %v %v %v", kind, tenant, err)
	}
	for _, bad := range []string{"digitoll.submit.road", "digitoll.submit.sea.acme", "digitoll.submit.road.ACME", "digitoll.result.road.acme", "digitoll.submit.road.acme.x"} {
		if _, _, err := contract.ParseSubmitSubject(bad); err == nil {
			t.Errorf("%s parsed", bad)
		}
	}
	if got := contract.MsgID("acme", "x-1"); got != "acme/x-1" {
		t.Errorf("MsgID = %q", got)
	}
}

// FuzzParseSubmission holds the parser to its promise: any input either
// parses into a submission that satisfies the contract's checks, or
// fails with ErrMalformed; it never panics.
func FuzzParseSubmission(f *testing.F) {
	f.Add([]byte(houseCreate))
	f.Add([]byte(`{"id":"a","operation":"delete","level":"transport","mrn":"25NO4TU2HUD59UCBT8"}`))
	f.Add([]byte(`{"id":"a","operation":"present","mrn":"25NO4TU2HUD59UCBT8","presentation":{"customsOfficeOfPresentation":"NO351001"}}`))
	f.Add([]byte(`{"id":"d","operation":"upload","document":{"declarationId":"123456789-01092023-1","documentType":"faktura","filename":"a.pdf","content":"AA=="}}`))
	f.Add([]byte(`{"id":1}`))
	f.Add([]byte(``))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, kind := range contract.Kinds() {
			s, err := contract.ParseSubmission(kind, data)
			if err != nil {
				if !errors.Is(err, contract.ErrMalformed) {
					t.Fatalf("error %v does not wrap ErrMalformed", err)
				}
				continue
			}
			if !contract.ValidID(s.ID) {
				t.Fatalf("accepted invalid id %q", s.ID)
			}
			if s.MRN != "" && !contract.ValidMRN(s.MRN) {
				t.Fatalf("accepted invalid mrn %q", s.MRN)
			}
		}
	})
}

// The kinds, ParseKind and the operation and level checks all come from
// one table: every kind parses, an unknown one is refused naming them
// all, and each kind's operations (and levels) are named when missing.
func TestKindTable(t *testing.T) {
	for _, k := range contract.Kinds() {
		if got, err := contract.ParseKind(string(k)); err != nil || got != k {
			t.Errorf("ParseKind(%q) = %q, %v", k, got, err)
		}
	}
	if _, err := contract.ParseKind("sea"); err == nil || !strings.Contains(err.Error(), "want one of road, air, entry, document") {
		t.Errorf("ParseKind(sea) = %v, want it to name every kind", err)
	}
	for _, tt := range []struct {
		kind contract.Kind
		body string
		want string
	}{
		{contract.KindRoad, `{"id":"a","level":"transport","declaration":{}}`, "operation is missing (want create, update or delete)"},
		{contract.KindAir, `{"id":"a","operation":"create","declaration":{}}`, "level is missing (want transport, master-consignment or house-consignment)"},
		{contract.KindEntry, `{"id":"a","mrn":"25NO4TU2HUD59UCBT8","presentation":{"customsOfficeOfPresentation":"NO351001"}}`, "operation is missing (want present)"},
		{contract.KindEntry, `{"id":"a","operation":"create","mrn":"25NO4TU2HUD59UCBT8","presentation":{"customsOfficeOfPresentation":"NO351001"}}`, `operation "create" is not present`},
		{contract.KindDocument, `{"id":"a","operation":"present","document":{"declarationId":"1","documentType":"faktura","filename":"a.pdf","object":"o"}}`, `operation "present" is not upload`},
		{contract.Kind("sea"), `{"id":"a","operation":"create"}`, `unknown kind "sea"`},
	} {
		_, err := contract.ParseSubmission(tt.kind, []byte(tt.body))
		if !errors.Is(err, contract.ErrMalformed) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s %s: err = %v, want it to mention %q", tt.kind, tt.body, err, tt.want)
		}
	}
}
