package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/digitoll/digitoll-worker/config"
	"github.com/digitoll/digitoll-worker/contract"
)

func runPublish(ctx context.Context, env *environment, args []string) error {
	fs := newFlagSet(env, "publish", "[flags] FILE|DIR ...\n\nPublishes each submission file (a directory: its *.json files in name order) to\ndigitoll.submit.<kind>.<tenant> with Nats-Msg-Id <tenant>/<id>.")
	kindName := fs.String("kind", "road", "kind of the submissions: road, air, entry or document ($DIGITOLL_PUBLISH_KIND)")
	tenant := fs.String("tenant", contract.DefaultTenant, "tenant the submissions belong to ($DIGITOLL_TENANT)")
	url := fs.String("nats-url", nats.DefaultURL, "NATS server URL ($DIGITOLL_NATS_URL)")
	creds := fs.String("nats-creds-file", "", "NATS credentials file ($DIGITOLL_NATS_CREDS_FILE)")
	noCheck := fs.Bool("no-check", false, "publish files even if they do not parse as submissions (to exercise the DLQ)")
	if err := applyEnv(env, fs); err != nil {
		return err
	}
	if err := parseFlags(env, fs, args); err != nil {
		return err
	}
	kind, err := contract.ParseKind(*kindName)
	if err != nil {
		fmt.Fprintf(env.stderr, "--kind: %v\n", err)
		fs.Usage()
		return errUsage
	}
	if !contract.ValidTenant(*tenant) {
		fmt.Fprintf(env.stderr, "--tenant: %q is not 1-63 characters of a-z, 0-9 and '-'\n", *tenant)
		fs.Usage()
		return errUsage
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(env.stderr, "name at least one file or directory")
		fs.Usage()
		return errUsage
	}
	files, err := submissionFiles(fs.Args())
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
		case *noCheck:
			ids[i] = fmt.Sprintf("unchecked-%d-%s", time.Now().UnixNano(), filepath.Base(f))
		default:
			return fmt.Errorf("%s: %w (use --no-check to publish it anyway)", f, err)
		}
	}

	conn, err := connectNATS(config.NATS{URL: *url, CredsFile: *creds}, "digitoll-publish", slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	defer conn.Close()
	subject := contract.SubmitSubject(kind, *tenant)
	for i, f := range files {
		ack, err := conn.js.PublishMsg(ctx, &nats.Msg{Subject: subject, Data: bodies[i], Header: nats.Header{}},
			jetstream.WithMsgID(contract.MsgID(*tenant, ids[i])))
		if err != nil {
			return fmt.Errorf("publish %s: %w", f, err)
		}
		note := ""
		if ack.Duplicate {
			note = " (duplicate: JetStream already has this id, dropped)"
		}
		fmt.Fprintf(env.stdout, "published %s as %s to %s, sequence %d%s\n", f, ids[i], subject, ack.Sequence, note)
	}
	return nil
}

// submissionFiles expands directories into their *.json files, sorted.
func submissionFiles(args []string) ([]string, error) {
	var out []string
	for _, a := range args {
		st, err := os.Stat(a)
		if err != nil {
			return nil, err
		}
		if !st.IsDir() {
			out = append(out, a)
			continue
		}
		entries, err := os.ReadDir(a)
		if err != nil {
			return nil, err
		}
		var names []string
		for _, e := range entries {
			if !e.IsDir() && strings.HasSuffix(e.Name(), ".json") {
				names = append(names, filepath.Join(a, e.Name()))
			}
		}
		if len(names) == 0 {
			return nil, errors.New(a + " holds no *.json files")
		}
		sort.Strings(names)
		out = append(out, names...)
	}
	return out, nil
}
