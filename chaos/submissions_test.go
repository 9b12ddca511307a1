package chaos

import (
	"encoding/json"
	"testing"

	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/samples"
)

// template is a sample submission to make variants of.
type template struct {
	body []byte
}

// houseTemplate is samples/road/03-house.json.
func houseTemplate(t *testing.T) template {
	t.Helper()
	return sampleTemplate(t, "03-house.json")
}

func sampleTemplate(t *testing.T, name string) template {
	t.Helper()
	all, err := samples.Load(contract.KindRoad)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range all {
		if s.Name == name {
			return template{body: s.Body}
		}
	}
	t.Fatalf("sample road/%s is missing", name)
	return template{}
}

// render gives the house its own id, transport document number and
// metadata.
func (tm template) render(t *testing.T, id, docNumber, variant string) []byte {
	t.Helper()
	return tm.edit(t, func(sub map[string]any) {
		sub["id"] = id
		sub["metadata"] = map[string]string{"variant": variant}
		house := sub["declaration"].(map[string]any)["consignmentHouseLevel"].(map[string]any)
		house["transportDocumentHouseLevel"].(map[string]any)["documentNumber"] = docNumber
	})
}

// edit decodes the template, lets change alter it and encodes it again.
func (tm template) edit(t *testing.T, change func(map[string]any)) []byte {
	t.Helper()
	var sub map[string]any
	if err := json.Unmarshal(tm.body, &sub); err != nil {
		t.Fatal(err)
	}
	change(sub)
	b, err := json.Marshal(sub)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// poison is every kind of malformed message a producer can get onto a
// road subject the worker consumes (digitoll.submit.road.*): each must be
// dead-lettered with reason malformed, and those with a readable id and a
// valid tenant get a dead-lettered result. A subject with more tokens is
// not consumed by anyone and so is no test of the worker.
func poison(t *testing.T) []submission {
	t.Helper()
	tmpl := houseTemplate(t)
	subject := contract.SubmitSubject(contract.KindRoad, contract.DefaultTenant)
	valid := func(id, doc string, change func(map[string]any)) []byte {
		return tmpl.edit(t, func(sub map[string]any) {
			sub["id"] = id
			house := sub["declaration"].(map[string]any)["consignmentHouseLevel"].(map[string]any)
			house["transportDocumentHouseLevel"].(map[string]any)["documentNumber"] = doc
			change(sub)
		})
	}
	// docNumber is read back from the body, so that the checks can tell
	// that Toll never saw it.
	docOf := func(body []byte) string {
		var v struct {
			Declaration struct {
				House struct {
					Doc struct {
						Number string `json:"documentNumber"`
					} `json:"transportDocumentHouseLevel"`
				} `json:"consignmentHouseLevel"`
			} `json:"declaration"`
		}
		if json.Unmarshal(body, &v) != nil {
			return ""
		}
		return v.Declaration.House.Doc.Number
	}
	withID := func(id, note string, body []byte) submission {
		return submission{id: id, subject: subject, body: body, docNumber: docOf(body),
			want: contract.StatusDeadLettered, dlqReason: "malformed", note: note}
	}
	withoutID := func(note string, body []byte) submission {
		return submission{subject: subject, body: body, docNumber: docOf(body), dlqReason: "malformed", note: note}
	}
	return []submission{
		withoutID("bad JSON", []byte(`{"id": "poison-bad-json", "operation": "create",`)),
		withoutID("not JSON at all", []byte("HWB-0001;create;house-consignment")),
		withoutID("empty body", []byte{}),
		withoutID("JSON array", []byte(`[{"id":"poison-array"}]`)),
		withoutID("missing id", valid("x", "HWB-POISON-NOID", func(s map[string]any) { delete(s, "id") })),
		withoutID("id with a space", valid("poison id", "HWB-POISON-SPACE", func(map[string]any) {})),
		withID("poison-unknown-field", "unknown field mnr",
			valid("poison-unknown-field", "HWB-POISON-UNKNOWN", func(s map[string]any) { s["mnr"] = "25NO4TU2HUD59UCBT8" })),
		withID("poison-bad-level", "bad level",
			valid("poison-bad-level", "HWB-POISON-LEVEL", func(s map[string]any) { s["level"] = "pallet" })),
		withID("poison-no-operation", "missing operation",
			valid("poison-no-operation", "HWB-POISON-OP", func(s map[string]any) { delete(s, "operation") })),
		withID("poison-entry-fields", "entry fields in a road message",
			valid("poison-entry-fields", "HWB-POISON-ENTRY", func(s map[string]any) {
				s["presentation"] = map[string]string{"customsOfficeOfPresentation": "NO351001"}
			})),
		withID("poison-create-with-mrn", "create carrying an MRN",
			valid("poison-create-with-mrn", "HWB-POISON-MRN", func(s map[string]any) { s["mrn"] = "25NO4TU2HUD59UCBT8" })),
		withID("poison-declaration-array", "declaration not an object",
			valid("poison-declaration-array", "HWB-POISON-ARRAY", func(s map[string]any) { s["declaration"] = []int{1, 2} })),
		withID("poison-update-without-mrn", "update without mrn or after",
			valid("poison-update-without-mrn", "HWB-POISON-UPDATE", func(s map[string]any) { s["operation"] = "update" })),
		// Not JSON as a whole, so the worker reads no id from it (see
		// worker.lenientID) and it gets no result.
		withoutID("data after the object",
			append(valid("poison-trailing-data", "HWB-POISON-TRAIL", func(map[string]any) {}), []byte(` {"again":true}`)...)),
		{
			// The subject's tenant token is no tenant name: dead-lettered
			// under _invalid with no result, as there is no tenant to
			// answer.
			subject:   contract.SubmitSubject(contract.KindRoad, "Bad_Tenant"),
			body:      valid("poison-bad-tenant", "HWB-POISON-TENANT", func(map[string]any) {}),
			dlqReason: "malformed",
			note:      "tenant token Bad_Tenant",
		},
	}
}
