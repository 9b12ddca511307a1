package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/routing"
)

func runResults(ctx context.Context, env *environment, args []string) error {
	fs := newFlagSet(env, "results", "[flags]\n\nFollows digitoll.result.<kind>.<tenant> (and with --routing digitoll.routing.<feed>.<tenant>)\nand prints each message as it arrives.")
	kindName := fs.String("kind", "all", "kind to follow: road, air, entry, document or all")
	tenant := fs.String("tenant", "all", "tenant to follow, or all ($DIGITOLL_TENANT)")
	nf := addNATSFlags(env, fs)
	asJSON := fs.Bool("json", false, "print each message body as one JSON line")
	withRouting := fs.Bool("routing", false, "follow routing signals (TO_CONTROL, TO_ENTRY) too")
	fromStart := fs.Bool("all", false, "start from the oldest message kept, not from now")
	count := fs.Int("count", 0, "exit after this many messages (0: follow until interrupted)")
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
	conn, err := nf.connect("digitoll-results")
	if err != nil {
		return err
	}
	defer conn.Close()
	policy := jetstream.DeliverNewPolicy
	if *fromStart {
		policy = jetstream.DeliverAllPolicy
	}
	followed := []struct{ stream, filter string }{{contract.StreamResults, "digitoll.result." + kindTok + "." + tenantTok}}
	if *withRouting {
		followed = append(followed, struct{ stream, filter string }{contract.StreamRouting, "digitoll.routing.*." + tenantTok})
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	lines := make(chan string)
	errs := make(chan error, len(followed))
	for _, f := range followed {
		cons, err := streamConsumer(ctx, conn.JS, f.stream, f.filter, policy)
		if err != nil {
			return err
		}
		go func() {
			errs <- eachMsg(ctx, cons, func(m jetstream.Msg) bool {
				line := formatMsg(m)
				if *asJSON {
					line = strings.TrimSpace(string(m.Data()))
				}
				select {
				case lines <- line:
					return true
				case <-ctx.Done():
					return false
				}
			})
		}()
	}
	for n, running := 0, len(followed); running > 0; {
		select {
		case line := <-lines:
			fmt.Fprintln(env.stdout, line)
			if n++; *count > 0 && n >= *count {
				cancel()
			}
		case err := <-errs:
			running--
			if err != nil {
				cancel()
				return err
			}
		}
	}
	return nil
}

// streamConsumer makes an ordered consumer (no server-side state to clean
// up) of the messages of stream matching filter.
func streamConsumer(ctx context.Context, js jetstream.JetStream, stream, filter string, policy jetstream.DeliverPolicy) (jetstream.Consumer, error) {
	cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{filter},
		DeliverPolicy:  policy,
	})
	if err != nil {
		return nil, fmt.Errorf("follow %s: %w", filter, err)
	}
	return cons, nil
}

// eachMsg calls each for every message cons delivers until each returns
// false or ctx ends.
func eachMsg(ctx context.Context, cons jetstream.Consumer, each func(jetstream.Msg) bool) error {
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
		if !each(msg) {
			return nil
		}
	}
}

func decodeResult(data []byte) contract.Result {
	var r contract.Result
	if err := json.Unmarshal(data, &r); err != nil {
		r = contract.Result{ID: "?", Status: "unreadable", Note: err.Error()}
	}
	return r
}

// formatMsg renders a result or a routing signal as one readable line.
func formatMsg(m jetstream.Msg) string {
	if strings.HasPrefix(m.Subject(), "digitoll.routing.") {
		return formatRouting(m.Subject(), m.Headers().Get(routing.HeaderRouting), m.Data())
	}
	return formatResult(decodeResult(m.Data()))
}

// formatRouting renders a routing signal: what to do with which goods.
func formatRouting(subject, decision string, body []byte) string {
	var sig struct {
		MRN   string `json:"entrySummaryDeclarationMRN"`
		House struct {
			Ref string `json:"referenceNumber"`
		} `json:"transportDocumentHouseLevel"`
		Means struct {
			ID string `json:"identificationNumber"`
		} `json:"activeBorderTransportMeans"`
		Result struct {
			ID      string `json:"id"`
			Routing string `json:"routing"`
		} `json:"routingResult"`
	}
	_ = json.Unmarshal(body, &sig) // an unreadable signal still shows its subject and decision
	if decision == "" {
		decision = sig.Result.Routing
	}
	parts := strings.Split(subject, ".")
	feed, tenant := "?", "?"
	if len(parts) == 4 {
		feed, tenant = parts[2], parts[3]
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %-13s routing/%s %s", time.Now().Format("15:04:05"), decision, tenant, feed)
	if sig.House.Ref != "" {
		fmt.Fprintf(&b, " house %s", sig.House.Ref)
	}
	if sig.Means.ID != "" {
		fmt.Fprintf(&b, " means %s", sig.Means.ID)
	}
	if sig.MRN != "" {
		fmt.Fprintf(&b, " MRN %s", sig.MRN)
	}
	fmt.Fprintf(&b, " (signal %s)", sig.Result.ID)
	return b.String()
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
