package worker

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/digitoll/digitoll-worker/auth"
	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/handlers"
	"github.com/digitoll/digitoll-worker/internal/natstest"
	"github.com/digitoll/digitoll-worker/objectfiles"
	"github.com/digitoll/digitoll-worker/simulator"
	"github.com/digitoll/digitoll-worker/toll"
)

// documentHandler is a document handler reading e's Object Store and
// uploading to a simulator with the real token chain.
func documentHandler(t *testing.T, e *env) (*handlers.Document, *simulator.Server) {
	t.Helper()
	key, err := simulator.WriteDemoKey(t.TempDir(), "worker-test")
	if err != nil {
		t.Fatal(err)
	}
	sim, err := simulator.Start(simulator.Config{
		Clients: []simulator.Client{key.Client(toll.Scope(false, toll.DocumentV2().ScopeBase))},
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
	return &handlers.Document{
		Toll:  &toll.Client{BaseURL: sim.TollBaseURL(), Tokens: tokens, Timeout: 30 * time.Second},
		Files: objectfiles.New(e.js),
		Retry: handlers.RetryPolicy{Initial: 5 * time.Millisecond, Max: 50 * time.Millisecond, MaxElapsed: 10 * time.Second},
	}, sim
}

func uploadRequest(object string) handlers.Request {
	return handlers.Request{
		Tenant: "default", Kind: contract.KindDocument, Delivery: 1, ReceivedAt: time.Now(),
		Submission: &contract.Submission{ID: "doc-" + object, Operation: contract.OpUpload, Document: &contract.Document{
			DeclarationID: "123456789-01092023-1", DocumentType: "faktura", Filename: "scan.pdf", Object: object,
		}},
	}
}

// A 9.9 MiB file goes from the Object Store to Toll byte for byte.
func TestObjectUploadIsByteIdentical(t *testing.T) {
	e := newEnv(t)
	h, sim := documentHandler(t, e)
	const size = 99 * toll.MaxDocumentSize / 100
	sum := natstest.PutObject(t, e.js, "default/big/scan.pdf", 9, size)

	out, err := h.Handle(testCtx(t), uploadRequest("default/big/scan.pdf"))
	if err != nil || out.Status != contract.StatusAccepted {
		t.Fatalf("%+v, %v; want accepted", out, err)
	}
	docs := sim.Documents()
	if len(docs) != 1 || docs[0].Size != size || docs[0].SHA256 != sum {
		t.Fatalf("simulator holds %+v, want %d bytes with sha256 %s", docs, size, sum)
	}
	if out.RequestID != docs[0].DocumentID {
		t.Errorf("outcome %+v, want the simulator's document id %s", out, docs[0].DocumentID)
	}
}

func documentBody(id, object string) []byte {
	return fmt.Appendf(nil, `{"id":%q,"operation":"upload","document":{"declarationId":"123456789-01092023-1","documentType":"faktura","filename":"scan.pdf","object":%q}}`, id, object)
}

// Submissions naming objects that are not stored are the producer's
// mistake, not an outage: they wait for their object a bounded time and
// are then dead-lettered naming it, while the document kind is never
// paused and other documents go through, one whose object is stored late
// included.
func TestMissingObjectsNeverPauseTheKind(t *testing.T) {
	e := newEnv(t)
	h, sim := documentHandler(t, e)
	h.MissingFileGrace = 1500 * time.Millisecond
	const threshold = 2
	obs := &fakeObserver{}
	r := runWorker(t, e.js, Config{
		Observer:        obs,
		Handlers:        map[contract.Kind]Handler{contract.KindDocument: probedBy(h)},
		Concurrency:     8,
		RetryDelay:      func(int) time.Duration { return 50 * time.Millisecond },
		OutageThreshold: threshold,
		ProbeInterval:   50 * time.Millisecond,
		PauseFor:        5 * time.Second,
	})
	// Watch the kind's health for the whole test, as /readyz would.
	var everPaused atomic.Value
	watchCtx, stopWatching := context.WithCancel(context.Background())
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			if err := r.w.KindHealth(contract.KindDocument); err != nil && everPaused.Load() == nil {
				everPaused.Store(err.Error())
			}
			select {
			case <-watchCtx.Done():
				return
			case <-tick.C:
			}
		}
	}()

	subject := contract.SubmitSubject(contract.KindDocument, contract.DefaultTenant)
	const missing = 5
	for i := range missing {
		submit(t, e.js, subject, "", documentBody(fmt.Sprintf("missing-%d", i), fmt.Sprintf("default/missing/%d.pdf", i)), nil)
	}
	submit(t, e.js, subject, "", documentBody("late", "default/late/scan.pdf"), nil)
	// Many more failures in a row than the threshold, then the late
	// object arrives and a good document is sent.
	retriedMissing := func() int {
		_, events := obs.snapshot()
		n := 0
		for _, ev := range events {
			if ev == "retried document/"+contract.DefaultTenant+" "+CauseMissingObject {
				n++
			}
		}
		return n
	}
	eventually(t, 20*time.Second, "the missing objects to be retried", func() bool {
		return retriedMissing() >= 3*threshold
	})
	natstest.PutObject(t, e.js, "default/late/scan.pdf", 2, 1000)
	natstest.PutObject(t, e.js, "default/good/scan.pdf", 3, 1000)
	submit(t, e.js, subject, "", documentBody("good", "default/good/scan.pdf"), nil)

	results := map[string]contract.Result{}
	for _, m := range collect(t, e.js, contract.StreamResults, contract.ResultSubject(contract.KindDocument, contract.DefaultTenant), missing+2, 30*time.Second) {
		res := decodeResult(t, m)
		results[res.ID] = res
	}
	stopWatching()
	<-watched
	if msg := everPaused.Load(); msg != nil {
		t.Errorf("the document kind was unhealthy: %v", msg)
	}
	for _, id := range []string{"late", "good"} {
		if results[id].Status != contract.StatusAccepted {
			t.Errorf("%s: %+v, want accepted", id, results[id])
		}
	}
	for i := range missing {
		id := fmt.Sprintf("missing-%d", i)
		res := results[id]
		if res.Status != contract.StatusDeadLettered || !strings.Contains(res.Note, fmt.Sprintf("default/missing/%d.pdf", i)) || res.Attempts < threshold {
			t.Errorf("%s: %+v, want dead-lettered after retries, naming its object", id, res)
		}
	}
	for _, m := range collect(t, e.js, contract.StreamDLQ, contract.SubjectsDLQ, missing, 10*time.Second) {
		if got := m.Headers().Get(contract.HeaderDLQReason); got != reasonMalformed {
			t.Errorf("dead letter reason %q, want %q (%s)", got, reasonMalformed, m.Headers().Get(contract.HeaderDLQError))
		}
	}
	if consumerPaused(t, e, contract.KindDocument) {
		t.Error("the document consumer is paused on the server")
	}
	if docs := sim.Documents(); len(docs) != 2 {
		t.Errorf("Toll received %d documents, want the late and the good one", len(docs))
	}
}
