package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/embednats"
	"github.com/digitoll/digitoll-worker/internal/natstest"
	"github.com/digitoll/digitoll-worker/worker"
)

const testDeclarationID = "123456789-01092023-1"

// writeFile writes data to name in dir and returns its path.
func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Everything about the arguments is checked before NATS is contacted
// (the URL leads nowhere).
func TestPublishDocumentArguments(t *testing.T) {
	dir := t.TempDir()
	pdf := writeFile(t, dir, "invoice.pdf", []byte("%PDF-1.7"))
	exe := writeFile(t, dir, "setup.exe", []byte("MZ"))
	empty := writeFile(t, dir, "empty.pdf", nil)
	big := filepath.Join(dir, "big.pdf")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(10<<20 + 1); err != nil {
		t.Fatal(err)
	}
	f.Close()

	doc := func(extra ...string) []string {
		return append([]string{"publish", "--nats-url", "nats://127.0.0.1:1", "--kind", "document", "--declaration-id", testDeclarationID, "--document-type", "faktura"}, extra...)
	}
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStderr string
	}{
		{"document flags need kind document", []string{"publish", "--declaration-id", testDeclarationID, "--document-type", "faktura", pdf}, 2, "use them with --kind document"},
		{"both document flags", []string{"publish", "--kind", "document", "--declaration-id", testDeclarationID, pdf}, 2, `--document-type: "" is not one of faktura`},
		{"declaration id", []string{"publish", "--kind", "document", "--declaration-id", "MAWB-1", "--document-type", "faktura", pdf}, 2, `--declaration-id: "MAWB-1" is not`},
		{"document type", []string{"publish", "--kind", "document", "--declaration-id", testDeclarationID, "--document-type", "kvittering", pdf}, 2, `--document-type: "kvittering"`},
		{"no-check", append(doc("--no-check"), pdf), 2, "--no-check is for submission files"},
		{"file type", doc(pdf, exe), 1, `type ".exe" is not accepted`},
		{"empty file", doc(empty), 1, "empty.pdf is empty"},
		{"too large", doc(big), 1, "big.pdf has 10485761 bytes, more than Toll's 10485760"},
		{"directory", doc(dir), 1, "is not a file"},
		{"missing file", doc(filepath.Join(dir, "nope.pdf")), 1, "nope.pdf"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, out, errOut := testEnv(nil)
			if code := run(context.Background(), env, tt.args); code != tt.wantCode || !strings.Contains(errOut.String(), tt.wantStderr) {
				t.Errorf("exit %d, want %d; stderr lacks %q?\nstdout: %s\nstderr: %s", code, tt.wantCode, tt.wantStderr, out, errOut)
			}
		})
	}
}

