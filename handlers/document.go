package handlers

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/failure"
	"github.com/digitoll/digitoll-worker/toll"
)

// Dead-letter reasons (docs/contract.md) of documents refused before upload.
const (
	reasonMalformed   = "malformed"
	reasonUnsupported = "unsupported"
	reasonTooLarge    = "too-large"
)

// ErrFileMissing is wrapped by FileSource errors for a file that does not
// exist (an object not in the bucket, or deleted).
var ErrFileMissing = errors.New("document file not found")

// DefaultMissingFileGrace is how long after a submission was published a
// missing file is taken for one not visible yet, and retried. Producers
// store the file before they publish the submission, so on a single
// server it is there; in a cluster a replica may answer a moment behind,
// and a careless producer stores it just after. After the grace the file
// was deleted or never stored, which no retry fixes: the submission is
// dead-lettered and can be replayed once the file is stored again.
//
// Either way a missing file is the submission's fault, not an outage: the
// error wraps ErrFileMissing, which the worker never counts towards
// pausing the kind.
const DefaultMissingFileGrace = 2 * time.Minute

// DocumentAPI is what the document handler needs from Toll; *toll.Client
// provides it.
type DocumentAPI interface {
	// UploadDocument sends one file and returns Toll's document id, if
	// its answer has one; a 400 comes back as *toll.RejectedError.
	UploadDocument(ctx context.Context, d toll.DocumentUpload) (string, error)
	// Authorize obtains a token for the API's scope without calling it;
	// Probe uses it, since the document API has no test-auth.
	Authorize(ctx context.Context, api toll.API) error
}

// FileSource gives the files that submissions name by reference (the
// document's object); objectfiles.Source reads them from the Object Store.
type FileSource interface {
	// Open returns the named file's bytes from the start and its size.
	// A file that does not exist gives an error wrapping ErrFileMissing.
	// The reader is read within ctx. Its Close may be called while a
	// Read is in progress and must make that Read return.
	Open(ctx context.Context, name string) (io.ReadCloser, int64, error)
}

// Document handles document submissions: it checks the file against
// what Toll accepts, then streams it to Toll's document API, retrying
// transient failures within Retry. A file travels inside the submission
// (content) or is read from Files (object). Toll is required; Files is
// required for submissions that name an object; Retry, Logger and
// Observer may be left zero for the defaults.
type Document struct {
	Toll     DocumentAPI
	Files    FileSource
	Retry    RetryPolicy
	Logger   *slog.Logger
	Observer Observer
	// MissingFileGrace is how long a file the submission names may be
	// missing before the submission is dead-lettered; zero means
	// DefaultMissingFileGrace.
	MissingFileGrace time.Duration
}

var _ Handler = (*Document)(nil)

// Handle uploads one document. Checks come first and refuse for good,
// with a dead-letter reason: a declaration id of the wrong form
// ("malformed": a field of the wrong shape), a document type or file type
// Toll does not take ("unsupported"), a file over toll.MaxDocumentSize
// ("too-large"). Then it calls req.Journal.Sending before every attempt
// and req.Journal.Sent once Toll answered 2xx, with Toll's document id or,
// if the answer has none, "upload-<sha256 of the file>". If req.RequestID
// is set, an earlier delivery uploaded the file and Handle reports it
// accepted without sending it again.
//
// An upload Toll may have received without answering (an ambiguous
// failure now, or req.Unresolved from a delivery that died during the
// call) is sent again: a document attached twice does no harm that a
// missing one would not do worse.
func (h *Document) Handle(ctx context.Context, req Request) (Outcome, error) {
	sub := req.Submission
	if sub == nil {
		return Outcome{}, fmt.Errorf("document: request carries no submission: %w", failure.ErrPoison)
	}
	if h.Toll == nil {
		return Outcome{}, fmt.Errorf("document: handler has no Toll client: %w", failure.ErrConfig)
	}
	doc := sub.Document
	if doc == nil {
		return Outcome{}, failure.WithReason(errors.New("document: submission carries no document"), failure.Poison, reasonMalformed)
	}
	log := h.logger().With(logAttrs(req, contract.KindDocument)...).With(
		"declarationId", doc.DeclarationID, "documentType", doc.DocumentType, "filename", doc.Filename)
	if req.RequestID != "" {
		log.DebugContext(ctx, "an earlier delivery uploaded the document", "documentId", req.RequestID)
		return Outcome{Status: contract.StatusAccepted, RequestID: req.RequestID, Note: "uploaded by an earlier delivery"}, nil
	}
	contentType, err := checkDocument(doc)
	if err != nil {
		return Outcome{}, fmt.Errorf("document %s: %w", doc.Filename, err)
	}
	f, err := h.openFile(ctx, req, doc)
	if err != nil {
		return Outcome{}, fmt.Errorf("document %s: %w", doc.Filename, err)
	}
	defer f.close()
	log = log.With("size", f.size)
	if req.Unresolved {
		log.WarnContext(ctx, "an earlier delivery may have uploaded the document without recording it; uploading it again")
	}

	res, err := h.upload(ctx, req, doc, contentType, f, log)
	if err != nil {
		return Outcome{}, fmt.Errorf("document %s: %w", doc.Filename, h.classifyUploadError(err, req))
	}
	if rejected := res.rejected; rejected != nil {
		log.DebugContext(ctx, "toll rejected the document", "errors", len(rejected.Errors))
		return Outcome{Status: contract.StatusRejected, Errors: rejected.Errors}, nil
	}
	documentID := res.id
	n, sum := f.sent()
	out := Outcome{
		Status:    contract.StatusAccepted,
		RequestID: documentID,
		Note:      fmt.Sprintf("uploaded %s: %s, sha256 %s", doc.Filename, sizeText(n), sum),
	}
	if req.Unresolved {
		out.Note += "; an earlier delivery may have uploaded it too"
	}
	log.DebugContext(ctx, "toll accepted the document", "documentId", documentID, "sha256", sum)
	return out, nil
}

