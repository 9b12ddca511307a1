package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/digitoll/digitoll-worker/config"
	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/natsconn"
	"github.com/digitoll/digitoll-worker/toll"
)

// progressThreshold is the batch size from which publish shows a progress
// bar (on a terminal) instead of a line per file.
const progressThreshold = 20

func runPublish(ctx context.Context, env *environment, args []string) error {
	fs := newFlagSet(env, "publish", "[flags] FILE|DIR ...\n\n"+
		"Publishes each submission file (a directory: its *.json files in name order) to\n"+
		"digitoll.submit.<kind>.<tenant> with Nats-Msg-Id <tenant>/<id>.\n\n"+
		"With --declaration-id and --document-type (and --kind document), each FILE is a\n"+
		"document instead: it is stored in the Object Store bucket "+contract.BucketDocuments+" as\n"+
		"<tenant>/<sha256>/<name> and a submission uploading it is published, with an id\n"+
		"made of the declaration id, the document type and the file's SHA-256, so that\n"+
		"publishing the same file again is a duplicate.")
	kindName := fs.String("kind", "road", "kind of the submissions: road, air, entry or document ($DIGITOLL_PUBLISH_KIND)")
	tenant := fs.String("tenant", contract.DefaultTenant, "tenant the submissions belong to ($DIGITOLL_TENANT)")
	nf := addNATSFlags(env, fs)
	noCheck := fs.Bool("no-check", false, "publish files even if they do not parse as submissions (to exercise the DLQ)")
	declarationID := fs.String("declaration-id", "", "upload the FILEs as documents of this goods declaration (e.g. 123456789-01092023-1)")
	documentType := fs.String("document-type", "", "type of the uploaded documents: "+strings.Join(toll.DocumentTypes(), ", "))
	if err := applyEnv(env, fs); err != nil {
		return err
	}
	if err := parseFlags(env, fs, args); err != nil {
		return err
	}
	kind, err := contract.ParseKind(*kindName)
	if err != nil {
		return usageError(env, fs, fmt.Sprintf("--kind: %v", err))
	}
	if !contract.ValidTenant(*tenant) {
		return usageError(env, fs, fmt.Sprintf("--tenant: %q is not 1-63 characters of a-z, 0-9 and '-'", *tenant))
	}
	if fs.NArg() == 0 {
		return usageError(env, fs, "name at least one file or directory")
	}
	nc, err := nf.config()
	if err != nil {
		return err
	}
	if *declarationID == "" && *documentType == "" {
		return publishSubmissions(ctx, env, nc, kind, *tenant, fs.Args(), *noCheck)
	}
	switch {
	case kind != contract.KindDocument:
		return usageError(env, fs, "--declaration-id and --document-type upload documents: use them with --kind document")
	case *noCheck:
		return usageError(env, fs, "--no-check is for submission files, not documents")
	case !toll.ValidDeclarationID(*declarationID):
		return usageError(env, fs, fmt.Sprintf("--declaration-id: %q is not a declarant number, a date as ddmmyyyy and a sequence number (123456789-01092023-1)", *declarationID))
	case !toll.ValidDocumentType(*documentType):
		return usageError(env, fs, fmt.Sprintf("--document-type: %q is not one of %s", *documentType, strings.Join(toll.DocumentTypes(), ", ")))
	}
	return publishDocuments(ctx, env, nc, *tenant, *declarationID, *documentType, fs.Args())
}

// publishSubmissions publishes submission files as they are.
func publishSubmissions(ctx context.Context, env *environment, nc config.NATS, kind contract.Kind, tenant string, args []string, noCheck bool) error {
	files, skipped, err := submissionFiles(args)
	for _, sk := range skipped {
		fmt.Fprintf(env.stderr, "skipped %s: %s\n", sk.path, sk.why)
	}
	if err != nil {
		return err
	}
	// Check every file before publishing any, so that a typo in file 7
	// does not leave files 1-6 published and the rest not.
	bodies := make([][]byte, len(files))
	ids := make([]string, len(files))
	for i, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		bodies[i] = b
		s, err := contract.ParseSubmission(kind, b)
		switch {
		case err == nil:
			ids[i] = s.ID
		case noCheck:
			ids[i] = fmt.Sprintf("unchecked-%d-%s", time.Now().UnixNano(), filepath.Base(f))
		default:
			return fmt.Errorf("%s: %w (use --no-check to publish it anyway)", jsonPosition(f, b), err)
		}
	}

	conn, err := natsconn.Connect(nc, "digitoll-publish", slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	defer conn.Close()
	subject := contract.SubmitSubject(kind, tenant)
	p := newProgress(env, len(files), subject)
	for i, f := range files {
		dup, seq, err := publishSubmission(ctx, conn.JS, subject, tenant, ids[i], bodies[i])
		if err != nil {
			p.abort()
			return fmt.Errorf("publish %s: %w", f, err)
		}
		p.published(dup, "published %s as %s to %s, sequence %d%s", f, ids[i], subject, seq, duplicateNote(dup))
	}
	p.finish()
	return nil
}

