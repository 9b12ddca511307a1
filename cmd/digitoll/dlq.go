package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"golang.org/x/term"

	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/dlq"
	"github.com/digitoll/digitoll-worker/natsconn"
)

// dlqCommands are the subcommands of `digitoll dlq`.
func dlqCommands() []command {
	return []command{
		{"list", "list dead letters, oldest first", runDLQList},
		{"show", "print one dead letter: its headers and body", runDLQShow},
		{"replay", "publish dead letters to their original subject again, then remove them", runDLQReplay},
		{"purge", "remove dead letters for good", runDLQPurge},
	}
}

func runDLQ(ctx context.Context, env *environment, args []string) error {
	if len(args) == 0 {
		printDLQUsage(env.stderr)
		return errUsage
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		printDLQUsage(env.stdout)
		return nil
	}
	for _, c := range dlqCommands() {
		if c.name == args[0] {
			return c.run(ctx, env, args[1:])
		}
	}
	fmt.Fprintf(env.stderr, "digitoll dlq: unknown subcommand %q\n\n", args[0])
	printDLQUsage(env.stderr)
	return errUsage
}

func printDLQUsage(w io.Writer) {
	fmt.Fprintln(w, "Usage: digitoll dlq <subcommand> [flags]")
	fmt.Fprintln(w)
	fmt.Fprintf(w, "Inspects, replays and purges the dead letters in %s (digitoll.dlq.<kind>.<tenant>).\n", contract.StreamDLQ)
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Subcommands:")
	for _, c := range dlqCommands() {
		fmt.Fprintf(w, "  %-7s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run `digitoll dlq <subcommand> --help` for its flags.")
}

// filterFlags select dead letters.
type filterFlags struct{ kind, tenant, reason, since *string }

func addFilterFlags(fs *flag.FlagSet) filterFlags {
	return filterFlags{
		kind:   fs.String("kind", "", "only this kind: road, air, entry or document"),
		tenant: fs.String("tenant", "", "only this tenant ("+contract.InvalidTenant+": messages whose subject named no valid tenant)"),
		reason: fs.String("reason", "", "only this reason: malformed, unsupported, too-large, retries-exhausted, deadline, permanent-http, panic"),
		since:  fs.String("since", "", "only entries dead-lettered since then: an age (90m, 2h, 7d) or an RFC 3339 time"),
	}
}

func (ff filterFlags) set() bool {
	return *ff.kind != "" || *ff.tenant != "" || *ff.reason != "" || *ff.since != ""
}

// filter turns the flags into a dlq.Filter; its errors name the flag.
func (ff filterFlags) filter(now time.Time) (dlq.Filter, error) {
	f := dlq.Filter{Kind: *ff.kind, Tenant: *ff.tenant, Reason: *ff.reason}
	if f.Kind != "" {
		if _, err := contract.ParseKind(f.Kind); err != nil {
			return f, fmt.Errorf("--kind: %w", err)
		}
	}
	if f.Tenant != "" && !contract.ValidTenant(f.Tenant) && f.Tenant != contract.InvalidTenant {
		return f, fmt.Errorf("--tenant: %q is not a tenant name", f.Tenant)
	}
	if *ff.since != "" {
		t, err := parseSince(*ff.since, now)
		if err != nil {
			return f, fmt.Errorf("--since: %w", err)
		}
		f.Since = t
	}
	return f, nil
}

// parseSince reads an RFC 3339 time or an age before now: a Go duration
// or a whole number of days ("7d").
func parseSince(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	var age time.Duration
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil {
			return time.Time{}, fmt.Errorf("%q is neither an age (90m, 2h, 7d) nor an RFC 3339 time", s)
		}
		age = time.Duration(n) * 24 * time.Hour
	} else {
		d, err := time.ParseDuration(s)
		if err != nil {
			return time.Time{}, fmt.Errorf("%q is neither an age (90m, 2h, 7d) nor an RFC 3339 time", s)
		}
		age = d
	}
	if age <= 0 {
		return time.Time{}, fmt.Errorf("age %q must be positive", s)
	}
	return now.Add(-age), nil
}

