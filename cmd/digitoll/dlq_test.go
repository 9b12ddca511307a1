package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/internal/natstest"
	"github.com/digitoll/digitoll-worker/worker"
)

func TestDLQCommandLine(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{"no subcommand", []string{"dlq"}, 2, "", "Subcommands:"},
		{"help lists the subcommands", []string{"dlq", "--help"}, 0, "replay", ""},
		{"help word", []string{"dlq", "help"}, 0, "purge", ""},
		{"unknown subcommand", []string{"dlq", "frob"}, 2, "", `unknown subcommand "frob"`},
		{"list --help", []string{"dlq", "list", "--help"}, 0, "-reason", ""},
		{"list with a bad kind", []string{"dlq", "list", "--kind", "sea"}, 2, "", "unknown kind"},
		{"list with a bad tenant", []string{"dlq", "list", "--tenant", "ACME"}, 2, "", "not a tenant name"},
		{"list with a bad since", []string{"dlq", "list", "--since", "soon"}, 2, "", "neither an age"},
		{"list with a negative age", []string{"dlq", "list", "--since", "-2h"}, 2, "", "must be positive"},
		{"list with an argument", []string{"dlq", "list", "12"}, 2, "", `unexpected argument "12"`},
		{"show without a sequence", []string{"dlq", "show"}, 2, "", "name the dead letter's sequence"},
		{"show with a bad sequence", []string{"dlq", "show", "x1"}, 2, "", "not a stream sequence"},
		{"show with two sequences", []string{"dlq", "show", "1", "2"}, 2, "", `unexpected argument "2"`},
		{"show with a bad flag after the sequence", []string{"dlq", "show", "1", "--bogus"}, 2, "", "flag provided but not defined: -bogus"},
		{"replay without a sequence", []string{"dlq", "replay"}, 2, "", "name the dead letter's sequence"},
		{"replay with both", []string{"dlq", "replay", "3", "--all"}, 2, "", "not both"},
		{"replay with filters but no --all", []string{"dlq", "replay", "--tenant", "acme", "3"}, 2, "", "for --all"},
		{"purge with an argument", []string{"dlq", "purge", "all"}, 2, "", `unexpected argument "all"`},
		{"embedded is for the worker", []string{"dlq", "list", "--nats-url", "embedded"}, 1, "", "DIGITOLL_NATS_URL (--nats-url): the worker's embedded server is reached at its URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, out, errOut := testEnv(nil)
			code := run(context.Background(), env, tt.args)
			if code != tt.wantCode {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.wantCode, out, errOut)
			}
			if !strings.Contains(out.String(), tt.wantStdout) {
				t.Errorf("stdout lacks %q:\n%s", tt.wantStdout, out)
			}
			if !strings.Contains(errOut.String(), tt.wantStderr) {
				t.Errorf("stderr lacks %q:\n%s", tt.wantStderr, errOut)
			}
		})
	}
}

