package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/digitoll/digitoll-worker/app"
	"github.com/digitoll/digitoll-worker/config"
	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/handlers"
	"github.com/digitoll/digitoll-worker/toll"
)

const statusSynopsis = `[flags] MRN

Shows what Toll has received under a transport or master consignment: its
masters and houses with their MRNs, statuses and weights, and whether the
goods have been presented at entry. The flags come before the MRN; Toll and
the integration are configured exactly as for ` + "`digitoll run`" + `, by the
variables named below.`

// statusFlags are the flags of `digitoll status` on top of the worker's
// settings.
type statusFlags struct {
	fs    *flag.FlagSet
	kind  *string
	level *string
}

func newStatusFlags(env *environment) statusFlags {
	fs := newFlagSet(env, "status", statusSynopsis)
	return statusFlags{
		fs:    fs,
		kind:  fs.String("kind", "road", "API the declaration was made in: "+strings.Join(queryKinds(), " or ")),
		level: fs.String("level", "transport", "level of the MRN: transport or master-consignment"),
	}
}

func runStatus(ctx context.Context, env *environment, args []string) error {
	cfg, f, mrn, err := loadStatus(env, args)
	if err != nil {
		return err
	}
	usage := func(format string, a ...any) error {
		fmt.Fprintf(env.stderr, format+"\n", a...)
		f.fs.Usage()
		return errUsage
	}
	spec, ok := handlers.KindOf(contract.Kind(*f.kind))
	if !ok || spec.API.QueryPath == "" {
		return usage("--kind: %q is not a kind with a query API (%s)", *f.kind, strings.Join(queryKinds(), " or "))
	}
	api := spec.API
	level := contract.Level(*f.level)
	if level != contract.LevelTransport && level != contract.LevelMasterConsignment {
		return usage("--level: %q is not transport or master-consignment", *f.level)
	}
	if !contract.ValidMRN(mrn) {
		return usage("%q is not an MRN (18 characters, e.g. 25NO4TU2HUD59UCBT8)", mrn)
	}

	client, err := app.NewTollClient(cfg, app.HTTPClient(cfg.Worker), newLogger(env, cfg.Log))
	if err != nil {
		return err
	}
	if c, ok := client.Tokens.(interface{ Close() }); ok {
		defer c.Close()
	}
	tree, err := client.StatusWithDescendants(ctx, api, level, mrn)
	if errors.Is(err, toll.ErrNotFound) {
		return fmt.Errorf("no %s %s declaration %s of integration %s is known to Toll", api.Kind, level, mrn, cfg.Tenant.ClientID)
	}
	if err != nil {
		return err
	}
	entry, err := client.EntryStatus(ctx, api, mrn)
	if err != nil {
		return err
	}
	printTree(env.stdout, level, mrn, tree)
	printEntry(env.stdout, entry)
	return nil
}

// loadStatus reads the configuration like `digitoll run` and the MRN
// after the flags. config.Load refuses positional arguments, but only
// after parsing the flags, which shows where the flags end: the MRN is
// what is left, and the configuration is loaded again without it.
func loadStatus(env *environment, args []string) (*config.Config, statusFlags, string, error) {
	f := newStatusFlags(env)
	prepareHelp(env, f.fs, args)
	_, err := config.Load(f.fs, args, env.getenv)
	if !errors.Is(err, config.ErrArgument) {
		if err := parseError(err); err != nil && !errors.Is(err, config.ErrInvalid) {
			return nil, f, "", err
		}
		// Parsed, or only the configuration is wrong: the MRN is missing
		// either way, and that is the first thing to fix.
		fmt.Fprintln(env.stderr, "name the MRN to show, after the flags")
		f.fs.Usage()
		return nil, f, "", errUsage
	}
	rest := f.fs.Args()
	if len(rest) != 1 {
		fmt.Fprintf(env.stderr, "want one MRN after the flags, got %q\n", rest)
		f.fs.Usage()
		return nil, f, "", errUsage
	}
	f = newStatusFlags(env)
	prepareHelp(env, f.fs, args)
	cfg, err := config.Load(f.fs, args[:len(args)-1], env.getenv)
	if err := parseError(err); err != nil {
		return nil, f, "", err
	}
	return cfg, f, rest[0], nil
}

// printTree writes the declaration and its descendants, one per line,
// indented by level. An answer this version cannot read is shown as Toll
// sent it.
func printTree(w io.Writer, level contract.Level, mrn string, tree toll.StatusTree) {
	if !tree.Recognised() {
		fmt.Fprintf(w, "%s %s: Toll's answer, in a shape this version does not read:\n", level, mrn)
		var buf bytes.Buffer
		if json.Indent(&buf, tree.Raw, "  ", "  ") != nil {
			buf.Reset()
			buf.Write(tree.Raw)
		}
		fmt.Fprintf(w, "  %s\n", buf.String())
		return
	}
	printConsignment(w, tree.Root, 0)
}

func printConsignment(w io.Writer, c toll.Consignment, depth int) {
	indent := strings.Repeat("  ", depth)
	parts := []string{string(c.Level)}
	if c.DocumentNumber != "" {
		doc := c.DocumentNumber
		if c.DocumentType != "" {
			doc += " (" + c.DocumentType + ")"
		}
		parts = append(parts, doc)
	}
	if c.MRN != "" {
		parts = append(parts, "MRN "+c.MRN)
	} else {
		parts = append(parts, "no MRN")
	}
	if c.Status != "" {
		parts = append(parts, c.Status)
	}
	if c.GrossMass != "" {
		parts = append(parts, "gross mass "+c.GrossMass+" kg")
	}
	fmt.Fprintln(w, indent+strings.Join(parts, "  "))
	for _, ch := range c.Children {
		printConsignment(w, ch, depth+1)
	}
	if len(c.Children) == 0 {
		switch c.Level {
		case contract.LevelTransport:
			fmt.Fprintln(w, indent+"  (no master consignments)")
		case contract.LevelMasterConsignment:
			if c.MRN != "" {
				fmt.Fprintln(w, indent+"  (no house consignments received)")
			}
		}
	}
}

func printEntry(w io.Writer, st toll.EntryStatus) {
	if !st.ValidEntry {
		fmt.Fprintln(w, "entry: not yet presented")
		return
	}
	office, at := st.CustomsOfficeOfEntry, st.TimeOfEntry
	if office == "" {
		office = "an office Toll did not name"
	}
	if at == "" {
		at = "a time Toll did not give"
	}
	fmt.Fprintf(w, "entry: presented at %s at %s\n", office, at)
}

// queryKinds are the kinds whose Toll API has a query API, the one
// status reads.
func queryKinds() []string {
	var out []string
	for _, s := range handlers.Kinds() {
		if s.API.QueryPath != "" {
			out = append(out, string(s.Kind()))
		}
	}
	return out
}
