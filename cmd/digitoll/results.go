package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/digitoll/digitoll-worker/config"
	"github.com/digitoll/digitoll-worker/contract"
)

func runResults(ctx context.Context, env *environment, args []string) error {
	fs := newFlagSet(env, "results", "[flags]\n\nFollows digitoll.result.<kind>.<tenant> and prints each result as it arrives.")
	kindName := fs.String("kind", "all", "kind to follow: road, air, entry, document or all")
	tenant := fs.String("tenant", "all", "tenant to follow, or all ($DIGITOLL_TENANT)")
	url := fs.String("nats-url", nats.DefaultURL, "NATS server URL ($DIGITOLL_NATS_URL)")
	creds := fs.String("nats-creds-file", "", "NATS credentials file ($DIGITOLL_NATS_CREDS_FILE)")
	asJSON := fs.Bool("json", false, "print each result as one JSON line")
	fromStart := fs.Bool("all", false, "start from the oldest result kept, not from now")
	count := fs.Int("count", 0, "exit after this many results (0: follow until interrupted)")
	if err := applyEnv(env, fs); err != nil {
		return err
	}
	if err := parseFlags(env, fs, args); err != nil {
		return err
	}
	kindTok, tenantTok := "*", "*"
	if *kindName != "all" {
		k, err := contract.ParseKind(*kindName)
		if err != nil {
			fmt.Fprintf(env.stderr, "--kind: %v\n", err)
			fs.Usage()
			return errUsage
		}
		kindTok = string(k)
	}
	if *tenant != "all" {
		if !contract.ValidTenant(*tenant) {
			fmt.Fprintf(env.stderr, "--tenant: %q is not a tenant name\n", *tenant)
			fs.Usage()
			return errUsage
		}
		tenantTok = *tenant
	}
	conn, err := connectNATS(config.NATS{URL: *url, CredsFile: *creds}, "digitoll-results", slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	defer conn.Close()
	policy := jetstream.DeliverNewPolicy
	if *fromStart {
		policy = jetstream.DeliverAllPolicy
	}
	cons, err := resultConsumer(ctx, conn.js, "digitoll.result."+kindTok+"."+tenantTok, policy)
	if err != nil {
		return err
	}
	n := 0
	return eachResult(ctx, cons, func(r contract.Result, raw []byte) bool {
		if *asJSON {
			fmt.Fprintln(env.stdout, strings.TrimSpace(string(raw)))
		} else {
			fmt.Fprintln(env.stdout, formatResult(r))
		}
		n++
		return *count == 0 || n < *count
	})
}

// resultConsumer makes an ordered consumer (no server-side state to clean
// up) of the results matching filter.
func resultConsumer(ctx context.Context, js jetstream.JetStream, filter string, policy jetstream.DeliverPolicy) (jetstream.Consumer, error) {
	cons, err := js.OrderedConsumer(ctx, contract.StreamResults, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{filter},
		DeliverPolicy:  policy,
	})
	if err != nil {
		return nil, fmt.Errorf("follow %s: %w", filter, err)
	}
	return cons, nil
}

// eachResult calls each for every result cons delivers until each returns
// false or ctx ends.
func eachResult(ctx context.Context, cons jetstream.Consumer, each func(contract.Result, []byte) bool) error {
	it, err := cons.Messages()
	if err != nil {
		return err
	}
	defer it.Stop()
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	for {
		msg, err := it.Next()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return nil
			}
			return err
		}
		var r contract.Result
		if err := json.Unmarshal(msg.Data(), &r); err != nil {
			r = contract.Result{ID: "?", Status: "unreadable", Note: err.Error()}
		}
		if !each(r, msg.Data()) {
			return nil
		}
	}
}

// formatResult renders a result as one readable line.
func formatResult(r contract.Result) string {
	var b strings.Builder
	at := r.CompletedAt
	if at.IsZero() {
		at = time.Now()
	}
	fmt.Fprintf(&b, "%s %-13s %s/%s", at.Local().Format("15:04:05"), r.Status, r.Kind, r.Tenant)
	if r.Level != "" {
		fmt.Fprintf(&b, " %s", r.Level)
	}
	fmt.Fprintf(&b, " %s %s", r.Operation, r.ID)
	if r.MRN != "" {
		fmt.Fprintf(&b, " MRN %s", r.MRN)
	}
	if len(r.Errors) > 0 {
		parts := make([]string, len(r.Errors))
		for i, e := range r.Errors {
			parts[i] = e.Path + ": " + e.Message
			if e.Path == "" {
				parts[i] = e.Message
			}
		}
		fmt.Fprintf(&b, " errors: %s", strings.Join(parts, "; "))
	}
	if len(r.IncompleteDocumentation) > 0 {
		fmt.Fprintf(&b, " incomplete documentation: %s", strings.Join(r.IncompleteDocumentation, "; "))
	}
	if r.Note != "" {
		fmt.Fprintf(&b, " (%s)", r.Note)
	}
	if !r.ReceivedAt.IsZero() && !r.CompletedAt.IsZero() {
		d := r.CompletedAt.Sub(r.ReceivedAt)
		if d < time.Second {
			d = d.Round(time.Millisecond)
		} else {
			d = d.Round(100 * time.Millisecond)
		}
		fmt.Fprintf(&b, " in %s", d)
	}
	return b.String()
}
