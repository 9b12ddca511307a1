package toll

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/digitoll/digitoll-worker/failure"
	"github.com/digitoll/digitoll-worker/internal/buftest"
	"github.com/digitoll/digitoll-worker/simulator"
)

const testDeclarationID = "123456789-01092023-1"

// generated is a file of n pseudo-random bytes made on the fly, so that
// large files cost no memory. opens counts Open calls.
type generated struct {
	seed  uint64
	n     int64
	opens atomic.Int32
}

func (g *generated) Open() (io.ReadCloser, error) {
	g.opens.Add(1)
	return io.NopCloser(io.LimitReader(rand.NewChaCha8([32]byte{byte(g.seed)}), g.n)), nil
}

func (g *generated) sha256() string {
	h := sha256.New()
	r, _ := g.Open()
	g.opens.Add(-1)
	if _, err := io.Copy(h, r); err != nil {
		panic(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// documentClient is a Client for a simulator that granted it the
// document scope.
func documentClient(t *testing.T) (*Client, *simulator.Server) {
	t.Helper()
	c, sim := simClient(t)
	sim.GrantScope("toll-test", Scope(false, DocumentV2().ScopeBase))
	return c, sim
}

func TestUploadDocumentToTheSimulator(t *testing.T) {
	c, sim := documentClient(t)
	file := &generated{seed: 1, n: 3<<20 + 17}
	id, err := c.UploadDocument(t.Context(), DocumentUpload{
		DeclarationID: testDeclarationID, DocumentType: "faktura", Filename: "invoice.pdf",
		ContentType: "application/pdf", Open: file.Open,
	})
	if err != nil {
		t.Fatal(err)
	}
	docs := sim.Documents()
	if len(docs) != 1 {
		t.Fatalf("simulator holds %d documents, want 1", len(docs))
	}
	d := docs[0]
	if id == "" || d.DocumentID != id || d.DeclarationID != testDeclarationID || d.DocumentType != "faktura" ||
		d.Filename != "invoice.pdf" || d.ContentType != "application/pdf" || d.Size != file.n || d.SHA256 != file.sha256() {
		t.Errorf("simulator recorded %+v (id %q), want the file as sent", d, id)
	}
	if n := file.opens.Load(); n != 1 {
		t.Errorf("file opened %d times, want 1", n)
	}
}

// staleFirst hands out a token Toll does not know the first time, as a
// cache holding a revoked token would, then the real ones.
type staleFirst struct {
	Tokens
	mu          sync.Mutex
	handedStale bool
	invalidated []string
}

func (s *staleFirst) Token(ctx context.Context, scope string) (string, error) {
	s.mu.Lock()
	stale := !s.handedStale
	s.handedStale = true
	s.mu.Unlock()
	if stale {
		return "stale-token", nil
	}
	return s.Tokens.Token(ctx, scope)
}

func (s *staleFirst) Invalidate(scope, token string) {
	s.mu.Lock()
	s.invalidated = append(s.invalidated, token)
	s.mu.Unlock()
	s.Tokens.Invalidate(scope, token)
}

func TestUploadDocumentRetriesA401WithTheFileReopened(t *testing.T) {
	c, sim := documentClient(t)
	tokens := &staleFirst{Tokens: c.Tokens}
	c.Tokens = tokens
	file := &generated{seed: 2, n: 2 << 20}
	if _, err := c.UploadDocument(t.Context(), DocumentUpload{
		DeclarationID: testDeclarationID, DocumentType: "fraktbrev", Filename: "cmr.png", ContentType: "image/png", Open: file.Open,
	}); err != nil {
		t.Fatal(err)
	}
	if n := file.opens.Load(); n != 2 {
		t.Errorf("file opened %d times, want 2 (once per attempt)", n)
	}
	if fmt.Sprint(tokens.invalidated) != "[stale-token]" {
		t.Errorf("invalidated %v, want the stale token once", tokens.invalidated)
	}
	if n := sim.Stats().Requests(simulator.RouteDocumentUpload); n != 2 {
		t.Errorf("%d uploads reached the simulator, want 2", n)
	}
	if docs := sim.Documents(); len(docs) != 1 || docs[0].SHA256 != file.sha256() {
		t.Errorf("simulator holds %+v, want the file once, intact", docs)
	}
}

func TestUploadDocumentAnswers(t *testing.T) {
	c, sim := documentClient(t)
	upload := func(docType, filename string, n int64) error {
		_, err := c.UploadDocument(t.Context(), DocumentUpload{
			DeclarationID: testDeclarationID, DocumentType: docType, Filename: filename, Open: (&generated{seed: 3, n: n}).Open,
		})
		return err
	}
	t.Run("400 is a rejection with the validation errors", func(t *testing.T) {
		var rej *RejectedError
		if err := upload("kvittering", "a.pdf", 10); !errors.As(err, &rej) || len(rej.Errors) != 1 || rej.Errors[0].Path != "metadata.documentType" {
			t.Fatalf("err = %v, want a rejection of metadata.documentType", err)
		}
	})
	t.Run("413 is permanent", func(t *testing.T) {
		err := upload("faktura", "big.pdf", MaxDocumentSize+1)
		var he *HTTPError
		if !errors.As(err, &he) || he.StatusCode != http.StatusRequestEntityTooLarge || failure.Classify(err) != failure.Permanent {
			t.Fatalf("err = %v, want a permanent HTTP 413", err)
		}
	})
	t.Run("missing fields are refused before any call", func(t *testing.T) {
		before := sim.Stats().Requests(simulator.RouteDocumentUpload)
		_, err := c.UploadDocument(t.Context(), DocumentUpload{DeclarationID: testDeclarationID, DocumentType: "faktura", Filename: "a.pdf"})
		if failure.Classify(err) != failure.Permanent {
			t.Errorf("err = %v, want permanent", err)
		}
		if n := sim.Stats().Requests(simulator.RouteDocumentUpload); n != before {
			t.Errorf("%d calls made, want none", n-before)
		}
	})
	if docs := sim.Documents(); len(docs) != 0 {
		t.Errorf("simulator holds %+v, want nothing", docs)
	}
}

// errDisk is a file read failure with a class of its own.
var errDisk = failure.Mark(errors.New("disk on fire"), failure.Permanent)

// failingFile yields n bytes, then fails.
type failingFile struct {
	r      io.Reader
	closed atomic.Bool
}

func (f *failingFile) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if errors.Is(err, io.EOF) {
		return n, errDisk
	}
	return n, err
}

func (f *failingFile) Close() error { f.closed.Store(true); return nil }

func TestUploadDocumentFileErrors(t *testing.T) {
	c, sim := documentClient(t)
	t.Run("a read error is returned with its class", func(t *testing.T) {
		f := &failingFile{r: io.LimitReader(rand.NewChaCha8([32]byte{}), 1<<20)}
		_, err := c.UploadDocument(t.Context(), DocumentUpload{
			DeclarationID: testDeclarationID, DocumentType: "faktura", Filename: "a.pdf",
			Open: func() (io.ReadCloser, error) { return f, nil },
		})
		if !errors.Is(err, errDisk) || failure.Classify(err) != failure.Permanent || !strings.Contains(err.Error(), "reading a.pdf") {
			t.Fatalf("err = %v, want the read error", err)
		}
		if !f.closed.Load() {
			t.Error("the file was not closed")
		}
	})
	t.Run("an open error is returned with its class", func(t *testing.T) {
		_, err := c.UploadDocument(t.Context(), DocumentUpload{
			DeclarationID: testDeclarationID, DocumentType: "faktura", Filename: "a.pdf",
			Open: func() (io.ReadCloser, error) { return nil, errDisk },
		})
		if !errors.Is(err, errDisk) {
			t.Fatalf("err = %v, want the open error", err)
		}
	})
	if docs := sim.Documents(); len(docs) != 0 {
		t.Errorf("simulator holds %+v, want nothing", docs)
	}
}

// The body is streamed: the server receives the start of the file while
// the rest has not been read from the source yet. The source refuses to
// go more than a window ahead of what the server has received, so a
// client that read the whole file before sending would never get past
// the window.
func TestUploadDocumentStreams(t *testing.T) {
	const (
		size   = 8 << 20
		window = 1 << 20
	)
	var received atomic.Int64
	var mu sync.Mutex
	var parts []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if err != nil || r.ContentLength != -1 {
			http.Error(w, fmt.Sprintf("content type %v, length %d", err, r.ContentLength), http.StatusBadRequest)
			return
		}
		mr := multipart.NewReader(r.Body, params["boundary"])
		for range 3 {
			p, err := mr.NextPart()
			if err != nil {
				break
			}
			mu.Lock()
			parts = append(parts, p.FormName()+" "+p.Header.Get("Content-Type"))
			mu.Unlock()
			buf := make([]byte, 32<<10)
			for {
				n, err := p.Read(buf)
				received.Add(int64(n))
				if err != nil {
					break
				}
			}
		}
		w.WriteHeader(http.StatusCreated)
	}))
	t.Cleanup(srv.Close)
	c := newClient(srv, &fakeTokens{}, &buftest.Buffer{})
	var expect atomic.Value
	c.HTTP = &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		expect.Store(r.Header.Get("Expect"))
		return srv.Client().Transport.RoundTrip(r)
	})}

	var produced int64
	src := &pacedReader{r: io.LimitReader(rand.NewChaCha8([32]byte{}), size), ahead: func(n int) error {
		produced += int64(n)
		deadline := time.NewTimer(3 * time.Second) // under the client's 5 s timeout
		defer deadline.Stop()
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for produced-received.Load() > window {
			select {
			case <-deadline.C:
				return fmt.Errorf("the server received %d bytes of %d produced: the body is not streamed", received.Load(), produced)
			case <-tick.C:
			}
		}
		return nil
	}}
	_, err := c.UploadDocument(t.Context(), DocumentUpload{
		DeclarationID: testDeclarationID, DocumentType: "faktura", Filename: "a.xlsx",
		Open: func() (io.ReadCloser, error) { return io.NopCloser(src), nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := received.Load(); got < size {
		t.Errorf("server received %d bytes, want at least %d", got, size)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := "[metadata application/json file application/octet-stream]"; fmt.Sprint(parts) != want {
		t.Errorf("parts %v, want %s", parts, want)
	}
	if e, _ := expect.Load().(string); e != "100-continue" {
		t.Errorf("Expect %q, want 100-continue", e)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// pacedReader calls ahead with the size of each read before handing it
// out; an error from ahead fails the read.
type pacedReader struct {
	r     io.Reader
	ahead func(n int) error
}

func (p *pacedReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		if aerr := p.ahead(n); aerr != nil {
			return 0, aerr
		}
	}
	return n, err
}

func TestDocumentContentType(t *testing.T) {
	tests := []struct {
		filename, declared, want, wantErr string
	}{
		{"a.pdf", "", "application/pdf", ""},
		{"A.PDF", "application/octet-stream", "application/pdf", ""},
		{"notes.txt", "text/plain; charset=utf-8", "text/plain; charset=utf-8", ""},
		{"scan.jpg", "image/jpeg", "image/jpeg", ""},
		{"sheet.xlsx", "", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", ""},
		{"setup.exe", "", "", `type ".exe" is not accepted`},
		{"scan.jpeg", "image/jpeg", "", `type ".jpeg" is not accepted`},
		{"invoice", "application/pdf", "", `type "" is not accepted`},
		{"a.pdf", "image/png", "", `content type "image/png" does not match a .pdf file`},
		{"a.pdf", "pdf please", "", "is not a media type"},
	}
	for _, tt := range tests {
		got, err := DocumentContentType(tt.filename, tt.declared)
		if got != tt.want || (err == nil) != (tt.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("DocumentContentType(%q, %q) = %q, %v; want %q, %q", tt.filename, tt.declared, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestValidDeclarationID(t *testing.T) {
	for id, want := range map[string]bool{
		"123456789-01092023-1":    true,
		"123456789-29022024-12":   true,
		"123456789-29022023-1":    false, // not a leap year
		"123456789-2023-09-01-1":  false,
		"12345678-01092023-1":     false,
		"1234567890-01092023-1":   false,
		"123456789-01092023-":     false,
		"123456789-01092023":      false,
		"123456789-01092023-1 ":   false,
		"abcdefghi-01092023-1":    false,
		"123456789-01092023-1/..": false,
	} {
		if got := ValidDeclarationID(id); got != want {
			t.Errorf("ValidDeclarationID(%q) = %v, want %v", id, got, want)
		}
	}
	if !ValidDocumentType("opprinnelsesdokumentasjon") || ValidDocumentType("Faktura") || len(DocumentTypes()) != 5 {
		t.Error("document types are not faktura, tillatelser, fraktregning, opprinnelsesdokumentasjon, fraktbrev")
	}
}