// upload sends the file, retrying transient failures, and records Toll's
// document id or, if its answer has none, "upload-<sha256 of the file>".
func (h *Document) upload(ctx context.Context, req Request, doc *contract.Document, contentType string, f *documentFile, log *slog.Logger) (sendResult, error) {
	return sendCall{
		kind: contract.KindDocument, retry: h.Retry, observer: h.Observer, journal: req.Journal,
		log: log, sendingMsg: "uploading document",
		attempt: func(ctx context.Context) (string, error) {
			return h.Toll.UploadDocument(ctx, toll.DocumentUpload{
				DeclarationID: doc.DeclarationID,
				DocumentType:  doc.DocumentType,
				Filename:      doc.Filename,
				ContentType:   contentType,
				Open:          f.open,
			})
		},
		retrying: func(err error, pause time.Duration, attempt int, _ bool) {
			if errors.Is(err, toll.ErrAmbiguous) {
				log.WarnContext(ctx, "no answer to an upload Toll may have received; sending it again",
					"attempt", attempt, "pause", pause, "error", err.Error())
				return
			}
			log.DebugContext(ctx, "upload failed, retrying", "attempt", attempt, "pause", pause, "error", err.Error())
		},
		recordID: func(id string) string {
			if id == "" {
				_, sum := f.sent()
				id = "upload-" + sum
			}
			return id
		},
	}.run(ctx)
}

// checkDocument refuses what Toll would refuse, before anything is read
// or sent, and returns the file's media type to send.
func checkDocument(doc *contract.Document) (string, error) {
	if !toll.ValidDeclarationID(doc.DeclarationID) {
		return "", failure.WithReason(fmt.Errorf("declarationId %q is not a declarant number, a date as ddmmyyyy and a sequence number (123456789-01092023-1)", doc.DeclarationID), failure.Poison, reasonMalformed)
	}
	if !toll.ValidDocumentType(doc.DocumentType) {
		return "", failure.WithReason(fmt.Errorf("documentType %q is not one Toll accepts (%v)", doc.DocumentType, toll.DocumentTypes()), failure.Poison, reasonUnsupported)
	}
	contentType, err := toll.DocumentContentType(doc.Filename, doc.ContentType)
	if err != nil {
		return "", failure.WithReason(err, failure.Poison, reasonUnsupported)
	}
	return contentType, nil
}

