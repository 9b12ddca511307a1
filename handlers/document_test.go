package handlers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/failure"
	"github.com/digitoll/digitoll-worker/simulator"
	"github.com/digitoll/digitoll-worker/toll"
)

const testDeclarationID = "123456789-01092023-1"

// genFile is a file of pseudo-random bytes made on the fly, so that large
// files cost no memory.
type genFile struct {
	seed uint64
	size int64
	// claimed, if set, is the size Open reports instead of size.
	claimed int64
}

func (g genFile) reader() io.Reader {
	return io.LimitReader(rand.NewChaCha8([32]byte{byte(g.seed), byte(g.seed >> 8)}), g.size)
}

func (g genFile) sha256() string {
	h := sha256.New()
	if _, err := io.Copy(h, g.reader()); err != nil {
		panic(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// A file larger than its source said gets past the size check; Toll's
// 413 then dead-letters it as too large, without a retry.
func TestDocumentTollRefusesAFileOverTheLimit(t *testing.T) {
	files := &genFiles{files: map[string]genFile{"liar": {seed: 3, size: toll.MaxDocumentSize + 1, claimed: 1 << 20}}}
	env, h := documentEnv(t, files)
	_, err := h.Handle(t.Context(), documentRequest(&contract.Document{DeclarationID: testDeclarationID, DocumentType: "faktura", Filename: "a.pdf", Object: "liar"}))
	var he *toll.HTTPError
	if reason, _ := failure.Reason(err); reason != "too-large" || failure.Classify(err) != failure.Permanent ||
		!errors.As(err, &he) || he.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("%v (reason %q), want Toll's 413 as permanent too-large", err, reason)
	}
	if n := env.sim.Stats().Requests(simulator.RouteDocumentUpload); n != 1 {
		t.Errorf("%d uploads, want 1", n)
	}
}

// genFiles is a FileSource of generated files; names it does not hold
// are missing. It counts opens and closes.
type genFiles struct {
	files  map[string]genFile
	opens  atomic.Int32
	closes atomic.Int32
}

func (s *genFiles) Open(_ context.Context, name string) (io.ReadCloser, int64, error) {
	g, ok := s.files[name]
	if !ok {
		return nil, 0, fmt.Errorf("object %q: %w", name, ErrFileMissing)
	}
	s.opens.Add(1)
	size := g.size
	if g.claimed != 0 {
		size = g.claimed
	}
	return &countedClose{Reader: g.reader(), closes: &s.closes}, size, nil
}

type countedClose struct {
	io.Reader
	closes *atomic.Int32
}

func (c *countedClose) Close() error { c.closes.Add(1); return nil }

// documentEnv is the simulator, granted the document scope, and a
// document handler with short retries.
func documentEnv(t testing.TB, files *genFiles) (*simEnv, *Document) {
	env := startSim(t)
	env.sim.GrantScope("handlers-test", toll.Scope(false, toll.DocumentV2().ScopeBase))
	return env, &Document{
		Toll:   env.client,
		Files:  files,
		Retry:  RetryPolicy{Initial: 5 * time.Millisecond, Max: 50 * time.Millisecond, MaxElapsed: 10 * time.Second},
		Logger: slog.New(env.logs),
	}
}

func documentRequest(doc *contract.Document) Request {
	return Request{
		Tenant: "default", Kind: contract.KindDocument, Delivery: 1, ReceivedAt: time.Now(),
		Submission: &contract.Submission{ID: "doc-1", Operation: contract.OpUpload, Document: doc},
	}
}

func TestDocumentInlineContent(t *testing.T) {
	env, h := documentEnv(t, nil)
	rec := &recorder{}
	req := documentRequest(&contract.Document{DeclarationID: testDeclarationID, DocumentType: "faktura", Filename: "note.txt", Content: []byte("hello Toll")})
	req.Journal = &fakeJournal{rec: rec}
	out, err := h.Handle(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	docs := env.sim.Documents()
	if len(docs) != 1 {
		t.Fatalf("simulator holds %d documents, want 1", len(docs))
	}
	sum := sha256.Sum256([]byte("hello Toll"))
	d := docs[0]
	if d.SHA256 != hex.EncodeToString(sum[:]) || d.ContentType != "text/plain" || d.DocumentType != "faktura" || d.DeclarationID != testDeclarationID {
		t.Errorf("simulator recorded %+v, want the text with its type", d)
	}
	if out.Status != contract.StatusAccepted || out.RequestID != d.DocumentID || !strings.Contains(out.Note, "10 bytes") || !strings.Contains(out.Note, d.SHA256) {
		t.Errorf("outcome %+v, want accepted with the document id and a note naming size and sha256", out)
	}
	if got, want := fmt.Sprint(rec.list()), "[sending sent "+d.DocumentID+"]"; got != want {
		t.Errorf("journal %s, want %s", got, want)
	}
}

func TestDocumentFromFileSourceIsByteIdentical(t *testing.T) {
	big := genFile{seed: 7, size: 99 * toll.MaxDocumentSize / 100} // 9.9 MiB
	files := &genFiles{files: map[string]genFile{"default/abc/scan.pdf": big}}
	env, h := documentEnv(t, files)
	out, err := h.Handle(t.Context(), documentRequest(&contract.Document{
		DeclarationID: testDeclarationID, DocumentType: "tillatelser", Filename: "scan.pdf", ContentType: "application/pdf", Object: "default/abc/scan.pdf",
	}))
	if err != nil {
		t.Fatal(err)
	}
	docs := env.sim.Documents()
	if len(docs) != 1 || docs[0].Size != big.size || docs[0].SHA256 != big.sha256() {
		t.Fatalf("simulator holds %+v, want the %d bytes with sha256 %s", docs, big.size, big.sha256())
	}
	if out.Status != contract.StatusAccepted || !strings.Contains(out.Note, "9.9 MiB") {
		t.Errorf("outcome %+v, want accepted with a note naming 9.9 MiB", out)
	}
	if o, c := files.opens.Load(), files.closes.Load(); o != 1 || c != 1 {
		t.Errorf("file opened %d and closed %d times, want once each", o, c)
	}
}

func TestDocumentRefusedBeforeUpload(t *testing.T) {
	files := &genFiles{files: map[string]genFile{
		"too-large": {seed: 1, size: toll.MaxDocumentSize + toll.MaxDocumentSize/100}, // 10.1 MiB
		"limit":     {seed: 1, size: toll.MaxDocumentSize},
		"empty":     {seed: 1, size: 0},
	}}
	env, h := documentEnv(t, files)
	doc := func(edit func(d *contract.Document)) *contract.Document {
		d := &contract.Document{DeclarationID: testDeclarationID, DocumentType: "faktura", Filename: "a.pdf", Object: "limit"}
		edit(d)
		return d
	}
	tests := []struct {
		name   string
		doc    *contract.Document
		reason string
		text   string
	}{
		{"10.1 MiB", doc(func(d *contract.Document) { d.Object = "too-large" }), "too-large", "more than Toll's 10.0 MiB"},
		{"exe", doc(func(d *contract.Document) { d.Filename = "setup.exe" }), "unsupported", `type ".exe" is not accepted`},
		{"content type of another file type", doc(func(d *contract.Document) { d.ContentType = "image/png" }), "unsupported", "does not match a .pdf file"},
		{"unknown document type", doc(func(d *contract.Document) { d.DocumentType = "kvittering" }), "unsupported", `documentType "kvittering"`},
		{"declaration id of another form", doc(func(d *contract.Document) { d.DeclarationID = "MAWB-0001" }), "malformed", `declarationId "MAWB-0001"`},
		{"empty object", doc(func(d *contract.Document) { d.Object = "empty" }), "malformed", "the file is empty"},
		{"inline content too large", doc(func(d *contract.Document) {
			d.Object, d.Content = "", make([]byte, toll.MaxDocumentSize+1)
		}), "too-large", "more than Toll's"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{}
			req := documentRequest(tt.doc)
			req.Journal = &fakeJournal{rec: rec}
			out, err := h.Handle(t.Context(), req)
			if reason, _ := failure.Reason(err); reason != tt.reason || failure.Classify(err) != failure.Poison || !strings.Contains(err.Error(), tt.text) {
				t.Fatalf("Handle = %+v, %v (reason %q); want a poison error with reason %q mentioning %q", out, err, reason, tt.reason, tt.text)
			}
			if ev := rec.list(); len(ev) != 0 {
				t.Errorf("journal %v, want nothing before a refusal", ev)
			}
		})
	}
	if n := env.sim.Stats().Requests(simulator.RouteDocumentUpload); n != 0 {
		t.Errorf("%d uploads reached Toll, want none", n)
	}
	if o, c := files.opens.Load(), files.closes.Load(); o != c {
		t.Errorf("%d files opened, %d closed", o, c)
	}
}

func TestDocumentMissingObject(t *testing.T) {
	files := &genFiles{files: map[string]genFile{}}
	_, h := documentEnv(t, files)
	req := documentRequest(&contract.Document{DeclarationID: testDeclarationID, DocumentType: "faktura", Filename: "a.pdf", Object: "gone"})

	_, err := h.Handle(t.Context(), req)
	if _, has := failure.Reason(err); !errors.Is(err, ErrFileMissing) || failure.Classify(err) != failure.Transient || has {
		t.Errorf("just received: %v, want a transient error wrapping ErrFileMissing", err)
	}
	req.ReceivedAt = time.Now().Add(-DefaultMissingFileGrace - time.Second)
	_, err = h.Handle(t.Context(), req)
	if reason, _ := failure.Reason(err); !errors.Is(err, ErrFileMissing) || failure.Classify(err) != failure.Permanent || reason != "malformed" {
		t.Errorf("after the grace: %v, want permanent with reason malformed", err)
	}

	h.Files = nil
	if _, err := h.Handle(t.Context(), req); failure.Classify(err) != failure.Config {
		t.Errorf("without a file source: %v, want a configuration error", err)
	}
}

func TestDocumentAlreadyUploaded(t *testing.T) {
	env, h := documentEnv(t, nil)
	rec := &recorder{}
	req := documentRequest(&contract.Document{DeclarationID: testDeclarationID, DocumentType: "faktura", Filename: "a.pdf", Content: []byte("%PDF")})
	req.RequestID, req.Delivery, req.Journal = "doc-42", 2, &fakeJournal{rec: rec}
	out, err := h.Handle(t.Context(), req)
	if err != nil || out.Status != contract.StatusAccepted || out.RequestID != "doc-42" {
		t.Fatalf("%+v, %v; want accepted as doc-42", out, err)
	}
	if n := env.sim.Stats().Requests(simulator.RouteDocumentUpload); n != 0 || len(rec.list()) != 0 {
		t.Errorf("%d uploads, journal %v; want nothing sent again", n, rec.list())
	}
}

// An upload whose answer is lost is sent again: Toll then holds the file
// twice, which is the choice made (a missing document is worse).
func TestDocumentLostAnswerIsUploadedAgain(t *testing.T) {
	env, h := documentEnv(t, nil)
	// Fetch the token first, so that the lost answer is the upload's.
	if _, err := env.tokens.Token(t.Context(), toll.Scope(false, toll.DocumentV2().ScopeBase)); err != nil {
		t.Fatal(err)
	}
	env.sim.SetFaults(simulator.Faults{LoseResponses: 1})
	rec := &recorder{}
	req := documentRequest(&contract.Document{DeclarationID: testDeclarationID, DocumentType: "faktura", Filename: "a.pdf", Content: []byte("%PDF-1.7")})
	req.Journal = &fakeJournal{rec: rec}
	out, err := h.Handle(t.Context(), req)
	if err != nil || out.Status != contract.StatusAccepted {
		t.Fatalf("%+v, %v; want accepted", out, err)
	}
	docs := env.sim.Documents()
	if len(docs) != 2 || docs[0].SHA256 != docs[1].SHA256 || out.RequestID != docs[1].DocumentID {
		t.Errorf("simulator holds %+v, outcome %+v; want the file twice, the second one reported", docs, out)
	}
	if got, want := fmt.Sprint(rec.list()), "[sending sending sent "+out.RequestID+"]"; got != want {
		t.Errorf("journal %s, want %s", got, want)
	}
}

// fakeDocuments reads each upload in full and answers the n-th (from 1)
// with answer.
type fakeDocuments struct {
	rec    *recorder
	n      atomic.Int32
	answer func(n int) (string, error)
}

// Authorize passes.
func (f *fakeDocuments) Authorize(context.Context, toll.API) error { return nil }

func (f *fakeDocuments) UploadDocument(ctx context.Context, d toll.DocumentUpload) (string, error) {
	if err := toll.RunBeforeSend(ctx); err != nil {
		return "", err
	}
	n := int(f.n.Add(1))
	r, err := d.Open()
	if err != nil {
		return "", err
	}
	defer r.Close()
	data, err := io.ReadAll(r)
	if err != nil {
		return "", err
	}
	f.rec.add(fmt.Sprintf("upload %s %d bytes", d.Filename, len(data)))
	return f.answer(n)
}

func TestDocumentTollAnswers(t *testing.T) {
	content := []byte("%PDF-1.7")
	sum := sha256.Sum256(content)
	tests := []struct {
		name    string
		answer  func(n int) (string, error)
		check   func(t *testing.T, out Outcome, err error)
		journal string
	}{
		{
			name: "transient failures are retried with the file reopened",
			answer: func(n int) (string, error) {
				if n < 3 {
					return "", errUnavailable
				}
				return "", nil
			},
			check: func(t *testing.T, out Outcome, err error) {
				if err != nil || out.Status != contract.StatusAccepted || out.RequestID != "upload-"+hex.EncodeToString(sum[:]) {
					t.Errorf("%+v, %v; want accepted as upload-<sha256>", out, err)
				}
			},
			journal: "[sending upload a.pdf 8 bytes sending upload a.pdf 8 bytes sending upload a.pdf 8 bytes sent upload-" + hex.EncodeToString(sum[:]) + "]",
		},
		{
			name: "a 400 is a rejection",
			answer: func(int) (string, error) {
				return "", &toll.RejectedError{Status: 400, Errors: []contract.FieldError{{Path: "file", Message: "virus"}}}
			},
			check: func(t *testing.T, out Outcome, err error) {
				if err != nil || out.Status != contract.StatusRejected || fmt.Sprint(out.Errors) != "[{file virus}]" {
					t.Errorf("%+v, %v; want rejected with Toll's error", out, err)
				}
			},
			journal: "[sending upload a.pdf 8 bytes]",
		},
		{
			name: "an ambiguous failure is sent again",
			answer: func(n int) (string, error) {
				if n == 1 {
					return "", errAmbiguous
				}
				return "doc-7", nil
			},
			check: func(t *testing.T, out Outcome, err error) {
				if err != nil || out.RequestID != "doc-7" {
					t.Errorf("%+v, %v; want accepted as doc-7", out, err)
				}
			},
			journal: "[sending upload a.pdf 8 bytes sending upload a.pdf 8 bytes sent doc-7]",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{}
			h := &Document{
				Toll:  &fakeDocuments{rec: rec, answer: tt.answer},
				Retry: RetryPolicy{Initial: time.Millisecond, Max: 5 * time.Millisecond, MaxElapsed: 2 * time.Second},
			}
			req := documentRequest(&contract.Document{DeclarationID: testDeclarationID, DocumentType: "faktura", Filename: "a.pdf", Content: content})
			req.Journal = &fakeJournal{rec: rec}
			out, err := h.Handle(t.Context(), req)
			tt.check(t, out, err)
			if got := fmt.Sprint(rec.list()); got != tt.journal {
				t.Errorf("calls %s, want %s", got, tt.journal)
			}
		})
	}
}

// uploadConcurrently uploads n generated files of size bytes at once
// and returns the peak growth of the heap in use (sampled every few
// milliseconds) over what it was before. The simulator runs in the same
// process, so both ends of the upload count.
func uploadConcurrently(t testing.TB, env *simEnv, h *Document, files *genFiles, n int) uint64 {
	t.Helper()
	// The other tests' 5 s bound on one exchange is too short for eight
	// 10 MiB uploads at once under -race on a busy machine: an upload cut
	// off by it is sent again (its answer may be lost, not refused), and
	// the simulator then holds it twice. This test measures memory, so it
	// uses the bound production uses.
	env.client.Timeout = toll.DefaultTimeout
	// Fetch the token first, so that the measurement is the uploads.
	if _, err := env.tokens.Token(context.Background(), toll.Scope(false, toll.DocumentV2().ScopeBase)); err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base, peak := ms.HeapInuse, ms.HeapInuse

	stop := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Go(func() {
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			peak = max(peak, m.HeapInuse)
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	})
	errs := make(chan error, n)
	var uploads sync.WaitGroup
	for i := range n {
		uploads.Go(func() {
			name := fmt.Sprintf("big-%d", i)
			out, err := h.Handle(context.Background(), documentRequest(&contract.Document{
				DeclarationID: testDeclarationID, DocumentType: "faktura", Filename: name + ".pdf", Object: name,
			}))
			if err == nil && out.Status != contract.StatusAccepted {
				err = fmt.Errorf("%s: %+v", name, out)
			}
			errs <- err
		})
	}
	uploads.Wait()
	close(stop)
	sampler.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if peak < base {
		return 0
	}
	return peak - base
}

func bigFiles(n int, size int64) *genFiles {
	files := &genFiles{files: map[string]genFile{}}
	for i := range n {
		files.files[fmt.Sprintf("big-%d", i)] = genFile{seed: uint64(100 + i), size: size}
	}
	return files
}

// Eight 10 MiB uploads at once must not hold the files in memory. The
// bound is loose on purpose: streaming keeps the growth to buffers (a few
// MiB with the garbage the collector has not reclaimed yet), while holding
// even half the files would cross it. The test runs alone (not parallel),
// so other tests' allocations do not count.
func TestConcurrentUploadsStream(t *testing.T) {
	const n, size = 8, toll.MaxDocumentSize
	files := bigFiles(n, size)
	env, h := documentEnv(t, files)
	growth := uploadConcurrently(t, env, h, files, n)
	total := uint64(n * size)
	t.Logf("peak heap growth %.1f MiB for %d MiB uploaded", float64(growth)/(1<<20), total>>20)
	if growth > total/2 {
		t.Errorf("heap grew by %.1f MiB while uploading %d MiB: the files are held in memory", float64(growth)/(1<<20), total>>20)
	}
	docs := env.sim.Documents()
	if len(docs) != n {
		t.Fatalf("simulator holds %d documents, want %d", len(docs), n)
	}
	for _, d := range docs {
		g := files.files[strings.TrimSuffix(d.Filename, ".pdf")]
		if d.Size != size || d.SHA256 != g.sha256() {
			t.Errorf("%s arrived with %d bytes, sha256 %s; want %d, %s", d.Filename, d.Size, d.SHA256, size, g.sha256())
		}
	}
}

// BenchmarkConcurrentUploads uploads eight 10 MiB files at once per
// iteration, through the handler, the Toll client and the simulator, and
// reports the peak heap growth (peak-heap-MiB) next to the throughput.
func BenchmarkConcurrentUploads(b *testing.B) {
	const n, size = 8, toll.MaxDocumentSize
	files := bigFiles(n, size)
	env, h := documentEnv(b, files)
	b.SetBytes(n * size)
	var peak uint64
	for b.Loop() {
		peak = max(peak, uploadConcurrently(b, env, h, files, n))
	}
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
}