// parseArgs parses flags that may stand before or after the positional
// arguments (`dlq show 12 --json`), which the flag package alone stops at.
func parseArgs(env *environment, fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := parseFlags(env, fs, args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return positional, nil
		}
		// After "--" (which Parse consumed) everything is positional.
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" {
			return append(positional, rest...), nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

// usageError prints msg and the usage of fs and returns errUsage.
func usageError(env *environment, fs *flag.FlagSet, msg string) error {
	fmt.Fprintln(env.stderr, msg)
	fs.Usage()
	return errUsage
}

// filteredDLQ finishes a subcommand that takes only flags: it reads them
// (environment, then arguments), builds the filter and connects to NATS.
func filteredDLQ(env *environment, fs *flag.FlagSet, ff filterFlags, nf natsFlags, args []string) (dlq.Filter, *natsconn.Conn, error) {
	if err := applyEnv(env, fs); err != nil {
		return dlq.Filter{}, nil, err
	}
	rest, err := parseArgs(env, fs, args)
	if err != nil {
		return dlq.Filter{}, nil, err
	}
	if len(rest) > 0 {
		return dlq.Filter{}, nil, usageError(env, fs, fmt.Sprintf("unexpected argument %q", rest[0]))
	}
	f, err := ff.filter(time.Now())
	if err != nil {
		return dlq.Filter{}, nil, usageError(env, fs, err.Error())
	}
	conn, err := nf.connect("digitoll-dlq")
	if err != nil {
		return dlq.Filter{}, nil, err
	}
	return f, conn, nil
}

func runDLQList(ctx context.Context, env *environment, args []string) error {
	fs := newFlagSet(env, "dlq list", "[flags]\n\nLists the dead letters, oldest first, without removing any.")
	ff := addFilterFlags(fs)
	asJSON := fs.Bool("json", false, "print each entry as one JSON line, with its headers and body")
	nf := addNATSFlags(env, fs)
	f, conn, err := filteredDLQ(env, fs, ff, nf, args)
	if err != nil {
		return err
	}
	defer conn.Close()

	if *asJSON {
		var werr error
		err := dlq.List(ctx, conn.JS, f, func(e dlq.Entry) bool {
			werr = writeEntryJSON(env.stdout, e)
			return werr == nil
		})
		return errors.Join(err, werr)
	}
	tw := tabwriter.NewWriter(env.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tFAILED AT\tKIND/TENANT\tID\tREASON\tATTEMPTS\tERROR")
	n := 0
	err = dlq.List(ctx, conn.JS, f, func(e dlq.Entry) bool {
		n++
		fmt.Fprintf(tw, "%d\t%s\t%s/%s\t%s\t%s\t%d\t%s\n", e.Seq, e.FailedAt.Local().Format("2006-01-02 15:04:05"),
			e.Kind, e.Tenant, orDash(clip(e.ID, 48)), orDash(e.Reason), e.Attempts, clip(e.Error, 100))
		return true
	})
	if ferr := tw.Flush(); err == nil {
		err = ferr
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "%s\n", countNoun(n, "dead letter"))
	return nil
}

func runDLQShow(ctx context.Context, env *environment, args []string) error {
	fs := newFlagSet(env, "dlq show", "[flags] SEQ\n\nPrints the dead letter with stream sequence SEQ (see `digitoll dlq list`): its headers and body.")
	asJSON := fs.Bool("json", false, "print the entry as one JSON line")
	nf := addNATSFlags(env, fs)
	if err := applyEnv(env, fs); err != nil {
		return err
	}
	rest, err := parseArgs(env, fs, args)
	if err != nil {
		return err
	}
	seq, err := oneSeq(rest)
	if err != nil {
		return usageError(env, fs, err.Error())
	}
	conn, err := nf.connect("digitoll-dlq")
	if err != nil {
		return err
	}
	defer conn.Close()
	e, err := dlq.Get(ctx, conn.JS, seq)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeEntryJSON(env.stdout, e)
	}
	w := env.stdout
	fmt.Fprintf(w, "Dead letter %d on %s, %s\n", e.Seq, e.Subject, e.FailedAt.Local().Format(time.RFC3339))
	fmt.Fprintln(w, "\nHeaders:")
	names := make([]string, 0, len(e.Header))
	for k := range e.Header {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		for _, v := range e.Header[k] {
			fmt.Fprintf(w, "  %s: %s\n", k, v)
		}
	}
	fmt.Fprintf(w, "\nBody (%d bytes):\n%s\n", len(e.Data), prettyBody(e.Data))
	return nil
}

func runDLQReplay(ctx context.Context, env *environment, args []string) error {
	fs := newFlagSet(env, "dlq replay", "[flags] SEQ | --all [filters]\n\n"+
		"Publishes a dead letter's body and the producer's headers to its original subject\n"+
		"again and removes it from the DLQ once the submit stream has stored it. The replay's\n"+
		"Nats-Msg-Id is <tenant>/<id>/replay/<seq>, so replaying one entry twice queues it once.")
	all := fs.Bool("all", false, "replay every dead letter the filters select")
	ff := addFilterFlags(fs)
	nf := addNATSFlags(env, fs)
	if err := applyEnv(env, fs); err != nil {
		return err
	}
	rest, err := parseArgs(env, fs, args)
	if err != nil {
		return err
	}
	var seq uint64
	switch {
	case *all && len(rest) > 0:
		return usageError(env, fs, "give either SEQ or --all, not both")
	case *all:
	case ff.set():
		return usageError(env, fs, "--kind, --tenant, --reason and --since select entries for --all")
	default:
		if seq, err = oneSeq(rest); err != nil {
			return usageError(env, fs, err.Error())
		}
	}
	f, err := ff.filter(time.Now())
	if err != nil {
		return usageError(env, fs, err.Error())
	}
	conn, err := nf.connect("digitoll-dlq")
	if err != nil {
		return err
	}
	defer conn.Close()

	if !*all {
		r, err := dlq.Replay(ctx, conn.JS, seq)
		if r.StreamSeq != 0 { // stored, even if not removed
			fmt.Fprintln(env.stdout, formatReplayed(r))
		}
		return err
	}
	skipped := 0
	n, err := dlq.ReplayAll(ctx, conn.JS, f, func(r dlq.Replayed, err error) {
		if err != nil {
			skipped++
			fmt.Fprintf(env.stderr, "skipped %d: %v\n", r.Entry.Seq, err)
			return
		}
		fmt.Fprintln(env.stdout, formatReplayed(r))
	})
	fmt.Fprintf(env.stdout, "Replayed %s.\n", countNoun(n, "dead letter"))
	if err != nil {
		return err
	}
	if skipped > 0 {
		return fmt.Errorf("%s not replayed (see above)", countNoun(skipped, "dead letter"))
	}
	return nil
}

func runDLQPurge(ctx context.Context, env *environment, args []string) error {
	fs := newFlagSet(env, "dlq purge", "[filters] [--yes]\n\n"+
		"Removes the dead letters the filters select (all of them without filters) for good.\n"+
		"Asks first; without a terminal it needs --yes.")
	ff := addFilterFlags(fs)
	yes := fs.Bool("yes", false, "do not ask for confirmation")
	nf := addNATSFlags(env, fs)
	f, conn, err := filteredDLQ(env, fs, ff, nf, args)
	if err != nil {
		return err
	}
	defer conn.Close()

	// Count first and purge exactly what was counted: entries
	// dead-lettered while the operator reads the question stay.
	n := 0
	if err := dlq.List(ctx, conn.JS, f, func(e dlq.Entry) bool {
		n++
		f.UpTo = e.Seq
		return true
	}); err != nil {
		return err
	}
	if n == 0 {
		fmt.Fprintln(env.stdout, "No dead letters match.")
		return nil
	}
	if !*yes {
		if !isTerminal(env.stdin) {
			return fmt.Errorf("refusing to purge %s without confirmation: stdin is not a terminal; pass --yes", countNoun(n, "dead letter"))
		}
		ok, err := confirm(ctx, env, fmt.Sprintf("Purge %s? [y/N] ", countNoun(n, "dead letter")))
		if err != nil {
			return err
		}
		if !ok {
			fmt.Fprintln(env.stdout, "Nothing purged.")
			return nil
		}
	}
	purged, err := dlq.Purge(ctx, conn.JS, f)
	fmt.Fprintf(env.stdout, "Purged %s.\n", countNoun(purged, "dead letter"))
	return err
}

// oneSeq reads the single SEQ argument.
func oneSeq(args []string) (uint64, error) {
	switch len(args) {
	case 0:
		return 0, errors.New("name the dead letter's sequence (see `digitoll dlq list`)")
	case 1:
	default:
		return 0, fmt.Errorf("unexpected argument %q", args[1])
	}
	seq, err := strconv.ParseUint(args[0], 10, 64)
	if err != nil || seq == 0 {
		return 0, fmt.Errorf("%q is not a stream sequence (a number from `digitoll dlq list`)", args[0])
	}
	return seq, nil
}

// terminal is a reader that knows whether it is an interactive terminal.
type terminal interface{ IsTerminal() bool }

// isTerminal reports whether a question may be asked on r: a terminal,
// or a reader that says it is one. Being a character device is not
// enough: /dev/null is one, and a purge run from a script with stdin
// redirected from it must not read its end of file as an answer.
func isTerminal(r io.Reader) bool {
	switch v := r.(type) {
	case terminal:
		return v.IsTerminal()
	case *os.File:
		return term.IsTerminal(int(v.Fd()))
	}
	return false
}

// confirm asks question on stderr and reads the answer from stdin: only
// "y" or "yes" is a yes. The read runs on its own goroutine so that
// Ctrl-C (ctx) ends the wait; a read abandoned that way ends with the
// process, which follows at once.
func confirm(ctx context.Context, env *environment, question string) (bool, error) {
	fmt.Fprint(env.stderr, question)
	answer := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(env.stdin).ReadString('\n')
		answer <- line
	}()
	select {
	case <-ctx.Done():
		fmt.Fprintln(env.stderr)
		return false, ctx.Err()
	case a := <-answer:
		a = strings.ToLower(strings.TrimSpace(a))
		return a == "y" || a == "yes", nil
	}
}