// natsWithStreams is an embedded server with the worker's streams and
// buckets.
func natsWithStreams(t *testing.T) (*embednats.Server, jetstream.JetStream) {
	t.Helper()
	srv, js := natstest.Start(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := worker.EnsureStreams(ctx, js, worker.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	return srv, js
}

func TestPublishDocuments(t *testing.T) {
	srv, js := natsWithStreams(t)
	dir := t.TempDir()
	files := map[string][]byte{"invoice.pdf": []byte("%PDF-1.7 invoice"), "scan.PNG": []byte("\x89PNG scan")}
	var paths []string
	for name, data := range files {
		paths = append(paths, writeFile(t, dir, name, data))
	}
	args := append([]string{"publish", "--kind", "document", "--tenant", "acme", "--declaration-id", testDeclarationID, "--document-type", "faktura"}, paths...)
	env, out, errOut := testEnv(map[string]string{"DIGITOLL_NATS_URL": srv.ClientURL()})
	if code := run(t.Context(), env, args); code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	if n := strings.Count(out.String(), "published "); n != 2 || strings.Contains(out.String(), "duplicate") {
		t.Errorf("stdout:\n%s\nwant a line per file, no duplicate", out)
	}

	ctx := t.Context()
	store, err := js.ObjectStore(ctx, contract.BucketDocuments)
	if err != nil {
		t.Fatal(err)
	}
	stream, err := js.Stream(ctx, contract.StreamSubmit)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for seq := uint64(1); seq <= 2; seq++ {
		msg, err := stream.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		if msg.Subject != contract.SubmitSubject(contract.KindDocument, "acme") {
			t.Errorf("published to %s", msg.Subject)
		}
		sub, err := contract.ParseSubmission(contract.KindDocument, msg.Data)
		if err != nil {
			t.Fatal(err)
		}
		d := sub.Document
		data, ok := files[d.Filename]
		if !ok {
			t.Fatalf("submission for an unknown file: %s", msg.Data)
		}
		seen[d.Filename] = true
		sum := sha256.Sum256(data)
		hexSum := hex.EncodeToString(sum[:])
		if want := "acme/" + hexSum + "/" + d.Filename; d.Object != want || len(d.Content) != 0 {
			t.Errorf("%s: object %q, want %q and no content", d.Filename, d.Object, want)
		}
		if want := testDeclarationID + "-faktura-" + hexSum[:32]; sub.ID != want || msg.Header.Get("Nats-Msg-Id") != "acme/"+want {
			t.Errorf("%s: id %q, Nats-Msg-Id %q; want %q", d.Filename, sub.ID, msg.Header.Get("Nats-Msg-Id"), want)
		}
		if d.DeclarationID != testDeclarationID || d.DocumentType != "faktura" || d.ContentType == "" {
			t.Errorf("%s: %+v", d.Filename, d)
		}
		stored, err := store.GetBytes(ctx, d.Object)
		if err != nil || string(stored) != string(data) {
			t.Errorf("%s: stored %q, %v; want the file", d.Filename, stored, err)
		}
	}
	if len(seen) != 2 {
		t.Fatalf("submissions for %v, want both files", seen)
	}

	// Again: the same ids, dropped as duplicates; the objects are kept.
	before, err := store.GetInfo(ctx, "acme/"+hexOf(files["invoice.pdf"])+"/invoice.pdf")
	if err != nil {
		t.Fatal(err)
	}
	env, out, errOut = testEnv(map[string]string{"DIGITOLL_NATS_URL": srv.ClientURL()})
	if code := run(t.Context(), env, args); code != 0 {
		t.Fatalf("again: exit %d\nstderr: %s", code, errOut)
	}
	if n := strings.Count(out.String(), "(duplicate: JetStream already has this id, dropped)"); n != 2 {
		t.Errorf("again: stdout:\n%s\nwant both dropped as duplicates", out)
	}
	after, err := store.GetInfo(ctx, before.Name)
	if err != nil || after.NUID != before.NUID {
		t.Errorf("the object was stored again (%v)", err)
	}
}

func hexOf(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// A batch larger than the progress threshold still prints a line per
// file when stderr is no terminal (as in this test).
func TestPublishManyWithoutTerminal(t *testing.T) {
	srv, _ := natsWithStreams(t)
	dir := t.TempDir()
	const n = progressThreshold + 5
	for i := range n {
		writeFile(t, dir, fmt.Sprintf("%02d.json", i), fmt.Appendf(nil, `{"id":"many-%d","operation":"present","mrn":"25NO4TU2HUD59UCBT8","presentation":{"customsOfficeOfPresentation":"NO351001"}}`, i))
	}
	env, out, errOut := testEnv(map[string]string{"DIGITOLL_NATS_URL": srv.ClientURL()})
	if code := run(t.Context(), env, []string{"publish", "--kind", "entry", dir}); code != 0 {
		t.Fatalf("exit %d\nstderr: %s", code, errOut)
	}
	if got := strings.Count(out.String(), "published "); got != n {
		t.Errorf("%d lines, want %d:\n%s", got, n, out)
	}
}

// With a bar, the bar goes to stderr and stdout gets one summary.
func TestProgressBar(t *testing.T) {
	env, out, errOut := testEnv(nil)
	p := startProgress(env, 3, "digitoll.submit.document.default", true)
	p.published(false, "line %d", 1)
	p.published(true, "line %d", 2)
	p.published(false, "line %d", 3)
	p.finish()
	if got, want := out.String(), "published 3 files to digitoll.submit.document.default (1 duplicates dropped by JetStream)\n"; got != want {
		t.Errorf("stdout %q, want %q", got, want)
	}
	if e := errOut.String(); !strings.Contains(e, "publishing") || !strings.Contains(e, "/3)") {
		t.Errorf("stderr %q, want a bar counting to 3", e)
	}
	if strings.Contains(out.String(), "line") {
		t.Error("a line per file was printed with the bar")
	}
}

// A file that is not JSON is named with the line and column where it
// stops being JSON; nothing is published (the URL leads nowhere).
func TestPublishNamesWhereJSONBreaks(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, body, want string
	}{
		{"trailing comma", "{\n  \"id\": \"a-1\",\n  \"operation\": \"create\",\n}\n", ":4:1: "},
		{"missing quote", "{\n  \"id\": \"a-1\",\n  operation: \"create\"\n}\n", ":3:3: "},
		{"unfinished", "{\"id\": \"a-1\"", ":1:12: "},
		{"columns count characters", "{\"id\": \"æøå\" x}", ":1:14: "},
		{"valid JSON, not a submission", `{"id": "a-1", "colour": "red"}`, "valid.json: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := "bad.json"
			if strings.HasPrefix(tt.want, "valid") {
				name = "valid.json"
			}
			f := writeFile(t, dir, name, []byte(tt.body))
			env, _, errOut := testEnv(nil)
			if code := run(t.Context(), env, []string{"publish", "--nats-url", "nats://127.0.0.1:1", f}); code != 1 {
				t.Errorf("exit %d, want 1", code)
			}
			want := f + tt.want
			if strings.HasPrefix(tt.want, "valid") {
				want = filepath.Join(dir, tt.want)
			}
			if !strings.Contains(errOut.String(), want) {
				t.Errorf("stderr lacks %q:\n%s", want, errOut)
			}
		})
	}
}

func TestLineColumn(t *testing.T) {
	data := []byte("ab\ncdé\nf")
	for _, tt := range []struct {
		offset    int64
		line, col int
	}{
		{0, 1, 1}, {1, 1, 1}, {2, 1, 2}, {4, 2, 1}, {5, 2, 2}, {8, 2, 4}, {9, 3, 1}, {99, 3, 2},
	} {
		if line, col := lineColumn(data, tt.offset); line != tt.line || col != tt.col {
			t.Errorf("offset %d: %d:%d, want %d:%d", tt.offset, line, col, tt.line, tt.col)
		}
	}
}

// A directory is published as its *.json files; what else it holds is
// listed as skipped, with the reason.
func TestPublishListsSkippedFiles(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "01.json", []byte(`{"id":"one","operation":"present","mrn":"25NO4TU2HUD59UCBT8","presentation":{"customsOfficeOfPresentation":"NO351001"}}`))
	writeFile(t, dir, "README.md", []byte("notes"))
	writeFile(t, dir, "02.json.bak", []byte("{}"))
	if err := os.Mkdir(filepath.Join(dir, "more"), 0o700); err != nil {
		t.Fatal(err)
	}
	srv, _ := natsWithStreams(t)
	env, out, errOut := testEnv(map[string]string{"DIGITOLL_NATS_URL": srv.ClientURL()})
	if code := run(t.Context(), env, []string{"publish", "--kind", "entry", dir}); code != 0 {
		t.Fatalf("exit %d\nstderr: %s", code, errOut)
	}
	for _, w := range []string{
		"skipped " + filepath.Join(dir, "README.md") + ": not a *.json file",
		"skipped " + filepath.Join(dir, "02.json.bak") + ": not a *.json file",
		"skipped " + filepath.Join(dir, "more") + ": a directory",
	} {
		if !strings.Contains(errOut.String(), w) {
			t.Errorf("stderr lacks %q:\n%s", w, errOut)
		}
	}
	if got := strings.Count(out.String(), "published "); got != 1 {
		t.Errorf("%d published, want 1:\n%s", got, out)
	}

	// A directory with nothing to publish says so, and what it skipped.
	empty := t.TempDir()
	writeFile(t, empty, "notes.txt", []byte("x"))
	env, _, errOut = testEnv(map[string]string{"DIGITOLL_NATS_URL": srv.ClientURL()})
	if code := run(t.Context(), env, []string{"publish", "--kind", "entry", empty}); code != 1 ||
		!strings.Contains(errOut.String(), "holds no *.json files") || !strings.Contains(errOut.String(), "notes.txt: not a *.json file") {
		t.Errorf("exit %d\nstderr: %s", code, errOut)
	}
}
