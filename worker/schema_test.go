package worker

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/handlers"
	"github.com/digitoll/digitoll-worker/internal/schematest"
)

// Every kind of result the worker builds, as it goes on the wire, matches
// the published result schema (docs/schemas/result.schema.json).
func TestResultsMatchTheResultSchema(t *testing.T) {
	schema := schematest.Compile(t, schematest.Result)
	received := time.Date(2025, 1, 15, 8, 5, 0, 0, time.FixedZone("CET", 3600))
	done := received.Add(3 * time.Second)
	house, err := contract.ParseSubmission(contract.KindRoad, []byte(`{"id":"acme-HWB-1","operation":"create","level":"house-consignment",
		"declaration":{},"metadata":{"shipmentRef":"S-1234"}}`))
	if err != nil {
		t.Fatal(err)
	}
	parsed := delivered{kind: contract.KindRoad, tenant: "acme", id: house.ID, sub: house,
		subject: contract.SubmitSubject(contract.KindRoad, "acme"), seq: 7, delivery: 1, receivedAt: received}
	unparsed := delivered{kind: contract.KindEntry, tenant: "acme", id: "acme-present-1",
		subject: contract.SubmitSubject(contract.KindEntry, "acme"), seq: 8, delivery: 3, receivedAt: received}

	results := map[string]contract.Result{
		"accepted": outcomeResult(parsed, handlers.Outcome{Status: contract.StatusAccepted, MRN: "25NO4TU2HUD59UCBT8",
			IncompleteDocumentation: []string{"transportDocumentHouseLevel"}}, "1bdf0f33-f42e-48e2-b334-3944722e3fe5", done),
		"rejected": outcomeResult(parsed, handlers.Outcome{Status: contract.StatusRejected,
			Errors: []contract.FieldError{{Path: "documentIssueDate", Message: "must not be null"}}}, "", done),
		"rejected without errors": outcomeResult(parsed, handlers.Outcome{Status: contract.StatusRejected, Note: "FAILURE without errors"}, "r-1", done),
		"dead-lettered":           deadLetterResult(parsed, reasonPermanentHTTP, "HTTP 403 from Toll", "r-2", done),
		"dead-lettered unparsed":  deadLetterResult(unparsed, reasonMalformed, "presentation.customsOfficeOfPresentation is missing", "", done),
	}
	for name, r := range results {
		msg, err := resultMsg(context.Background(), r, nats.Header{"Digitoll-Trace": {"x"}})
		if err != nil {
			t.Fatal(err)
		}
		if err := schematest.Validate(schema, msg.Data); err != nil {
			t.Errorf("%s result %s does not match the schema: %v", name, msg.Data, err)
		}
		if got := msg.Header.Get(contract.HeaderResultStatus); got != string(r.Status) {
			t.Errorf("%s: %s is %q, want %q", name, contract.HeaderResultStatus, got, r.Status)
		}
	}
}
