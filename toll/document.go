package toll

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/failure"
)

// MaxDocumentSize is the largest file the document API takes. Toll says
// 10 MB without saying which; 10 MiB (10*1024*1024 bytes) is assumed.
const MaxDocumentSize = 10 * 1024 * 1024

// documentTypes are the document types Toll accepts, in its order.
var documentTypes = []string{"faktura", "tillatelser", "fraktregning", "opprinnelsesdokumentasjon", "fraktbrev"}

// DocumentTypes returns the document types Toll accepts: faktura,
// tillatelser, fraktregning, opprinnelsesdokumentasjon, fraktbrev.
func DocumentTypes() []string { return slices.Clone(documentTypes) }

// ValidDocumentType reports whether t is one of DocumentTypes.
func ValidDocumentType(t string) bool { return slices.Contains(documentTypes, t) }

// fileTypes maps the file extensions Toll accepts to their media types.
var fileTypes = map[string]string{
	"pdf":  "application/pdf",
	"jpg":  "image/jpeg",
	"png":  "image/png",
	"txt":  "text/plain",
	"doc":  "application/msword",
	"docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
	"xls":  "application/vnd.ms-excel",
	"xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}

// FileTypes lists the file extensions Toll accepts, without dots.
func FileTypes() []string {
	return []string{"pdf", "jpg", "png", "txt", "doc", "docx", "xls", "xlsx"}
}

// DocumentContentType checks a file's name and declared media type
// against the file types Toll accepts, and returns the media type to
// send: the declared one if it names the extension's type (parameters
// such as a charset are kept) or is empty or application/octet-stream, in
// which case the extension's type is sent. The extension is matched in
// any case. An error says what is wrong in one line.
func DocumentContentType(filename, declared string) (string, error) {
	ext := strings.TrimPrefix(strings.ToLower(path.Ext(filename)), ".")
	want, ok := fileTypes[ext]
	if !ok {
		return "", fmt.Errorf("file %q: type %q is not accepted by Toll (want one of %s)", filename, path.Ext(filename), strings.Join(FileTypes(), ", "))
	}
	if declared == "" {
		return want, nil
	}
	mt, _, err := mime.ParseMediaType(declared)
	switch {
	case err != nil:
		return "", fmt.Errorf("file %q: content type %q is not a media type", filename, declared)
	case mt == "application/octet-stream":
		return want, nil
	case mt != want:
		return "", fmt.Errorf("file %q: content type %q does not match a .%s file (want %s)", filename, declared, ext, want)
	}
	return declared, nil
}

// declarationIDPattern is a declarant number, a date as ddmmyyyy and a
// sequence number.
var declarationIDPattern = regexp.MustCompile(`^[0-9]{9}-([0-9]{8})-[0-9]{1,9}$`)

// ValidDeclarationID reports whether id has the form of a goods
// declaration id: a nine-digit declarant number, a real date as ddmmyyyy
// and a sequence number, joined by '-', e.g. 123456789-01092023-1.
func ValidDeclarationID(id string) bool {
	m := declarationIDPattern.FindStringSubmatch(id)
	if m == nil {
		return false
	}
	_, err := time.Parse("02012006", m[1])
	return err == nil
}

// DocumentV2 is the goods declaration document API. It has no query API:
// an upload is done when Toll answers 2xx.
func DocumentV2() API {
	return API{
		Kind:      contract.KindDocument,
		Path:      "goodsdeclaration/document/v2",
		ScopeBase: "goodsdeclaration/document.write",
	}
}

// DocumentUpload is one file to attach to a goods declaration.
type DocumentUpload struct {
	DeclarationID string
	// DocumentType is one of DocumentTypes.
	DocumentType string
	// Filename is sent as the file part's filename; Toll judges the file
	// type by its extension.
	Filename string
	// ContentType is the file part's media type; empty sends
	// application/octet-stream.
	ContentType string
	// Open returns the file's bytes from the start. It is called once per
	// attempt (a 401 is answered by sending the file again) and the
	// reader is closed when the attempt ends. Close may be called while a
	// Read is in progress, to abandon an attempt, and must make that Read
	// return.
	Open func() (io.ReadCloser, error)
}

// UploadDocument sends a file to Toll's document API as multipart/form-data
// with two parts, in the order Toll requires: metadata (JSON with the
// declaration id and document type) and file. The body is streamed from
// d.Open through a pipe, never held in memory, and sent chunked with
// "Expect: 100-continue", so that an answer without reading it (401)
// costs no upload. It returns the document id if Toll's answer names one;
// Toll documents only that any 2xx is success, so an answer without one is
// success as well.
//
// A 400 is returned as *RejectedError. Other failures are *HTTPError (a
// 413 is permanent, like any other undocumented 4xx) or *NetworkError; an
// error reading the file is returned wrapped, with its own class. The
// caller checks size and file type first (MaxDocumentSize,
// DocumentContentType): Toll would refuse them anyway, after the upload.
func (c *Client) UploadDocument(ctx context.Context, d DocumentUpload) (string, error) {
	if d.DeclarationID == "" || d.DocumentType == "" || d.Filename == "" || d.Open == nil {
		return "", fmt.Errorf("toll: document upload needs a declaration id, a document type, a filename and a file: %w", failure.ErrPermanent)
	}
	api := DocumentV2()
	urlPath := api.Path + "/declaration-id/" + url.PathEscape(d.DeclarationID) + "/document"
	meta, err := json.Marshal(struct {
		DeclarationID string `json:"declarationId"`
		DocumentType  string `json:"documentType"`
	}{d.DeclarationID, d.DocumentType})
	if err != nil {
		return "", fmt.Errorf("toll: document metadata: %w", err)
	}
	fileType := d.ContentType
	if fileType == "" {
		fileType = "application/octet-stream"
	}
	// One boundary for every attempt: the Content-Type header that names
	// it is set per request, the body is written per attempt.
	mw := multipart.NewWriter(io.Discard)
	streams := &uploadStreams{boundary: mw.Boundary(), meta: meta, filename: d.Filename, contentType: fileType, open: d.Open}
	defer streams.stop()

	resp, err := c.doPayload(ctx, api, http.MethodPost, urlPath, payload{
		open:           streams.start,
		size:           -1,
		contentType:    mw.FormDataContentType(),
		expectContinue: true,
	}, http.StatusBadRequest)
	streams.stop()
	if srcErr := streams.sourceErr(); srcErr != nil {
		// The transport reports a failed body read as its own error;
		// the file's error says what happened.
		return "", fmt.Errorf("toll: POST %s: reading %s: %w", urlPath, d.Filename, srcErr)
	}
	if err != nil {
		return "", err
	}
	if resp.status == http.StatusBadRequest {
		return "", rejection(resp.status, resp.body)
	}
	var answer struct {
		DocumentID string `json:"documentId"`
		ID         string `json:"id"`
	}
	// The body of a success is not documented: read an id if there is one.
	if json.Unmarshal(resp.body, &answer) == nil {
		if answer.DocumentID != "" {
			return answer.DocumentID, nil
		}
		return answer.ID, nil
	}
	return "", nil
}

// errAttemptOver ends the writer of an attempt whose request is over.
var errAttemptOver = errors.New("toll: upload attempt over")

// uploadStreams makes the multipart body of each attempt of one upload:
// a pipe whose writing end is fed by a goroutine. The goroutines belong
// to the upload: stop ends and waits for every one of them.
type uploadStreams struct {
	boundary    string
	meta        []byte
	filename    string
	contentType string
	open        func() (io.ReadCloser, error)

	mu      sync.Mutex
	started []*uploadStream
}

// uploadStream is one attempt's body.
type uploadStream struct {
	*io.PipeReader
	file      io.ReadCloser
	closeFile sync.Once
	done      chan struct{}
	// stopped is set before stop closes the file, whose Read then fails
	// because of the close, not because of the file.
	stopped atomic.Bool
	// srcErr is the error reading the file met; set before done closes.
	srcErr error
}

// start opens the file and starts writing the body of one attempt. The
// transport reads and closes the returned reader.
func (u *uploadStreams) start() (io.ReadCloser, error) {
	file, err := u.open()
	if err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	s := &uploadStream{PipeReader: pr, file: file, done: make(chan struct{})}
	u.mu.Lock()
	u.started = append(u.started, s)
	u.mu.Unlock()
	go func() {
		defer close(s.done)
		defer s.closeFile.Do(func() { file.Close() })
		src := &errReader{r: file}
		err := writeDocumentParts(pw, u.boundary, u.meta, u.filename, u.contentType, src)
		if src.err != nil && !s.stopped.Load() {
			s.srcErr = src.err
		}
		// The reader sees EOF after a complete body, or the error.
		pw.CloseWithError(err)
	}()
	return s, nil
}

// stop ends every attempt's writer: closing the pipe unblocks a write,
// closing the file a read. It returns when all have exited, and may be
// called again.
func (u *uploadStreams) stop() {
	u.mu.Lock()
	started := u.started
	u.mu.Unlock()
	for _, s := range started {
		s.stopped.Store(true)
		s.CloseWithError(errAttemptOver)
		s.closeFile.Do(func() { s.file.Close() })
		<-s.done
	}
}

// sourceErr is the error the latest attempt met reading the file. Call
// it after stop.
func (u *uploadStreams) sourceErr() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.started) == 0 {
		return nil
	}
	return u.started[len(u.started)-1].srcErr
}

// errReader remembers the error its reader returned, other than EOF.
type errReader struct {
	r   io.Reader
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		e.err = err
	}
	return n, err
}

// writeDocumentParts writes the two parts, metadata then file, to w.
func writeDocumentParts(w io.Writer, boundary string, meta []byte, filename, contentType string, file io.Reader) error {
	mw := multipart.NewWriter(w)
	if err := mw.SetBoundary(boundary); err != nil {
		return err
	}
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", `form-data; name="metadata"`)
	h.Set("Content-Type", "application/json")
	part, err := mw.CreatePart(h)
	if err != nil {
		return err
	}
	if _, err := part.Write(meta); err != nil {
		return err
	}
	h = textproto.MIMEHeader{}
	h.Set("Content-Disposition", multipart.FileContentDisposition("file", filename))
	h.Set("Content-Type", contentType)
	if part, err = mw.CreatePart(h); err != nil {
		return err
	}
	if _, err := io.Copy(part, file); err != nil {
		return err
	}
	return mw.Close()
}