// publishSubmission publishes one submission body with its Nats-Msg-Id
// and reports whether JetStream dropped it as a duplicate.
func publishSubmission(ctx context.Context, js jetstream.JetStream, subject, tenant, id string, body []byte) (bool, uint64, error) {
	ack, err := js.PublishMsg(ctx, &nats.Msg{Subject: subject, Data: body, Header: nats.Header{}},
		jetstream.WithMsgID(contract.MsgID(tenant, id)))
	if err != nil {
		return false, 0, err
	}
	return ack.Duplicate, ack.Sequence, nil
}

func duplicateNote(dup bool) string {
	if dup {
		return " (duplicate: JetStream already has this id, dropped)"
	}
	return ""
}

// document is a file to upload, checked.
type document struct {
	path, name, contentType string
	size                    int64
}

// publishDocuments stores each file in the documents bucket and publishes
// a submission that uploads it.
func publishDocuments(ctx context.Context, env *environment, nc config.NATS, tenant, declarationID, documentType string, args []string) error {
	// Check every file before storing any.
	docs := make([]document, 0, len(args))
	for _, a := range args {
		st, err := os.Stat(a)
		if err != nil {
			return err
		}
		if !st.Mode().IsRegular() {
			return fmt.Errorf("%s is not a file; name the documents one by one", a)
		}
		name := filepath.Base(a)
		contentType, err := toll.DocumentContentType(name, "")
		if err != nil {
			return err
		}
		switch {
		case st.Size() == 0:
			return fmt.Errorf("%s is empty", a)
		case st.Size() > toll.MaxDocumentSize:
			return fmt.Errorf("%s has %d bytes, more than Toll's %d (10 MiB)", a, st.Size(), toll.MaxDocumentSize)
		}
		docs = append(docs, document{path: a, name: name, contentType: contentType, size: st.Size()})
	}

	conn, err := natsconn.Connect(nc, "digitoll-publish", slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	defer conn.Close()
	store, err := conn.JS.ObjectStore(ctx, contract.BucketDocuments)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return fmt.Errorf("the Object Store bucket %s does not exist: start the worker once, it creates the streams and the bucket", contract.BucketDocuments)
	}
	if err != nil {
		return fmt.Errorf("object store bucket %s: %w", contract.BucketDocuments, err)
	}
	subject := contract.SubmitSubject(contract.KindDocument, tenant)
	p := newProgress(env, len(docs), subject)
	for _, d := range docs {
		object, sum, err := storeDocument(ctx, store, tenant, d)
		if err != nil {
			p.abort()
			return fmt.Errorf("store %s: %w", d.path, err)
		}
		sub := contract.Submission{
			ID:        documentSubmissionID(declarationID, documentType, sum),
			Operation: contract.OpUpload,
			Document: &contract.Document{
				DeclarationID: declarationID, DocumentType: documentType,
				Filename: d.name, ContentType: d.contentType, Object: object,
			},
		}
		body, err := json.Marshal(sub)
		if err != nil {
			p.abort()
			return err
		}
		if _, err := contract.ParseSubmission(contract.KindDocument, body); err != nil {
			p.abort()
			return fmt.Errorf("%s: %w", d.path, err)
		}
		dup, seq, err := publishSubmission(ctx, conn.JS, subject, tenant, sub.ID, body)
		if err != nil {
			p.abort()
			return fmt.Errorf("publish %s: %w", d.path, err)
		}
		p.published(dup, "published %s as %s to %s, sequence %d (object %s, %d bytes)%s", d.path, sub.ID, subject, seq, object, d.size, duplicateNote(dup))
	}
	p.finish()
	return nil
}

// documentSubmissionID names the upload of one file (by its SHA-256) as
// one type of document of one declaration; the tenant is in the
// Nats-Msg-Id. 32 hex digits of the hash keep the id short and unique.
func documentSubmissionID(declarationID, documentType, sum string) string {
	return declarationID + "-" + documentType + "-" + sum[:32]
}

// storeDocument puts the file into the bucket as <tenant>/<sha256>/<name>,
// streamed from disk, and returns the object's name and the file's
// SHA-256. A file stored before under that name with the same digest is
// not stored again.
func storeDocument(ctx context.Context, store jetstream.ObjectStore, tenant string, d document) (string, string, error) {
	f, err := os.Open(d.path)
	if err != nil {
		return "", "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", "", err
	}
	digest := h.Sum(nil)
	sum := hex.EncodeToString(digest)
	name := tenant + "/" + sum + "/" + d.name
	if info, err := store.GetInfo(ctx, name); err == nil && sameDigest(info, digest) {
		return name, sum, nil
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return "", "", err
	}
	info, err := store.Put(ctx, jetstream.ObjectMeta{
		Name:        name,
		Description: d.name + " (" + d.contentType + ")",
	}, f)
	if err != nil {
		return "", "", err
	}
	if !sameDigest(info, digest) {
		// The file changed between hashing and storing it.
		return "", "", fmt.Errorf("%s changed while it was being stored; publish it again", d.path)
	}
	return name, sum, nil
}

