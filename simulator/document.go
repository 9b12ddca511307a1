package simulator

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
)

// RouteDocumentUpload is the document upload endpoint as counted by
// Stats.Requests.
const RouteDocumentUpload = "POST /toll/api/goodsdeclaration/document/v2/declaration-id/{declarationId}/document"

// MaxDocumentBytes is the largest file the document API takes: 10 MB,
// read as 10 MiB (10*1024*1024 bytes) since Toll does not say which.
const MaxDocumentBytes = 10 * 1024 * 1024

// Bounds of an upload request besides the file.
const (
	// maxMetadataBytes bounds the metadata part, a two-field JSON object.
	maxMetadataBytes = 64 << 10
	// maxUploadBodyBytes bounds the whole request body. Past
	// MaxDocumentBytes the file is still read (and discarded) up to this
	// bound, so that a client that sent too much gets its 413 rather
	// than a connection reset in the middle of writing.
	maxUploadBodyBytes = 2*MaxDocumentBytes + 1<<20
	// maxUploadParts bounds the parts read before giving up on a body
	// that is not the two parts it should be.
	maxUploadParts = 8
)

// documentScopes may call the document API.
var documentScopes = []string{"toll:goodsdeclaration/document.write", "toll:eu/goodsdeclaration/document.write"}

// documentTypes are the values of the metadata's documentType.
var documentTypes = []string{"faktura", "tillatelser", "fraktregning", "opprinnelsesdokumentasjon", "fraktbrev"}

// fileTypes maps each allowed file extension to its media type. A file
// part may declare that type, application/octet-stream (what most
// multipart writers send for a file) or nothing.
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

// declarationIDPattern is a declarant number of nine digits, a date as
// ddmmyyyy and a sequence number, e.g. 123456789-01092023-1.
var declarationIDPattern = regexp.MustCompile(`^[0-9]{9}-([0-9]{8})-[0-9]{1,9}$`)

// ValidDeclarationID reports whether id has the form of a goods
// declaration id: nine digits, a real date as ddmmyyyy and a sequence
// number, joined by '-' (123456789-01092023-1).
func ValidDeclarationID(id string) bool {
	m := declarationIDPattern.FindStringSubmatch(id)
	if m == nil {
		return false
	}
	_, err := time.Parse("02012006", m[1])
	return err == nil
}

// Document is one file the document API accepted.
type Document struct {
	// DocumentID is the id the upload was answered with.
	DocumentID    string
	DeclarationID string
	DocumentType  string
	Filename      string
	// ContentType is the file part's Content-Type as sent, if any.
	ContentType string
	// Size is the number of bytes of the file.
	Size int64
	// SHA256 is the lowercase hex SHA-256 of the file's bytes.
	SHA256 string
	// ClientID is the integration whose token made the call.
	ClientID string
	// At is when the simulator received it (Config.Now).
	At time.Time
}

// Documents lists the files the document API accepted, in the order
// received. Uploading the same file again is accepted as a new document
// with a new DocumentID: Toll's behaviour for duplicates is not
// documented, and a store that keeps both is the one a client must
// expect, so tests count re-sends here.
func (s *Server) Documents() []Document {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.documents)
}

// registerDocuments registers the document upload endpoint.
func (s *Server) registerDocuments(mux *http.ServeMux) {
	s.handle(mux, RouteDocumentUpload, s.tollAPI(documentScopes, s.serveDocument))
}

// serveDocument checks and stores one upload: a multipart/form-data body
// of exactly a metadata part then a file part. The body is read as a
// stream; the file is hashed and counted, never held.
func (s *Server) serveDocument(w http.ResponseWriter, r *http.Request, c caller) {
	body := http.MaxBytesReader(w, r.Body, maxUploadBodyBytes)
	doc, bad := readUpload(body, r.Header.Get("Content-Type"), r.PathValue("declarationId"))
	if bad != nil {
		// Read what is left (MaxBytesReader bounds it), so that the
		// client gets this answer rather than a reset while writing.
		_, _ = io.Copy(io.Discard, body)
		setRequestNote(r, "refused with "+http.StatusText(bad.status))
		bad.write(w)
		return
	}
	doc.DocumentID = uuid.NewString()
	doc.ClientID = c.clientID
	s.mu.Lock()
	doc.At = s.now()
	s.documents = append(s.documents, doc)
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, map[string]string{"documentId": doc.DocumentID})
}