// entryJSON is an entry as `--json` prints it.
type entryJSON struct {
	Seq             uint64          `json:"seq"`
	Subject         string          `json:"subject"`
	Kind            string          `json:"kind"`
	Tenant          string          `json:"tenant"`
	ID              string          `json:"id,omitempty"`
	Reason          string          `json:"reason"`
	Error           string          `json:"error"`
	Attempts        int             `json:"attempts"`
	FailedAt        time.Time       `json:"failedAt"`
	OriginalSubject string          `json:"originalSubject"`
	Headers         nats.Header     `json:"headers"`
	Body            json.RawMessage `json:"body"`
}

// writeEntryJSON writes e as one JSON line. A body that is JSON is
// embedded as is; any other body as a JSON string.
func writeEntryJSON(w io.Writer, e dlq.Entry) error {
	var body bytes.Buffer
	if json.Compact(&body, e.Data) != nil {
		body.Reset()
		s, err := json.Marshal(string(e.Data))
		if err != nil {
			return err
		}
		body.Write(s)
	}
	line, err := json.Marshal(entryJSON{
		Seq: e.Seq, Subject: e.Subject, Kind: e.Kind, Tenant: e.Tenant, ID: e.ID, Reason: e.Reason, Error: e.Error,
		Attempts: e.Attempts, FailedAt: e.FailedAt.UTC(), OriginalSubject: e.OriginalSubject, Headers: e.Header, Body: body.Bytes(),
	})
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", line)
	return err
}

// prettyBody renders a body for reading: indented when it is JSON, as is
// when it is text, quoted when it is neither.
func prettyBody(data []byte) string {
	var b bytes.Buffer
	if json.Indent(&b, data, "", "  ") == nil {
		return b.String()
	}
	if utf8.Valid(data) {
		return string(data)
	}
	return strconv.Quote(string(data))
}

// formatReplayed is the line printed for a replayed entry.
func formatReplayed(r dlq.Replayed) string {
	id := ""
	if r.Entry.ID != "" {
		id = " " + clip(r.Entry.ID, 48)
	}
	s := fmt.Sprintf("replayed %d %s/%s%s -> %s (%s sequence %d, Nats-Msg-Id %s)",
		r.Entry.Seq, r.Entry.Kind, r.Entry.Tenant, id, r.Subject, contract.StreamSubmit, r.StreamSeq, r.MsgID)
	if r.Duplicate {
		s += "; an earlier replay of it was already stored, so nothing new was queued"
	}
	return s
}

// clip shortens s to at most n runes for a table cell.
func clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n-1]) + "…"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// countNoun is "1 dead letter" or "n dead letters".
func countNoun(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}