func sameDigest(info *jetstream.ObjectInfo, digest []byte) bool {
	got, err := jetstream.DecodeObjectDigest(info.Digest)
	return err == nil && string(got) == string(digest)
}

// progress reports a batch: a line per file on stdout, or for a large
// batch on a terminal a progress bar on stderr and one summary line.
type progress struct {
	env     *environment
	bar     *progressbar.ProgressBar // nil: a line per file
	subject string
	n, dups int
}

// newProgress shows a bar for more than progressThreshold files when
// stderr is a terminal.
func newProgress(env *environment, total int, subject string) *progress {
	f, ok := env.stderr.(*os.File)
	bar := total > progressThreshold && ok && term.IsTerminal(int(f.Fd()))
	return startProgress(env, total, subject, bar)
}

func startProgress(env *environment, total int, subject string, bar bool) *progress {
	p := &progress{env: env, subject: subject}
	if bar {
		p.bar = progressbar.NewOptions(total,
			progressbar.OptionSetWriter(env.stderr),
			progressbar.OptionSetDescription("publishing"),
			progressbar.OptionShowCount(),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionClearOnFinish(),
		)
	}
	return p
}

// published records one publish; the line is printed unless a bar runs.
func (p *progress) published(dup bool, format string, args ...any) {
	p.n++
	if dup {
		p.dups++
	}
	if p.bar == nil {
		fmt.Fprintf(p.env.stdout, format+"\n", args...)
		return
	}
	// A bar that cannot draw is no reason to stop publishing.
	_ = p.bar.Add(1)
}

// finish ends the bar and prints the summary it stood for.
func (p *progress) finish() {
	if p.bar == nil {
		return
	}
	_ = p.bar.Finish()
	fmt.Fprintf(p.env.stdout, "published %d files to %s (%d duplicates dropped by JetStream)\n", p.n, p.subject, p.dups)
}

// abort clears the bar before an error is printed, saying how far it got.
func (p *progress) abort() {
	if p.bar == nil {
		return
	}
	_ = p.bar.Exit()
	fmt.Fprintf(p.env.stdout, "published %d files to %s before the error\n", p.n, p.subject)
}

// skippedFile is an entry of a directory that publish leaves out, and why.
type skippedFile struct{ path, why string }

// submissionFiles expands directories into their *.json files, sorted,
// and lists the entries of the directories it leaves out: other files and
// subdirectories (which are not searched).
func submissionFiles(args []string) ([]string, []skippedFile, error) {
	var out []string
	var skipped []skippedFile
	for _, a := range args {
		st, err := os.Stat(a)
		if err != nil {
			return nil, nil, err
		}
		if !st.IsDir() {
			out = append(out, a)
			continue
		}
		entries, err := os.ReadDir(a)
		if err != nil {
			return nil, nil, err
		}
		var names []string
		for _, e := range entries {
			p := filepath.Join(a, e.Name())
			switch {
			case e.IsDir():
				skipped = append(skipped, skippedFile{p, "a directory (only the *.json files directly in " + a + " are published)"})
			case !strings.HasSuffix(e.Name(), ".json"):
				skipped = append(skipped, skippedFile{p, "not a *.json file"})
			case !e.Type().IsRegular() && e.Type()&fs.ModeSymlink == 0:
				skipped = append(skipped, skippedFile{p, "not a regular file"})
			default:
				names = append(names, p)
			}
		}
		if len(names) == 0 {
			return nil, skipped, errors.New(a + " holds no *.json files")
		}
		sort.Strings(names)
		out = append(out, names...)
	}
	return out, skipped, nil
}

// jsonPosition names where in file the JSON of data stops making sense,
// as file:line:column (the column counted in characters, from 1), so that
// an editor can jump there; it is file alone when data is valid JSON or
// the problem has no place (an unknown field, a missing id).
func jsonPosition(file string, data []byte) string {
	var v any
	err := json.Unmarshal(data, &v)
	var syntax *json.SyntaxError
	if !errors.As(err, &syntax) {
		return file
	}
	line, col := lineColumn(data, syntax.Offset)
	return fmt.Sprintf("%s:%d:%d", file, line, col)
}

// lineColumn is the line and column, from 1, of the byte the JSON decoder
// stopped at: its offset counts the bytes read, the bad one included.
func lineColumn(data []byte, offset int64) (line, col int) {
	at := int(min(max(offset-1, 0), int64(len(data))))
	before := data[:at]
	line = 1 + bytes.Count(before, []byte("\n"))
	start := bytes.LastIndexByte(before, '\n') + 1
	return line, utf8.RuneCount(before[start:]) + 1
}
