// Command digitoll declares goods to Norwegian Customs (Tolletaten) through
// the Digitoll APIs: it consumes declarations from NATS JetStream, submits
// them to Toll with Maskinporten tokens and publishes one result per
// message. Run `digitoll help` for the subcommands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/digitoll/digitoll-worker/config"
)

// command is one subcommand of digitoll.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, env *environment, args []string) error
}

// environment is what a subcommand may touch of the process: its standard
// streams and variables. Tests run subcommands with their own.
type environment struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	// stdin answers questions (`dlq purge`); nil reads as not a terminal.
	stdin io.Reader
	// environ lists the variables as "NAME=value", for the warning about
	// DIGITOLL_* variables that nothing reads; nil lists none.
	environ func() []string
}

func commands() []command {
	return []command{
		{"run", "run the worker (embedded NATS unless DIGITOLL_NATS_URL is set)", runWorker},
		{"demo", "run NATS, the simulator and the worker in one process and declare sample goods", runDemo},
		{"sim", "run the Maskinporten and Toll simulator", runSim},
		{"publish", "publish submission files to JetStream", runPublish},
		{"results", "follow results as they arrive", runResults},
		{"status", "show what Toll holds under a transport or master MRN, and its entry", runStatus},
		{"dlq", "list, show, replay and purge dead letters", runDLQ},
		{"tenants", "list the tenants served, check one (a token and test-auth per scope), or provision their reader consumers", runTenants},
		{"config", "check the configuration: settings, key and certificate, endpoints, NATS (--online: tokens)", runConfig},
		{"healthcheck", "exit 0 when the worker's /readyz answers 200 (the container's health check)", runHealthcheck},
		{"bench", "measure the worker against NATS and the simulator; prints one table", runBench},
		{"version", "print the version, commit and Go version of this binary (also --version)", runVersion},
	}
}

// errUsage marks an error for which the usage text has been printed.
var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, &environment{stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv, stdin: os.Stdin, environ: os.Environ}, os.Args[1:])
	stop()
	os.Exit(code)
}

// run dispatches to a subcommand and maps its error to an exit code:
// 0 success, 2 usage error, 1 anything else.
func run(ctx context.Context, env *environment, args []string) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" || args[0] == "-help" {
		printUsage(env.stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	if args[0] == "--version" || args[0] == "-version" {
		args = []string{"version"}
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, env, args[1:])
		switch {
		case err == nil, errors.Is(err, flag.ErrHelp):
			return 0
		case errors.Is(err, errUsage):
			return 2
		default:
			fmt.Fprintf(env.stderr, "digitoll %s: %v\n", c.name, err)
			return 1
		}
	}
	fmt.Fprintf(env.stderr, "digitoll: unknown command %q\n\n", args[0])
	printUsage(env.stderr)
	return 2
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "Usage: digitoll <command> [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-11s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run `digitoll <command> --help` for the flags of a command.")
}

// newFlagSet makes a flag set whose errors print the usage once and come
// back as errUsage, so that a bad argument exits 2 with the usage text.
func newFlagSet(env *environment, name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet("digitoll "+name, flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: digitoll %s %s\n\nFlags:\n", name, synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args into fs: --help prints the usage on stdout and
// exits 0; a bad argument has printed its error and the usage on stderr
// and exits 2.
func parseFlags(env *environment, fs *flag.FlagSet, args []string) error {
	prepareHelp(env, fs, args)
	return parseError(fs.Parse(args))
}

// prepareHelp sends asked-for help to stdout; help after a mistake goes to
// stderr next to the error.
func prepareHelp(env *environment, fs *flag.FlagSet, args []string) {
	for _, a := range args {
		switch a {
		case "--":
			return
		case "-h", "-help", "--help", "--h":
			fs.SetOutput(env.stdout)
			return
		}
	}
}

// parseError maps an error of flag parsing to the exit it deserves. Errors
// that are not the flag package's own (a configuration that parsed but does
// not validate) pass through and are printed by run.
func parseError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, flag.ErrHelp):
		return flag.ErrHelp
	case errors.Is(err, config.ErrInvalid):
		return err
	default:
		return errUsage
	}
}
