package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/digitoll/digitoll-worker/app"
	"github.com/digitoll/digitoll-worker/auth"
	"github.com/digitoll/digitoll-worker/config"
	"github.com/digitoll/digitoll-worker/natsconn"
	"github.com/digitoll/digitoll-worker/worker"
)

const tenantsSynopsis = `list [flags] | check NAME [flags] | provision [NAME...] [flags]

list prints the tenants the worker serves: those of DIGITOLL_TENANTS_FILE,
or the single tenant "default" of the environment, then each tenant's keys
(kid or certificate subject, notBefore, the certificate's notAfter) and
which key signs now. check NAME checks each of one tenant's keys and, for
each key and each of the tenant's kinds, obtains a token for the kind's
scope and calls Toll's test-auth where the API has one, printing a verdict
per scope: a key waiting for its notBefore is checked too, so that a
rotation is tested before it happens. provision creates, on the configured
NATS server, the durable consumers each named tenant (default: every
tenant) reads its results, routing signals and dead letters from
(results-NAME, routing-NAME, dlq-NAME; see deploy/nats-tenants.conf).
Every flag can also be set by the environment variable named in its
description.`

func runTenants(ctx context.Context, env *environment, args []string) error {
	if len(args) > 0 {
		switch args[0] {
		case "list":
			return runTenantsList(env, args[1:])
		case "check":
			if len(args) > 1 && !strings.HasPrefix(args[1], "-") {
				return runTenantsCheck(ctx, env, args[1], args[2:])
			}
		case "provision":
			return runTenantsProvision(ctx, env, args[1:])
		}
	}
	help := len(args) > 0 && (args[0] == "help" || args[0] == "-h" || args[0] == "--help" || args[0] == "-help")
	w := env.stderr
	if help {
		w = env.stdout
	}
	fmt.Fprintln(w, "Usage: digitoll tenants "+strings.SplitN(tenantsSynopsis, "\n", 2)[0])
	fmt.Fprintln(w, "\nRun `digitoll tenants list --help` for the flags.")
	if help {
		return flag.ErrHelp
	}
	return errUsage
}

// loadTenants parses the settings in args and returns the tenants they
// configure, validated.
func loadTenants(env *environment, args []string) (*config.Config, []config.Tenant, error) {
	fs := newFlagSet(env, "tenants", tenantsSynopsis)
	prepareHelp(env, fs, args)
	cfg, err := config.Parse(fs, args, env.getenv)
	if errors.Is(err, config.ErrArgument) {
		fmt.Fprintln(env.stderr, err)
		fs.Usage()
		return nil, nil, errUsage
	}
	if cfg == nil {
		return nil, nil, parseError(err)
	}
	if err := config.JoinProblems(err, cfg.Validate()); err != nil {
		return nil, nil, err
	}
	ts, err := cfg.Tenants()
	return cfg, ts, err
}