func TestParseSince(t *testing.T) {
	now := time.Date(2025, 1, 15, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Time
		ok   bool
	}{
		{"2h", now.Add(-2 * time.Hour), true},
		{"90m", now.Add(-90 * time.Minute), true},
		{"7d", now.Add(-7 * 24 * time.Hour), true},
		{"2025-01-14T08:00:00Z", time.Date(2025, 1, 14, 8, 0, 0, 0, time.UTC), true},
		{"0s", time.Time{}, false},
		{"xd", time.Time{}, false},
		{"yesterday", time.Time{}, false},
	}
	for _, tt := range tests {
		got, err := parseSince(tt.in, now)
		if (err == nil) != tt.ok || (tt.ok && !got.Equal(tt.want)) {
			t.Errorf("parseSince(%q) = %v, %v; want %v (ok %v)", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

// dlqServer is an embedded server with the contract's streams and four
// dead letters: 1 road/acme a-1, 2 road/beta b-1, 3 air/acme a-2, 4 an
// unparsable subject under _invalid.
type dlqServer struct {
	url string
	js  jetstream.JetStream
}

func newDLQServer(t *testing.T) dlqServer {
	t.Helper()
	srv, js := natstest.Start(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := worker.EnsureStreams(ctx, js, worker.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, d := range []struct {
		kind           contract.Kind
		tenant, reason string
		body, original string
	}{
		{contract.KindRoad, "acme", "permanent-http", `{"id":"a-1","operation":"create","level":"transport","declaration":{"n":1}}`, ""},
		{contract.KindRoad, "beta", "malformed", `{"id":"b-1","operation":"create"}`, ""},
		{contract.KindAir, "acme", "deadline", `{"id":"a-2","operation":"create","level":"transport","declaration":{}}`, ""},
		{contract.KindRoad, "_invalid", "malformed", "{not json", "digitoll.submit.road.NOT_A_TENANT"},
	} {
		if d.original == "" {
			d.original = contract.SubmitSubject(d.kind, d.tenant)
		}
		h := nats.Header{"Digitoll-Shipment": {"S-" + d.tenant}, "traceparent": {"00-aa-bb-01"}}
		h.Set(contract.HeaderDLQReason, d.reason)
		h.Set(contract.HeaderDLQError, "toll answered 409: already in use")
		h.Set(contract.HeaderAttempts, "2")
		h.Set(contract.HeaderOriginalSubject, d.original)
		h.Set(contract.HeaderFailedAt, time.Now().UTC().Format(time.RFC3339))
		h.Set(contract.HeaderOriginalStreamSeq, "7")
		if _, err := js.PublishMsg(ctx, &nats.Msg{Subject: contract.DLQSubject(d.kind, d.tenant), Header: h, Data: []byte(d.body)}); err != nil {
			t.Fatal(err)
		}
	}
	return dlqServer{url: srv.ClientURL(), js: js}
}

// run runs `digitoll dlq args…` against the server, with stdin.
func (s dlqServer) run(t *testing.T, stdin io.Reader, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	env, out, errOut := testEnv(map[string]string{"DIGITOLL_NATS_URL": s.url})
	env.stdin = stdin
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code = run(ctx, env, append([]string{"dlq"}, args...))
	return code, out.String(), errOut.String()
}

// seqs is the sequences `dlq list --json` prints.
func (s dlqServer) seqs(t *testing.T, filters ...string) []uint64 {
	t.Helper()
	code, out, errOut := s.run(t, nil, append([]string{"list", "--json"}, filters...)...)
	if code != 0 {
		t.Fatalf("dlq list --json exited %d: %s", code, errOut)
	}
	var seqs []uint64
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var e struct {
			Seq uint64 `json:"seq"`
		}
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("dlq list --json line %q: %v", line, err)
		}
		seqs = append(seqs, e.Seq)
	}
	return seqs
}

func TestDLQListAndShow(t *testing.T) {
	t.Parallel()
	s := newDLQServer(t)

	code, out, errOut := s.run(t, nil, "list")
	if code != 0 {
		t.Fatalf("dlq list exited %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 6 || !strings.HasPrefix(lines[0], "SEQ") || lines[5] != "4 dead letters" {
		t.Fatalf("dlq list:\n%s", out)
	}
	for i, want := range []string{"road/acme  a-1", "road/beta  b-1", "air/acme   a-2", "road/_invalid  -"} {
		fields := strings.Fields(lines[i+1])
		if fields[0] != fmt.Sprint(i+1) || !strings.Contains(strings.Join(fields, " "), strings.Join(strings.Fields(want), " ")) {
			t.Errorf("row %d %q, want seq %d and %q", i+1, lines[i+1], i+1, want)
		}
	}
	if !strings.Contains(lines[1], "permanent-http") || !strings.Contains(lines[1], "toll answered 409: already in use") {
		t.Errorf("row 1 lacks reason or error: %q", lines[1])
	}

	for _, tt := range []struct {
		filters []string
		want    string
	}{
		{[]string{"--tenant", "acme"}, "[1 3]"},
		{[]string{"--kind", "road", "--reason", "malformed"}, "[2 4]"},
		{[]string{"--tenant", "_invalid"}, "[4]"},
		{[]string{"--since", "1h"}, "[1 2 3 4]"},
		{[]string{"--since", time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}, "[]"},
	} {
		if got := fmt.Sprint(s.seqs(t, tt.filters...)); got != tt.want {
			t.Errorf("dlq list %v = %s, want %s", tt.filters, got, tt.want)
		}
	}

	code, out, errOut = s.run(t, nil, "list", "--json", "--kind", "air")
	if code != 0 {
		t.Fatalf("dlq list --json exited %d: %s", code, errOut)
	}
	var e struct {
		Seq             uint64              `json:"seq"`
		ID              string              `json:"id"`
		Reason          string              `json:"reason"`
		Attempts        int                 `json:"attempts"`
		OriginalSubject string              `json:"originalSubject"`
		Headers         map[string][]string `json:"headers"`
		Body            map[string]any      `json:"body"`
	}
	if err := json.Unmarshal([]byte(out), &e); err != nil {
		t.Fatalf("dlq list --json: %v\n%s", err, out)
	}
	if e.Seq != 3 || e.ID != "a-2" || e.Reason != "deadline" || e.Attempts != 2 || e.OriginalSubject != "digitoll.submit.air.acme" ||
		e.Headers["Digitoll-Shipment"][0] != "S-acme" || e.Body["id"] != "a-2" {
		t.Fatalf("dlq list --json: %+v", e)
	}

	code, out, errOut = s.run(t, nil, "show", "1")
	if code != 0 {
		t.Fatalf("dlq show exited %d: %s", code, errOut)
	}
	for _, want := range []string{"Dead letter 1 on digitoll.dlq.road.acme", "  Digitoll-Dlq-Reason: permanent-http",
		"  Digitoll-Original-Subject: digitoll.submit.road.acme", "  traceparent: 00-aa-bb-01", "\n  \"id\": \"a-1\",\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("dlq show lacks %q:\n%s", want, out)
		}
	}
	code, out, _ = s.run(t, nil, "show", "4")
	if code != 0 || !strings.Contains(out, "\n{not json\n") {
		t.Errorf("dlq show of a body that is not JSON (exit %d):\n%s", code, out)
	}
	if code, _, errOut := s.run(t, nil, "show", "99"); code != 1 || !strings.Contains(errOut, "not found") {
		t.Errorf("dlq show 99: exit %d, %s", code, errOut)
	}
}

func TestDLQReplay(t *testing.T) {
	t.Parallel()
	s := newDLQServer(t)

	code, out, errOut := s.run(t, nil, "replay", "1")
	if code != 0 || !strings.Contains(out, "replayed 1 road/acme a-1 -> digitoll.submit.road.acme") ||
		!strings.Contains(out, "Nats-Msg-Id acme/a-1/replay/1") {
		t.Fatalf("dlq replay 1: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sub, err := s.js.Stream(ctx, contract.StreamSubmit)
	if err != nil {
		t.Fatal(err)
	}
	m, err := sub.GetMsg(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if m.Subject != "digitoll.submit.road.acme" || m.Header.Get("Digitoll-Shipment") != "S-acme" ||
		m.Header.Get(contract.HeaderDLQReason) != "" || !strings.Contains(string(m.Data), `"id":"a-1"`) {
		t.Fatalf("replayed message %s %v %s", m.Subject, m.Header, m.Data)
	}

	code, _, errOut = s.run(t, nil, "replay", "4")
	if code != 1 || !strings.Contains(errOut, "cannot be replayed") {
		t.Fatalf("dlq replay of an _invalid entry: exit %d, %s", code, errOut)
	}
	if got := fmt.Sprint(s.seqs(t)); got != "[2 3 4]" {
		t.Fatalf("left after replay: %s, want [2 3 4]", got)
	}

	code, out, errOut = s.run(t, nil, "replay", "--all", "--kind", "road")
	if code != 1 || !strings.Contains(out, "replayed 2 road/beta b-1") || !strings.Contains(out, "Replayed 1 dead letter.") ||
		!strings.Contains(errOut, "skipped 4: dead letter cannot be replayed") || !strings.Contains(errOut, "1 dead letter not replayed") {
		t.Fatalf("dlq replay --all --kind road: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	code, out, errOut = s.run(t, nil, "replay", "--all", "--tenant", "acme")
	if code != 0 || !strings.Contains(out, "replayed 3 air/acme a-2") || !strings.Contains(out, "Replayed 1 dead letter.") {
		t.Fatalf("dlq replay --all --tenant acme: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	if got := fmt.Sprint(s.seqs(t)); got != "[4]" {
		t.Fatalf("left after replay --all: %s, want [4]", got)
	}
}

// fakeTerminal is a stdin that says it is a terminal, so that purge asks.
type fakeTerminal struct{ io.Reader }

func (fakeTerminal) IsTerminal() bool { return true }

func TestDLQPurge(t *testing.T) {
	t.Parallel()
	s := newDLQServer(t)

	code, _, errOut := s.run(t, strings.NewReader("y\n"), "purge")
	if code != 1 || !strings.Contains(errOut, "refusing to purge 4 dead letters without confirmation") {
		t.Fatalf("purge without a terminal: exit %d, %s", code, errOut)
	}
	// Real files that are not terminals: /dev/null (a character device,
	// which once passed for a terminal) and a pipe holding a yes.
	devNull, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { devNull.Close() })
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pr.Close() })
	if _, err := pw.WriteString("y\n"); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	for name, stdin := range map[string]*os.File{"/dev/null": devNull, "a pipe": pr} {
		code, _, errOut := s.run(t, stdin, "purge")
		if code != 1 || !strings.Contains(errOut, "stdin is not a terminal; pass --yes") {
			t.Fatalf("purge with stdin from %s: exit %d, %s", name, code, errOut)
		}
	}
	if got := len(s.seqs(t)); got != 4 {
		t.Fatalf("%d dead letters left after refused purges, want 4", got)
	}
	code, out, errOut := s.run(t, fakeTerminal{strings.NewReader("n\n")}, "purge", "--tenant", "acme")
	if code != 0 || !strings.Contains(errOut, "Purge 2 dead letters? [y/N]") || !strings.Contains(out, "Nothing purged.") {
		t.Fatalf("purge answered no: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	code, _, _ = s.run(t, fakeTerminal{strings.NewReader("")}, "purge")
	if got := fmt.Sprint(s.seqs(t)); code != 0 || got != "[1 2 3 4]" {
		t.Fatalf("after refusals (last exit %d) the DLQ holds %s, want all four", code, got)
	}

	code, out, errOut = s.run(t, fakeTerminal{strings.NewReader("yes\n")}, "purge", "--tenant", "acme")
	if code != 0 || !strings.Contains(out, "Purged 2 dead letters.") {
		t.Fatalf("purge answered yes: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	if got := fmt.Sprint(s.seqs(t)); got != "[2 4]" {
		t.Fatalf("after purging acme: %s, want [2 4]", got)
	}
	code, out, _ = s.run(t, nil, "purge", "--reason", "deadline", "--yes")
	if code != 0 || !strings.Contains(out, "No dead letters match.") {
		t.Fatalf("purge with nothing matching: exit %d, %s", code, out)
	}
	code, out, errOut = s.run(t, nil, "purge", "--reason", "malformed", "--yes")
	if code != 0 || !strings.Contains(out, "Purged 2 dead letters.") {
		t.Fatalf("purge --reason --yes: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	if got := fmt.Sprint(s.seqs(t)); got != "[]" {
		t.Fatalf("after purging the rest: %s, want []", got)
	}
}
