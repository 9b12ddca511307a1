package contract_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/internal/schematest"
	"github.com/digitoll/digitoll-worker/samples"
	"github.com/digitoll/digitoll-worker/toll"
)

// kindSchema is the part of the submission schema for one kind.
func kindSchema(kind contract.Kind) string {
	return schematest.Submission + "#/$defs/" + string(kind)
}

// Every sample, which the demo publishes and people copy, is a valid
// submission by the published schema as well as by the parser.
func TestSamplesMatchTheSubmissionSchema(t *testing.T) {
	whole := schematest.Compile(t, schematest.Submission)
	for _, kind := range contract.Kinds() {
		s := schematest.Compile(t, kindSchema(kind))
		list, err := samples.Load(kind)
		if err != nil {
			t.Fatal(err)
		}
		if len(list) == 0 {
			t.Errorf("no samples of kind %s", kind)
		}
		for _, sample := range list {
			if err := schematest.Validate(s, sample.Body); err != nil {
				t.Errorf("samples/%s/%s: %v", kind, sample.Name, err)
			}
			if err := schematest.Validate(whole, sample.Body); err != nil {
				t.Errorf("samples/%s/%s does not match the whole schema: %v", kind, sample.Name, err)
			}
		}
	}
}

// The schema and ParseSubmission agree: what one accepts the other
// accepts, what one refuses (dead-letters as malformed) the other refuses.
func TestSubmissionSchemaAgreesWithParser(t *testing.T) {
	const decl = `"declaration":{"documentIssueDate":"2025-01-15T08:05:00Z"}`
	tests := []struct {
		name  string
		kind  contract.Kind
		body  string
		valid bool
	}{
		{"create", contract.KindRoad, `{"id":"a-1","operation":"create","level":"house-consignment",` + decl + `,"metadata":{"ref":"S-1"}}`, true},
		{"create with mrn null and after", contract.KindAir, `{"id":"a-1","operation":"create","level":"master-consignment","mrn":null,"after":"a-0",` + decl + `}`, true},
		{"update with mrn", contract.KindRoad, `{"id":"a-1","operation":"update","level":"transport","mrn":"25NO4TU2HUD59UCBT8",` + decl + `}`, true},
		{"update with after", contract.KindRoad, `{"id":"a-1","operation":"update","level":"transport","after":"a-0",` + decl + `}`, true},
		{"delete without declaration", contract.KindRoad, `{"id":"a-1","operation":"delete","level":"transport","mrn":"25NO4TU2HUD59UCBT8"}`, true},
		{"present", contract.KindEntry, `{"id":"p-1","operation":"present","mrn":"25NO4TU2HUD59UCBT8","presentation":{"customsOfficeOfPresentation":"NO351001"}}`, true},
		{"present after", contract.KindEntry, `{"id":"p-1","operation":"present","after":"a-1","presentation":{"customsOfficeOfPresentation":"NO351001"}}`, true},
		{"upload inline", contract.KindDocument, `{"id":"d-1","operation":"upload","document":{"declarationId":"123456789-15012025-1","documentType":"faktura","filename":"x.PDF","content":"SGVsbG8="}}`, true},
		{"upload object", contract.KindDocument, `{"id":"d-1","operation":"upload","document":{"declarationId":"123456789-15012025-1","documentType":"fraktbrev","filename":"x.xlsx","contentType":"application/octet-stream","object":"acme/abc/x.xlsx"}}`, true},

		{"not an object", contract.KindRoad, `[]`, false},
		{"id missing", contract.KindRoad, `{"operation":"create","level":"transport",` + decl + `}`, false},
		{"id with a space", contract.KindRoad, `{"id":"a 1","operation":"create","level":"transport",` + decl + `}`, false},
		{"id too long", contract.KindRoad, `{"id":"` + strings.Repeat("x", 129) + `","operation":"create","level":"transport",` + decl + `}`, false},
		{"unknown field", contract.KindRoad, `{"id":"a-1","operation":"create","level":"transport","mnr":"25NO4TU2HUD59UCBT8",` + decl + `}`, false},
		{"movement operation present", contract.KindRoad, `{"id":"a-1","operation":"present","level":"transport",` + decl + `}`, false},
		{"level missing", contract.KindAir, `{"id":"a-1","operation":"create",` + decl + `}`, false},
		{"level unknown", contract.KindAir, `{"id":"a-1","operation":"create","level":"pallet",` + decl + `}`, false},
		{"update without mrn or after", contract.KindRoad, `{"id":"a-1","operation":"update","level":"transport",` + decl + `}`, false},
		{"create with mrn", contract.KindRoad, `{"id":"a-1","operation":"create","level":"transport","mrn":"25NO4TU2HUD59UCBT8",` + decl + `}`, false},
		{"create without declaration", contract.KindRoad, `{"id":"a-1","operation":"create","level":"transport"}`, false},
		{"declaration not an object", contract.KindRoad, `{"id":"a-1","operation":"create","level":"transport","declaration":[1]}`, false},
		{"movement with presentation", contract.KindRoad, `{"id":"a-1","operation":"create","level":"transport",` + decl + `,"presentation":{"customsOfficeOfPresentation":"NO351001"}}`, false},
		{"mrn of the wrong shape", contract.KindRoad, `{"id":"a-1","operation":"delete","level":"transport","mrn":"123"}`, false},
		{"after of the wrong shape", contract.KindRoad, `{"id":"a-1","operation":"delete","level":"transport","after":"a b"}`, false},
		{"metadata not strings", contract.KindRoad, `{"id":"a-1","operation":"create","level":"transport",` + decl + `,"metadata":{"n":1}}`, false},
		{"present without presentation", contract.KindEntry, `{"id":"p-1","operation":"present","mrn":"25NO4TU2HUD59UCBT8"}`, false},
		{"present without office", contract.KindEntry, `{"id":"p-1","operation":"present","mrn":"25NO4TU2HUD59UCBT8","presentation":{"customsOfficeOfPresentation":""}}`, false},
		{"present without mrn or after", contract.KindEntry, `{"id":"p-1","operation":"present","presentation":{"customsOfficeOfPresentation":"NO351001"}}`, false},
		{"present with a declaration", contract.KindEntry, `{"id":"p-1","operation":"present","mrn":"25NO4TU2HUD59UCBT8","presentation":{"customsOfficeOfPresentation":"NO351001"},` + decl + `}`, false},
		{"entry operation create", contract.KindEntry, `{"id":"p-1","operation":"create","mrn":"25NO4TU2HUD59UCBT8","presentation":{"customsOfficeOfPresentation":"NO351001"}}`, false},
		{"upload without document", contract.KindDocument, `{"id":"d-1","operation":"upload"}`, false},
		{"upload with content and object", contract.KindDocument, `{"id":"d-1","operation":"upload","document":{"declarationId":"123456789-15012025-1","documentType":"faktura","filename":"x.pdf","content":"SGVsbG8=","object":"o"}}`, false},
		{"upload with neither content nor object", contract.KindDocument, `{"id":"d-1","operation":"upload","document":{"declarationId":"123456789-15012025-1","documentType":"faktura","filename":"x.pdf"}}`, false},
		{"upload without filename", contract.KindDocument, `{"id":"d-1","operation":"upload","document":{"declarationId":"123456789-15012025-1","documentType":"faktura","content":"SGVsbG8="}}`, false},
		{"content not base64", contract.KindDocument, `{"id":"d-1","operation":"upload","document":{"declarationId":"123456789-15012025-1","documentType":"faktura","filename":"x.pdf","content":"not base64!"}}`, false},
		{"upload with a level", contract.KindDocument, `{"id":"d-1","operation":"upload","level":"transport","document":{"declarationId":"123456789-15012025-1","documentType":"faktura","filename":"x.pdf","object":"o"}}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			schemaErr := schematest.Validate(schematest.Compile(t, kindSchema(tt.kind)), []byte(tt.body))
			_, parseErr := contract.ParseSubmission(tt.kind, []byte(tt.body))
			if (schemaErr == nil) != tt.valid {
				t.Errorf("schema: valid %v, want %v (%v)", schemaErr == nil, tt.valid, schemaErr)
			}
			if (parseErr == nil) != tt.valid {
				t.Errorf("ParseSubmission: valid %v, want %v (%v)", parseErr == nil, tt.valid, parseErr)
			}
		})
	}
}

// What the document handler dead-letters before uploading (a declaration
// id of the wrong form, a document or file type Toll does not take), the
// schema refuses too, and it takes every type and file type Toll accepts.
func TestSubmissionSchemaKnowsTollsDocumentRules(t *testing.T) {
	s := schematest.Compile(t, kindSchema(contract.KindDocument))
	body := func(declID, docType, filename string) []byte {
		b, err := json.Marshal(map[string]any{"id": "d-1", "operation": "upload", "document": map[string]any{
			"declarationId": declID, "documentType": docType, "filename": filename, "object": "o"}})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, dt := range toll.DocumentTypes() {
		if err := schematest.Validate(s, body("123456789-15012025-1", dt, "x.pdf")); err != nil {
			t.Errorf("document type %s: %v", dt, err)
		}
	}
	for _, ft := range toll.FileTypes() {
		for _, name := range []string{"f." + ft, "F." + strings.ToUpper(ft)} {
			if err := schematest.Validate(s, body("123456789-15012025-1", "faktura", name)); err != nil {
				t.Errorf("file %s: %v", name, err)
			}
		}
	}
	refused := []struct{ declID, docType, filename string }{
		{"12345-15012025-1", "faktura", "x.pdf"},
		{"123456789-15012025-1", "kvittering", "x.pdf"},
		{"123456789-15012025-1", "faktura", "x.exe"},
		{"123456789-15012025-1", "faktura", "pdf"},
	}
	for _, r := range refused {
		_, typeErr := toll.DocumentContentType(r.filename, "")
		if toll.ValidDeclarationID(r.declID) && toll.ValidDocumentType(r.docType) && typeErr == nil {
			t.Fatalf("%+v: the handler would take it; the case tests nothing", r)
		}
		if schematest.Validate(s, body(r.declID, r.docType, r.filename)) == nil {
			t.Errorf("%+v: the schema takes what the handler dead-letters", r)
		}
	}
}

// Every field of contract.Result is described in the result schema, and
// every status the code knows is in its enum: a field or status added to
// the code without the contract fails here.
func TestResultSchemaCoversResult(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(schematest.Dir(t), schematest.Result))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Properties map[string]struct {
			Enum []string `json:"enum"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	rt := reflect.TypeFor[contract.Result]()
	for i := range rt.NumField() {
		name, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
		if _, ok := doc.Properties[name]; !ok {
			t.Errorf("result field %q (%s) is not in docs/schemas/%s", name, rt.Field(i).Name, schematest.Result)
		}
	}
	for _, st := range []contract.Status{contract.StatusAccepted, contract.StatusRejected, contract.StatusUnresolved, contract.StatusDeadLettered} {
		if !slices.Contains(doc.Properties["status"].Enum, string(st)) {
			t.Errorf("status %q is not in the result schema's enum", st)
		}
	}
	for _, k := range contract.Kinds() {
		if !slices.Contains(doc.Properties["kind"].Enum, string(k)) {
			t.Errorf("kind %q is not in the result schema's enum", k)
		}
	}
}

// The result schema refuses what is not a result, so that validating
// against it can fail.
func TestResultSchemaRefusesNonResults(t *testing.T) {
	s := schematest.Compile(t, schematest.Result)
	const ok = `{"id":"a-1","tenant":"default","kind":"road","status":"accepted","errors":[],"incompleteDocumentation":[],"attempts":1,"receivedAt":"2025-01-15T08:05:00Z","completedAt":"2025-01-15T08:05:03Z"}`
	if err := schematest.Validate(s, []byte(ok)); err != nil {
		t.Fatalf("the minimal result is refused: %v", err)
	}
	for name, body := range map[string]string{
		"unknown status":          strings.Replace(ok, `"accepted"`, `"done"`, 1),
		"errors missing":          strings.Replace(ok, `"errors":[],`, ``, 1),
		"errors null":             strings.Replace(ok, `"errors":[]`, `"errors":null`, 1),
		"dead-lettered, no note":  strings.Replace(ok, `"accepted"`, `"dead-lettered"`, 1),
		"receivedAt not a time":   strings.Replace(ok, `"2025-01-15T08:05:00Z"`, `"yesterday"`, 1),
		"tenant not a token":      strings.Replace(ok, `"default"`, `"Acme Ltd"`, 1),
		"attempts zero":           strings.Replace(ok, `"attempts":1`, `"attempts":0`, 1),
		"error without a message": strings.Replace(ok, `"errors":[]`, `"errors":[{"path":"x"}]`, 1),
	} {
		if schematest.Validate(s, []byte(body)) == nil {
			t.Errorf("%s: the schema takes %s", name, body)
		}
	}
}