func runTenantsList(env *environment, args []string) error {
	_, ts, err := loadTenants(env, args)
	if err != nil {
		return err
	}
	now := time.Now()
	rings := make([]*auth.KeyRing, len(ts))
	ringErrs := make([]error, len(ts))
	for i, t := range ts {
		rings[i], ringErrs[i] = app.LoadKeyRing(t)
	}
	tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tORGANISATION\tCLIENT ID\tMODE\tSCOPES\tKINDS\tCONCURRENCY")
	for i, t := range ts {
		scopes := "toll:"
		if t.Foreign {
			scopes = "toll:eu/"
		}
		kinds := make([]string, len(t.Kinds))
		for j, k := range t.Kinds {
			kinds[j] = string(k)
		}
		concurrency := "-"
		if t.Concurrency > 0 {
			concurrency = fmt.Sprint(t.Concurrency)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.Name, orDefault(t.OrgNumber, "-"), t.ClientID, signingMode(t, rings[i], now),
			scopes, strings.Join(kinds, ","), concurrency)
	}
	fmt.Fprintln(tw, "\nTENANT\tKEY\tNOT BEFORE\tNOT AFTER\tSTATE")
	for i, t := range ts {
		if ringErrs[i] != nil {
			fmt.Fprintf(tw, "%s\t-\t-\t-\tcannot load: %v\n", t.Name, ringErrs[i])
			continue
		}
		states := keyStates(rings[i], now)
		for j, k := range rings[i].Keys() {
			notAfter := "-"
			if na, ok := k.Signer.NotAfter(); ok {
				notAfter = formatTime(na)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", t.Name, keyName(k.Signer), formatTime(k.NotBefore), notAfter, states[j])
		}
	}
	return tw.Flush()
}

// signingMode names how t's grants are signed now: kid names a key
// registered on the integration, x5c carries the business certificate.
// With a keys list it is the mode of the key in use, "-" when none may
// sign or the keys do not load (the keys table says why).
func signingMode(t config.Tenant, ring *auth.KeyRing, now time.Time) string {
	if len(t.Keys) == 0 {
		if t.KeyID != "" {
			return "kid " + t.KeyID
		}
		return "x5c"
	}
	if ring == nil {
		return "-"
	}
	i, err := ring.InUse(now)
	if err != nil {
		return "-"
	}
	s := ring.Keys()[i].Signer
	if s.Mode() == auth.ModeKID {
		return "kid " + s.ID()
	}
	return "x5c"
}

// keyName names a key as the operator knows it: its kid, or its
// certificate's subject.
func keyName(s *auth.Signer) string { return s.Mode().String() + " " + s.ID() }

// formatTime is t in UTC, RFC 3339, or "-" for the zero time.
func formatTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// keyStates says of each key of ring at now: "in use" for the one that
// signs, "standby" for one that may sign but is outranked (an older key
// kept while the rotation settles), or why it may not sign.
func keyStates(ring *auth.KeyRing, now time.Time) []string {
	keys := ring.Keys()
	inUse, _ := ring.InUse(now)
	out := make([]string, len(keys))
	for i, k := range keys {
		switch err := k.Eligible(now); {
		case i == inUse:
			out[i] = "in use"
		case err != nil:
			out[i] = err.Error()
		default:
			out[i] = "standby"
		}
	}
	return out
}

func runTenantsCheck(ctx context.Context, env *environment, name string, args []string) error {
	cfg, ts, err := loadTenants(env, args)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(ts, func(t config.Tenant) bool { return t.Name == name })
	if i < 0 {
		names := make([]string, len(ts))
		for j, t := range ts {
			names[j] = t.Name
		}
		return fmt.Errorf("no tenant %q (tenants: %s)", name, strings.Join(names, ", "))
	}
	t := ts[i]
	c := &checker{w: env.stdout, now: time.Now()}
	keys := t.SigningKeys()
	if len(t.Keys) == 0 {
		fmt.Fprintf(env.stdout, "Tenant %s (client id %s, %s):\n", name, t.ClientID, signingMode(t, nil, c.now))
	} else {
		fmt.Fprintf(env.stdout, "Tenant %s (client id %s, %d keys):\n", name, t.ClientID, len(keys))
	}
	// Every key gets the checks of a single key and a token per scope,
	// the keys not yet in force too: a new key is proven registered on
	// the integration before it starts signing.
	var loaded []auth.RingKey
	var places []int
	for j, k := range keys {
		if len(keys) > 1 {
			fmt.Fprintf(env.stdout, "Key %d of %d (not before %s):\n", j+1, len(keys), formatTime(k.NotBefore))
		}
		kcfg := *cfg
		kcfg.Tenant = t.WithKey(k)
		signer := c.tenant(&kcfg)
		c.online(ctx, &kcfg, signer)
		if signer != nil {
			loaded = append(loaded, auth.RingKey{Signer: signer, NotBefore: k.NotBefore})
			places = append(places, j+1)
		}
	}
	if len(loaded) == 0 {
		c.skip("key in use", "skipped: no key loads")
		return c.result()
	}
	ring, err := auth.NewKeyRing(t.Name, loaded)
	if err != nil {
		c.fail("key in use", "%v", err)
		return c.result()
	}
	if _, err := ring.InUse(c.now); err != nil {
		c.fail("key in use", "%v", err)
	}
	if len(keys) > 1 {
		fmt.Fprintln(env.stdout, "Keys:")
	}
	for j, state := range keyStates(ring, c.now) {
		if state == "in use" {
			c.ok("key in use", "key %d: %s", places[j], loaded[j])
		} else {
			c.skip(fmt.Sprintf("key %d", places[j]), "%s: %s", keyName(loaded[j].Signer), state)
		}
	}
	return c.result()
}

// runTenantsProvision creates the reader consumers of the named tenants,
// or of every tenant, on the configured NATS server.
func runTenantsProvision(ctx context.Context, env *environment, args []string) error {
	var names []string
	for len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		names = append(names, args[0])
		args = args[1:]
	}
	cfg, ts, err := loadTenants(env, args)
	if err != nil {
		return err
	}
	known := map[string]bool{}
	for _, t := range ts {
		known[t.Name] = true
	}
	if len(names) == 0 {
		for _, t := range ts {
			names = append(names, t.Name)
		}
	}
	for _, name := range names {
		if !known[name] {
			return fmt.Errorf("tenant %q is not configured (see `digitoll tenants list`)", name)
		}
	}
	conn, err := natsconn.Connect(cfg.NATS, "digitoll-tenants-provision", slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := app.EnsureStreams(ctx, conn.JS, cfg.NATS); err != nil {
		return fmt.Errorf("streams: %w", err)
	}
	w := tabwriter.NewWriter(env.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "TENANT\tCONSUMER\tSTREAM\tFILTER")
	for _, name := range names {
		readers, err := worker.EnsureTenantReaders(ctx, conn.JS, name)
		if err != nil {
			w.Flush()
			return fmt.Errorf("tenant %s: %w", name, err)
		}
		for _, r := range readers {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", name, r.Name, r.Stream, r.Filter)
		}
	}
	return w.Flush()
}
