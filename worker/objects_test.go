package worker

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/digitoll/digitoll-worker/auth"
	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/failure"
	"github.com/digitoll/digitoll-worker/handlers"
	"github.com/digitoll/digitoll-worker/internal/natstest"
	"github.com/digitoll/digitoll-worker/simulator"
	"github.com/digitoll/digitoll-worker/toll"
)

// putObject stores size pseudo-random bytes (seeded) under name, streamed,
// and returns their SHA-256 (hex).
func putObject(t testing.TB, js jetstream.JetStream, name string, seed byte, size int64) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	store, err := js.ObjectStore(ctx, contract.BucketDocuments)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	src := io.TeeReader(io.LimitReader(rand.NewChaCha8([32]byte{seed}), size), h)
	if _, err := store.Put(ctx, jetstream.ObjectMeta{Name: name}, src); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func TestObjectFilesOpen(t *testing.T) {
	e := newEnv(t)
	files := NewObjectFiles(e.js)
	ctx := testCtx(t)
	sum := putObject(t, e.js, "default/x/a.pdf", 1, 300<<10+5)

	r, size, err := files.Open(ctx, "default/x/a.pdf")
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	n, err := io.Copy(h, r)
	if err != nil || r.Close() != nil {
		t.Fatalf("read: %v", err)
	}
	if size != 300<<10+5 || n != size || hex.EncodeToString(h.Sum(nil)) != sum {
		t.Errorf("read %d bytes of %d, sha256 %x; want %d bytes, %s", n, size, h.Sum(nil), 300<<10+5, sum)
	}

	if _, _, err := files.Open(ctx, "default/x/never-stored.pdf"); !errors.Is(err, handlers.ErrFileMissing) {
		t.Errorf("missing object: %v, want ErrFileMissing", err)
	}
	store, err := e.js.ObjectStore(ctx, contract.BucketDocuments)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Delete(ctx, "default/x/a.pdf"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := files.Open(ctx, "default/x/a.pdf"); !errors.Is(err, handlers.ErrFileMissing) {
		t.Errorf("deleted object: %v, want ErrFileMissing", err)
	}
}

func TestObjectFilesWithoutBucket(t *testing.T) {
	_, js := natstest.Start(t, "")
	if _, _, err := NewObjectFiles(js).Open(testCtx(t), "a.pdf"); failure.Classify(err) != failure.Config {
		t.Errorf("%v, want a configuration failure", err)
	}
}

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
		Files: NewObjectFiles(e.js),
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
	sum := putObject(t, e.js, "default/big/scan.pdf", 9, size)

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

func TestObjectReader(t *testing.T) {
	e := newEnv(t)
	files := NewObjectFiles(e.js)
	ctx := testCtx(t)
	store, err := e.js.ObjectStore(ctx, contract.BucketDocuments)
	if err != nil {
		t.Fatal(err)
	}
	readAll := func(name string) (int64, string, error) {
		r, size, err := files.Open(ctx, name)
		if err != nil {
			return 0, "", err
		}
		defer r.Close()
		h := sha256.New()
		n, err := io.Copy(h, r)
		if err == nil && n != size {
			err = fmt.Errorf("read %d bytes of %d", n, size)
		}
		return n, hex.EncodeToString(h.Sum(nil)), err
	}

	t.Run("chunk sizes", func(t *testing.T) {
		for _, chunk := range []uint32{1 << 10, 256 << 10, 768 << 10} {
			name := fmt.Sprint("chunks-", chunk)
			data := bytes.Repeat([]byte{byte(chunk)}, 3<<20+1)
			if _, err := store.Put(ctx, jetstream.ObjectMeta{Name: name, Opts: &jetstream.ObjectMetaOptions{ChunkSize: chunk}}, bytes.NewReader(data)); err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(data)
			if n, got, err := readAll(name); err != nil || n != int64(len(data)) || got != hex.EncodeToString(sum[:]) {
				t.Errorf("chunk size %d: read %d bytes, sha256 %s, %v; want %d bytes, %x", chunk, n, got, err, len(data), sum)
			}
		}
	})
	t.Run("empty object", func(t *testing.T) {
		if _, err := store.PutBytes(ctx, "empty", nil); err != nil {
			t.Fatal(err)
		}
		if n, _, err := readAll("empty"); err != nil || n != 0 {
			t.Errorf("read %d bytes, %v; want 0, nil", n, err)
		}
	})
	t.Run("close ends a read and removes the consumer", func(t *testing.T) {
		putObject(t, e.js, "closing", 2, 2<<20)
		r, _, err := files.Open(ctx, "closing")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(r, make([]byte, 1000)); err != nil {
			t.Fatal(err)
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, r); err == nil {
			t.Error("read after close succeeded")
		}
		stream, err := e.js.Stream(ctx, objectStream)
		if err != nil {
			t.Fatal(err)
		}
		info, err := stream.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.State.Consumers != 0 {
			t.Errorf("%d consumers left on %s, want 0", info.State.Consumers, objectStream)
		}
	})
	t.Run("a changed chunk fails the read for good", func(t *testing.T) {
		putObject(t, e.js, "tampered", 4, 300<<10)
		info, err := store.GetInfo(ctx, "tampered")
		if err != nil {
			t.Fatal(err)
		}
		stream, err := e.js.Stream(ctx, objectStream)
		if err != nil {
			t.Fatal(err)
		}
		last, err := stream.GetLastMsgForSubject(ctx, objectChunkSubject+info.NUID)
		if err != nil {
			t.Fatal(err)
		}
		if err := stream.DeleteMsg(ctx, last.Sequence); err != nil {
			t.Fatal(err)
		}
		if _, err := e.js.Publish(ctx, last.Subject, bytes.Repeat([]byte{'x'}, len(last.Data))); err != nil {
			t.Fatal(err)
		}
		_, _, err = readAll("tampered")
		if reason, _ := failure.Reason(err); !errors.Is(err, jetstream.ErrDigestMismatch) || failure.Classify(err) != failure.Permanent || reason != "malformed" {
			t.Errorf("%v (reason %q), want a permanent digest mismatch", err, reason)
		}
	})
	t.Run("a link is refused", func(t *testing.T) {
		putObject(t, e.js, "target", 3, 10)
		target, err := store.GetInfo(ctx, "target")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := store.AddLink(ctx, "link", target); err != nil {
			t.Fatal(err)
		}
		if _, _, err := files.Open(ctx, "link"); failure.Classify(err) != failure.Permanent {
			t.Errorf("%v, want a permanent failure", err)
		}
	})
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
	putObject(t, e.js, "default/late/scan.pdf", 2, 1000)
	putObject(t, e.js, "default/good/scan.pdf", 3, 1000)
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
