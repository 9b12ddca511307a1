package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/digitoll/digitoll-worker/config"
)

const tenantsSynopsis = `list [flags] | check NAME [flags]

list prints the tenants the worker serves: those of DIGITOLL_TENANTS_FILE,
or the single tenant "default" of the environment. check NAME checks one
tenant's key and, for each of its kinds, obtains a token for the kind's
scope and calls Toll's test-auth where the API has one, printing a verdict
per scope. Every flag can also be set by the environment variable named in
its description.`

func runTenants(ctx context.Context, env *environment, args []string) error {
	if len(args) > 0 {
		switch args[0] {
		case "list":
			return runTenantsList(env, args[1:])
		case "check":
			if len(args) > 1 && !strings.HasPrefix(args[1], "-") {
				return runTenantsCheck(ctx, env, args[1], args[2:])
			}
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
func loadTenants(env *environment, name string, args []string) (*config.Config, []config.Tenant, error) {
	fs := newFlagSet(env, "tenants "+name, tenantsSynopsis)
	prepareHelp(env, fs, args)
	cfg, err := config.Parse(fs, args, env.getenv)
	if errors.Is(err, config.ErrArgument) {
		fmt.Fprintln(env.stderr, err)
		fs.Usage()
		return nil, nil, errUsage
	}
	if err = parseError(err); err != nil {
		return nil, nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, nil, err
	}
	ts, err := cfg.Tenants()
	return cfg, ts, err
}

func runTenantsList(env *environment, args []string) error {
	_, ts, err := loadTenants(env, "list", args)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tORGANISATION\tCLIENT ID\tMODE\tSCOPES\tKINDS\tCONCURRENCY")
	for _, t := range ts {
		scopes := "toll:"
		if t.Foreign {
			scopes = "toll:eu/"
		}
		kinds := make([]string, len(t.Kinds))
		for i, k := range t.Kinds {
			kinds[i] = string(k)
		}
		concurrency := "-"
		if t.Concurrency > 0 {
			concurrency = fmt.Sprint(t.Concurrency)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.Name, orDefault(t.OrgNumber, "-"), t.ClientID, signingMode(t),
			scopes, strings.Join(kinds, ","), concurrency)
	}
	return tw.Flush()
}

// signingMode names how t's grants are signed: kid names a key registered
// on the integration, x5c carries the business certificate.
func signingMode(t config.Tenant) string {
	if t.KeyID != "" {
		return "kid " + t.KeyID
	}
	return "x5c"
}

func runTenantsCheck(ctx context.Context, env *environment, name string, args []string) error {
	cfg, ts, err := loadTenants(env, "check", args)
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
	cfg.Tenant = ts[i]
	fmt.Fprintf(env.stdout, "Tenant %s (client id %s, %s):\n", name, cfg.Tenant.ClientID, signingMode(cfg.Tenant))
	c := &checker{w: env.stdout, now: time.Now()}
	signer := c.tenant(cfg)
	c.online(ctx, cfg, signer)
	return c.result()
}
