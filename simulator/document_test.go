package simulator_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"strings"
	"testing"

	"github.com/digitoll/digitoll-worker/simulator"
)

const (
	scopeDocument = "toll:goodsdeclaration/document.write"
	declID        = "123456789-01092023-1"
)

// documentToken is a Toll token of clientKid for documents, after
// granting it the document scope.
func documentToken(t *testing.T, srv *simulator.Server) string {
	t.Helper()
	srv.GrantScope(clientKid, scopeDocument)
	return exchange(t, srv, maskinportenToken(t, srv, kidGrant(t, srv, scopeDocument)))
}

func documentURL(srv *simulator.Server, id string) string {
	return srv.TollBaseURL() + "/goodsdeclaration/document/v2/declaration-id/" + id + "/document"
}

// part is one part of a multipart body; an empty contentType sends none.
type part struct {
	name, filename, contentType string
	body                        []byte
}

func metadataPart(json string) part {
	return part{name: "metadata", contentType: "application/json", body: []byte(json)}
}

func filePart(filename, contentType string, body []byte) part {
	return part{name: "file", filename: filename, contentType: contentType, body: body}
}

func meta(id, docType string) part {
	return metadataPart(`{"declarationId":"` + id + `","documentType":"` + docType + `"}`)
}

// multipartBody encodes parts in the order given and returns the
// request's Content-Type and body.
func multipartBody(t *testing.T, parts ...part) (string, []byte) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, p := range parts {
		h := textproto.MIMEHeader{}
		if p.filename != "" {
			h.Set("Content-Disposition", multipart.FileContentDisposition(p.name, p.filename))
		} else {
			h.Set("Content-Disposition", `form-data; name="`+p.name+`"`)
		}
		if p.contentType != "" {
			h.Set("Content-Type", p.contentType)
		}
		w, err := mw.CreatePart(h)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(p.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	return mw.FormDataContentType(), buf.Bytes()
}

func upload(t *testing.T, u, token, contentType string, body []byte) answer {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return do(t, req)
}

func TestDocumentUploadAccepted(t *testing.T) {
	srv := start(t, simulator.Config{})
	tok := documentToken(t, srv)
	file := []byte("%PDF-1.7 an invoice")
	sum := sha256.Sum256(file)

	ct, body := multipartBody(t, meta(declID, "faktura"), filePart("invoice.pdf", "application/pdf", file))
	first := upload(t, documentURL(srv, declID), tok, ct, body)
	if first.status != http.StatusCreated || first.str("documentId") == "" {
		t.Fatalf("upload: %d %s, want 201 with a documentId", first.status, first.raw)
	}
	// The same file again is accepted as a second document.
	second := upload(t, documentURL(srv, declID), tok, ct, body)
	if second.status != http.StatusCreated || second.str("documentId") == first.str("documentId") {
		t.Fatalf("second upload: %d %s, want 201 with a new documentId", second.status, second.raw)
	}

	docs := srv.Documents()
	if len(docs) != 2 {
		t.Fatalf("%d documents recorded, want 2: %+v", len(docs), docs)
	}
	d := docs[0]
	if d.DocumentID != first.str("documentId") || d.DeclarationID != declID || d.DocumentType != "faktura" ||
		d.Filename != "invoice.pdf" || d.ContentType != "application/pdf" || d.Size != int64(len(file)) ||
		d.SHA256 != hex.EncodeToString(sum[:]) || d.ClientID != clientKid || d.At.IsZero() {
		t.Errorf("recorded %+v, want the upload's id, metadata, size %d and sha256 %x", d, len(file), sum)
	}
	if docs[1].SHA256 != d.SHA256 {
		t.Errorf("the duplicate's sha256 %s differs from %s", docs[1].SHA256, d.SHA256)
	}
	if n := srv.Stats().Requests(simulator.RouteDocumentUpload); n != 2 {
		t.Errorf("%d requests counted, want 2", n)
	}
}

func TestDocumentUploadEveryTypeAndSize(t *testing.T) {
	srv := start(t, simulator.Config{})
	tok := documentToken(t, srv)
	tests := []struct {
		filename, contentType, docType string
		size                           int
	}{
		{"a.pdf", "application/pdf", "faktura", 10},
		{"b.JPG", "image/jpeg", "tillatelser", 10},
		{"c.png", "", "fraktregning", 10},
		{"d.txt", "text/plain; charset=utf-8", "opprinnelsesdokumentasjon", 10},
		{"e.doc", "application/octet-stream", "fraktbrev", 10},
		{"f.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document", "faktura", 10},
		{"g.xls", "application/vnd.ms-excel", "faktura", 10},
		{"h.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "faktura", 10},
		{"exactly-the-limit.pdf", "application/pdf", "faktura", simulator.MaxDocumentBytes},
	}
	for _, tt := range tests {
		t.Run(tt.filename, func(t *testing.T) {
			ct, body := multipartBody(t, meta(declID, tt.docType), filePart(tt.filename, tt.contentType, bytes.Repeat([]byte{'x'}, tt.size)))
			if a := upload(t, documentURL(srv, declID), tok, ct, body); a.status != http.StatusCreated {
				t.Fatalf("%d %s, want 201", a.status, a.raw)
			}
			docs := srv.Documents()
			if last := docs[len(docs)-1]; last.Filename != tt.filename || last.Size != int64(tt.size) {
				t.Errorf("recorded %+v, want %s of %d bytes", last, tt.filename, tt.size)
			}
		})
	}
}

func TestDocumentUploadRefused(t *testing.T) {
	srv := start(t, simulator.Config{})
	tok := documentToken(t, srv)
	pdf := []byte("%PDF-1.7")
	good := func() []part { return []part{meta(declID, "faktura"), filePart("a.pdf", "application/pdf", pdf)} }
	tests := []struct {
		name  string
		id    string // path declaration id; empty means declID
		parts []part
		want  []string // substrings, each of some "field: error" line
	}{
		{"file before metadata", "", []part{filePart("a.pdf", "application/pdf", pdf), meta(declID, "faktura")},
			[]string{"metadata: the first part must be metadata", "file: the second part must be file"}},
		{"no file", "", []part{meta(declID, "faktura")}, []string{"file: missing part"}},
		{"no metadata", "", []part{filePart("a.pdf", "application/pdf", pdf)}, []string{"metadata: the first part must be metadata", "file: missing part"}},
		{"extra part", "", append(good(), part{name: "comment", body: []byte("hi")}), []string{`unexpected part "comment"`}},
		{"metadata not JSON typed", "", []part{{name: "metadata", contentType: "text/plain", body: []byte(`{"declarationId":"` + declID + `","documentType":"faktura"}`)}, good()[1]},
			[]string{"metadata: the metadata part must have Content-Type application/json"}},
		{"metadata malformed", "", []part{metadataPart(`{"declarationId":`), good()[1]}, []string{"metadata: malformed JSON"}},
		{"metadata with an unknown field", "", []part{metadataPart(`{"declarationId":"` + declID + `","documentType":"faktura","x":1}`), good()[1]}, []string{"metadata: malformed JSON"}},
		{"metadata for another declaration", "", []part{meta("123456789-01092023-2", "faktura"), good()[1]},
			[]string{"metadata.declarationId: must equal the declaration id in the path"}},
		{"metadata without declarationId", "", []part{metadataPart(`{"documentType":"faktura"}`), good()[1]}, []string{"metadata.declarationId: must not be blank"}},
		{"unknown document type", "", []part{meta(declID, "kvittering"), good()[1]}, []string{`metadata.documentType: unknown document type "kvittering"`}},
		{"declarant number too short", "12345678-01092023-1", []part{meta("12345678-01092023-1", "faktura"), good()[1]}, []string{"declarationId: invalid declaration id"}},
		{"impossible date", "123456789-31022023-1", []part{meta("123456789-31022023-1", "faktura"), good()[1]}, []string{"declarationId: invalid declaration id"}},
		{"no sequence", "123456789-01092023", []part{meta("123456789-01092023", "faktura"), good()[1]}, []string{"declarationId: invalid declaration id"}},
		{"exe", "", []part{good()[0], filePart("setup.exe", "application/octet-stream", pdf)}, []string{`file: file type ".exe" is not accepted`}},
		{"no extension", "", []part{good()[0], filePart("invoice", "application/pdf", pdf)}, []string{`file: file type "" is not accepted`}},
		{"content type of another file type", "", []part{good()[0], filePart("a.pdf", "image/png", pdf)}, []string{`file: Content-Type "image/png" does not match a .pdf file`}},
		{"file without a filename", "", []part{good()[0], {name: "file", contentType: "application/pdf", body: pdf}}, []string{"file: the file part must have a filename"}},
		{"empty file", "", []part{good()[0], filePart("a.pdf", "application/pdf", nil)}, []string{"file: the file is empty"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := tt.id
			if id == "" {
				id = declID
			}
			before := len(srv.Documents())
			ct, body := multipartBody(t, tt.parts...)
			got := fieldErrors(t, upload(t, documentURL(srv, id), tok, ct, body))
			for _, w := range tt.want {
				found := false
				for _, g := range got {
					found = found || strings.Contains(g, w)
				}
				if !found {
					t.Errorf("errors %q lack %q", got, w)
				}
			}
			if n := len(srv.Documents()); n != before {
				t.Errorf("a refused upload was recorded (%d documents, want %d)", n, before)
			}
		})
	}
}

func TestDocumentUploadTooLarge(t *testing.T) {
	srv := start(t, simulator.Config{})
	tok := documentToken(t, srv)
	ct, body := multipartBody(t, meta(declID, "faktura"), filePart("big.pdf", "application/pdf", make([]byte, simulator.MaxDocumentBytes+1)))
	a := upload(t, documentURL(srv, declID), tok, ct, body)
	if a.status != http.StatusRequestEntityTooLarge || !strings.Contains(a.str("message"), "larger than 10485760 bytes") {
		t.Errorf("%d %s, want 413 naming the limit", a.status, a.raw)
	}
	if n := len(srv.Documents()); n != 0 {
		t.Errorf("%d documents recorded, want none", n)
	}
}

func TestDocumentUploadNeedsMultipartAndScope(t *testing.T) {
	srv := start(t, simulator.Config{})
	tok := documentToken(t, srv)
	ct, body := multipartBody(t, meta(declID, "faktura"), filePart("a.pdf", "application/pdf", []byte("x")))
	tests := []struct {
		name, token, contentType string
		want                     int
	}{
		{"JSON body", tok, "application/json", http.StatusUnsupportedMediaType},
		{"multipart without boundary", tok, "multipart/form-data", http.StatusUnsupportedMediaType},
		{"no token", "", ct, http.StatusUnauthorized},
		{"road token", roadToken(t, srv), ct, http.StatusForbidden},
		{"unknown token", "not-a-token", ct, http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if a := upload(t, documentURL(srv, declID), tt.token, tt.contentType, body); a.status != tt.want {
				t.Errorf("%d %s, want %d", a.status, a.raw, tt.want)
			}
		})
	}
	if n := len(srv.Documents()); n != 0 {
		t.Errorf("%d documents recorded, want none", n)
	}
}