// openFile opens the document's file, inline or from Files, and checks its
// size.
func (h *Document) openFile(ctx context.Context, req Request, doc *contract.Document) (*documentFile, error) {
	if doc.Object == "" {
		content := doc.Content
		if err := checkSize(int64(len(content))); err != nil {
			return nil, err
		}
		return &documentFile{size: int64(len(content)), reopen: func() (io.ReadCloser, int64, error) {
			return io.NopCloser(bytes.NewReader(content)), int64(len(content)), nil
		}}, nil
	}
	if h.Files == nil {
		return nil, fmt.Errorf("object %q: the document handler has no file source: %w", doc.Object, failure.ErrConfig)
	}
	reopen := func() (io.ReadCloser, int64, error) { return h.Files.Open(ctx, doc.Object) }
	r, size, err := reopen()
	if err != nil {
		return nil, h.classifyUploadError(err, req)
	}
	if err := checkSize(size); err != nil {
		r.Close()
		return nil, err
	}
	return &documentFile{size: size, first: r, reopen: reopen}, nil
}

func checkSize(size int64) error {
	switch {
	case size > toll.MaxDocumentSize:
		return failure.WithReason(fmt.Errorf("the file has %s, more than Toll's %s", sizeText(size), sizeText(toll.MaxDocumentSize)), failure.Poison, reasonTooLarge)
	case size == 0:
		return failure.WithReason(errors.New("the file is empty"), failure.Poison, reasonMalformed)
	}
	return nil
}

// classifyUploadError gives a missing file its class (see
// DefaultMissingFileGrace) and Toll's size and type refusals their
// dead-letter reasons; other errors keep theirs.
func (h *Document) classifyUploadError(err error, req Request) error {
	grace := h.MissingFileGrace
	if grace <= 0 {
		grace = DefaultMissingFileGrace
	}
	var he *toll.HTTPError
	switch {
	case errors.Is(err, ErrFileMissing) && time.Since(req.ReceivedAt) < grace:
		return failure.Mark(fmt.Errorf("%w (retrying: it may not be visible yet)", err), failure.Transient)
	case errors.Is(err, ErrFileMissing):
		return failure.WithReason(fmt.Errorf("%w (still missing %s after the worker first saw the submission: store it again, then replay)", err, time.Since(req.ReceivedAt).Round(time.Second)), failure.Permanent, reasonMalformed)
	case errors.As(err, &he) && he.StatusCode == http.StatusRequestEntityTooLarge:
		return failure.WithReason(err, failure.Permanent, reasonTooLarge)
	case errors.As(err, &he) && he.StatusCode == http.StatusUnsupportedMediaType:
		return failure.WithReason(err, failure.Permanent, reasonUnsupported)
	}
	return err
}

// documentFile opens the file once per upload attempt, and hashes and
// counts what each attempt reads.
type documentFile struct {
	size   int64
	reopen func() (io.ReadCloser, int64, error)

	mu    sync.Mutex
	first io.ReadCloser // opened for the size check; used by the first attempt
	last  *hashingReader
}

// open is toll.DocumentUpload.Open.
func (f *documentFile) open() (io.ReadCloser, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.first
	f.first = nil
	if r == nil {
		var size int64
		var err error
		if r, size, err = f.reopen(); err != nil {
			return nil, err
		}
		if size != f.size {
			r.Close()
			return nil, fmt.Errorf("the file changed size from %d to %d bytes between attempts: %w", f.size, size, failure.ErrTransient)
		}
	}
	f.last = &hashingReader{ReadCloser: r, h: sha256.New()}
	return f.last, nil
}

// sent is the byte count and SHA-256 (hex) of what the last attempt read.
func (f *documentFile) sent() (int64, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.last == nil {
		return 0, ""
	}
	return f.last.n, hex.EncodeToString(f.last.h.Sum(nil))
}

// close releases a file opened for the size check but never sent.
func (f *documentFile) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.first != nil {
		f.first.Close()
		f.first = nil
	}
}

// hashingReader hashes and counts what is read through it. The upload
// reads it from one goroutine, which has ended before sent is called.
type hashingReader struct {
	io.ReadCloser
	h hash.Hash
	n int64
}

func (r *hashingReader) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	r.h.Write(p[:n])
	r.n += int64(n)
	return n, err
}

// sizeText is a byte count for people: "812 bytes", "9.9 MiB (10380902 bytes)".
func sizeText(n int64) string {
	switch {
	case n < 1<<10:
		return fmt.Sprintf("%d bytes", n)
	case n < 1<<20:
		return fmt.Sprintf("%.1f KiB (%d bytes)", float64(n)/(1<<10), n)
	default:
		return fmt.Sprintf("%.1f MiB (%d bytes)", float64(n)/(1<<20), n)
	}
}

func (h *Document) logger() *slog.Logger {
	if h.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return h.Logger
}