// readUpload reads the multipart body. Every problem it can find is
// reported in one 400, as a bean validator would; a body over the size
// limit is 413 and a body that is not multipart/form-data is 415.
func readUpload(body io.Reader, contentType, pathID string) (Document, *badRequest) {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil || mt != "multipart/form-data" || params["boundary"] == "" {
		return Document{}, &badRequest{status: http.StatusUnsupportedMediaType, msg: "Content-Type must be multipart/form-data with a boundary"}
	}
	var errs []fieldError
	add := func(field, format string, args ...any) {
		errs = append(errs, fieldError{field, fmt.Sprintf(format, args...)})
	}
	if !ValidDeclarationID(pathID) {
		add("declarationId", "invalid declaration id %q (declarant number, ddmmyyyy, sequence, e.g. 123456789-01092023-1)", pathID)
	}

	doc := Document{DeclarationID: pathID}
	var meta *uploadMetadata
	seenFile, tooLarge := false, false
	mr := multipart.NewReader(body, params["boundary"])
	parts := 0
	for ; parts < maxUploadParts; parts++ {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if _, over := errors.AsType[*http.MaxBytesError](err); over {
				return Document{}, &badRequest{status: http.StatusRequestEntityTooLarge, msg: "request body too large"}
			}
			add("", "malformed multipart body: %v", err)
			break
		}
		name := p.FormName()
		switch {
		case parts == 0 && name == "metadata":
			meta = readMetadata(p, add)
		case parts == 1 && name == "file":
			seenFile = true
			var bad *badRequest
			tooLarge, bad = readFile(p, &doc, add)
			if bad != nil {
				return Document{}, bad
			}
		case parts == 0:
			add("metadata", "the first part must be metadata, not %q", name)
		case parts == 1:
			add("file", "the second part must be file, not %q", name)
		default:
			add("", "unexpected part %q: the body has exactly two parts, metadata then file", name)
		}
		// Whatever is left of a part (one refused unread) is skipped by
		// NextPart, which reads through to the next boundary.
	}
	if parts == maxUploadParts {
		add("", "more than %d parts: the body has exactly two parts, metadata then file", maxUploadParts-1)
	}
	if parts == 0 {
		add("metadata", "missing part: the body has exactly two parts, metadata then file")
	}
	if parts <= 1 && !seenFile {
		add("file", "missing part: the body has exactly two parts, metadata then file")
	}
	if tooLarge {
		return Document{}, &badRequest{status: http.StatusRequestEntityTooLarge, msg: fmt.Sprintf("file larger than %d bytes", MaxDocumentBytes)}
	}
	if meta != nil {
		switch {
		case meta.DeclarationID == nil || strings.TrimSpace(*meta.DeclarationID) == "":
			add("metadata.declarationId", msgBlank)
		case *meta.DeclarationID != pathID:
			add("metadata.declarationId", "must equal the declaration id in the path (%s)", pathID)
		}
		switch {
		case meta.DocumentType == nil || strings.TrimSpace(*meta.DocumentType) == "":
			add("metadata.documentType", msgBlank)
		case !slices.Contains(documentTypes, *meta.DocumentType):
			add("metadata.documentType", "unknown document type %q (one of %s)", *meta.DocumentType, strings.Join(documentTypes, ", "))
		default:
			doc.DocumentType = *meta.DocumentType
		}
	}
	if len(errs) > 0 {
		return Document{}, &badRequest{status: http.StatusBadRequest, errs: errs}
	}
	return doc, nil
}

// uploadMetadata is the metadata part. Pointers tell a missing field from
// an empty one.
type uploadMetadata struct {
	DeclarationID *string `json:"declarationId"`
	DocumentType  *string `json:"documentType"`
}

// readMetadata reads and decodes the metadata part; nil if it is not a
// JSON object of the known fields (the problem is added).
func readMetadata(p *multipart.Part, add func(field, format string, args ...any)) *uploadMetadata {
	if mt, _, err := mime.ParseMediaType(p.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		add("metadata", "the metadata part must have Content-Type application/json")
		return nil
	}
	raw, err := io.ReadAll(io.LimitReader(p, maxMetadataBytes+1))
	switch {
	case err != nil:
		add("metadata", "could not read the metadata part")
		return nil
	case len(raw) > maxMetadataBytes:
		add("metadata", "the metadata part is larger than %d bytes", maxMetadataBytes)
		return nil
	}
	var m uploadMetadata
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil || dec.Decode(new(any)) != io.EOF {
		add("metadata", "malformed JSON: want {\"declarationId\":…,\"documentType\":…}")
		return nil
	}
	return &m
}

// readFile checks the file part's name and type, then streams its bytes
// through SHA-256, counting them. It reports a file over MaxDocumentBytes
// as tooLarge, and a body over the request limit as a 413.
func readFile(p *multipart.Part, doc *Document, add func(field, format string, args ...any)) (tooLarge bool, bad *badRequest) {
	doc.Filename = p.FileName()
	doc.ContentType = p.Header.Get("Content-Type")
	ext := strings.TrimPrefix(strings.ToLower(path.Ext(doc.Filename)), ".")
	want, known := fileTypes[ext]
	switch {
	case doc.Filename == "":
		add("file", "the file part must have a filename")
	case !known:
		add("file", "file type %q is not accepted (pdf, jpg, png, txt, doc, docx, xls, xlsx)", path.Ext(doc.Filename))
	case doc.ContentType != "":
		mt, _, err := mime.ParseMediaType(doc.ContentType)
		if err != nil || (mt != want && mt != "application/octet-stream") {
			add("file", "Content-Type %q does not match a .%s file (want %s or application/octet-stream)", doc.ContentType, ext, want)
		}
	}
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(p, MaxDocumentBytes+1))
	if err == nil && n > MaxDocumentBytes {
		// Drain the rest of the part; NextPart would do it, but only
		// here is the MaxBytesError of an absurd body visible.
		_, err = io.Copy(io.Discard, p)
		tooLarge = true
	}
	if err != nil {
		if _, over := errors.AsType[*http.MaxBytesError](err); over {
			return false, &badRequest{status: http.StatusRequestEntityTooLarge, msg: "request body too large"}
		}
		add("file", "could not read the file part: %v", err)
		return false, nil
	}
	if n == 0 {
		add("file", "the file is empty")
	}
	doc.Size = n
	doc.SHA256 = hex.EncodeToString(h.Sum(nil))
	return tooLarge, nil
}
