package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/dlq"
	"github.com/digitoll/digitoll-worker/samples"
)

// Every kind, end to end through NATS and the simulator: each accepted
// and each refused the way that kind is refused (Toll's 400 or FAILURE
// for movements and presentations; the worker's own checks, which
// dead-letter, for documents), and routing signals for what Toll accepted.
func TestEveryKindEndToEnd(t *testing.T) {
	f := startRun(t, map[string]string{
		"DIGITOLL_KINDS":            "road,air,entry,document",
		"DIGITOLL_ROUTING_INTERVAL": "200ms",
	})
	byName := map[string][]byte{}
	for _, k := range []contract.Kind{contract.KindRoad, contract.KindAir, contract.KindEntry, contract.KindDocument} {
		ss, err := samples.Load(k)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range ss {
			byName[string(k)+"/"+s.Name] = s.Body
		}
	}
	// A 10.1 MB file goes through the Object Store, like any file too
	// large for a message.
	store, err := f.js.ObjectStore(t.Context(), contract.BucketDocuments)
	if err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 10*1024*1024+100*1024)
	rand.Read(big)
	if _, err := store.Put(t.Context(), jetstream.ObjectMeta{Name: "default/big.pdf"}, bytes.NewReader(big)); err != nil {
		t.Fatal(err)
	}

	type sub struct {
		kind       contract.Kind
		id         string
		body       []byte
		want       contract.Status
		wantDetail string // in an error, the note or the DLQ reason
	}
	subs := []sub{
		{contract.KindRoad, "demo-truck-AB12345-create", byName["road/01-transport.json"], contract.StatusAccepted, ""},
		{contract.KindRoad, "demo-HWB-DEMO-0001-create", byName["road/03-house.json"], contract.StatusAccepted, ""},
		{contract.KindRoad, "demo-HWB-DEMO-0002-create", byName["road/04-house-bad-date.json"], contract.StatusRejected, "invalid ISO-8601"},
		{contract.KindAir, "demo-flight-DY1302-create", byName["air/01-flight.json"], contract.StatusAccepted, ""},
		{contract.KindAir, "air-house-refused", []byte(`{"id":"air-house-refused","operation":"create","level":"house-consignment",
			"declaration":{"documentIssueDate":"2025-01-15T06:05:00Z","consignmentHouseLevel":{"goodsDescription":"SIM-FAILURE"}}}`), contract.StatusRejected, "must not be null"},
		{contract.KindEntry, "demo-truck-AB12345-present", byName["entry/01-present-truck.json"], contract.StatusAccepted, ""},
		{contract.KindEntry, "present-unknown", []byte(`{"id":"present-unknown","operation":"present","mrn":"25NOAAAAAAAAAAAAAA",
			"presentation":{"customsOfficeOfPresentation":"NO372001"}}`), contract.StatusRejected, "mrn"},
		{contract.KindDocument, "demo-invoice-2025-0042-upload", byName["document/01-invoice.json"], contract.StatusAccepted, ""},
		{contract.KindDocument, "doc-exe", []byte(`{"id":"doc-exe","operation":"upload","document":{"declarationId":"123456789-15012025-1",
			"documentType":"faktura","filename":"setup.exe","content":"TVqQAAMAAAAEAAAA"}}`), contract.StatusDeadLettered, "unsupported"},
		{contract.KindDocument, "doc-big", []byte(`{"id":"doc-big","operation":"upload","document":{"declarationId":"123456789-15012025-1",
			"documentType":"faktura","filename":"big.pdf","contentType":"application/pdf","object":"default/big.pdf"}}`), contract.StatusDeadLettered, "too-large"},
	}
	for _, s := range subs {
		if s.body == nil {
			t.Fatalf("no body for %s", s.id)
		}
		f.publish(t, s.kind, s.id, s.body)
	}
	got := f.results(t, len(subs))
	for _, s := range subs {
		r, ok := got[s.id]
		switch {
		case !ok:
			t.Errorf("%s: no result", s.id)
			continue
		case r.Status != s.want || r.Kind != s.kind:
			t.Errorf("%s: %s %s, want %s %s (%+v)", s.id, r.Kind, r.Status, s.kind, s.want, r)
			continue
		}
		detail, _ := json.Marshal(r)
		if !strings.Contains(strings.ToLower(string(detail)), strings.ToLower(s.wantDetail)) {
			t.Errorf("%s: result does not mention %q: %s", s.id, s.wantDetail, detail)
		}
		if r.Status == contract.StatusAccepted && s.kind != contract.KindDocument && !contract.ValidMRN(r.MRN) {
			t.Errorf("%s: accepted without an MRN", s.id)
		}
	}

	// The DLQ holds exactly the two refused documents, with their reasons.
	reasons := map[string]string{}
	if err := dlq.List(t.Context(), f.js, dlq.Filter{}, func(e dlq.Entry) bool {
		reasons[e.ID] = e.Reason
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(reasons) != "map[doc-big:too-large doc-exe:unsupported]" {
		t.Errorf("DLQ holds %v", reasons)
	}

	// Toll routes the accepted road and air transports and the road house.
	cons, err := streamConsumer(t.Context(), f.js, contract.StreamRouting, "digitoll.routing.>", jetstream.DeliverAllPolicy)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	signals := 0
	if err := eachMsg(ctx, cons, func(jetstream.Msg) bool { signals++; return signals < 3 }); err != nil {
		t.Fatal(err)
	}
	if signals != 3 {
		t.Errorf("%d routing signals, want 3", signals)
	}
	f.stop(t)
}
