package main

import (
	"context"
	"fmt"
	"io"
	"runtime/debug"
)

// runVersion prints the binary's version; it takes no argument.
func runVersion(_ context.Context, env *environment, args []string) error {
	fs := newFlagSet(env, "version", "\n\nPrints the module version, the commit it was built from and the Go version.")
	if err := parseFlags(env, fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(env.stderr, "unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return errUsage
	}
	printVersion(env.stdout, readVersion(debug.ReadBuildInfo()))
	return nil
}

// versionInfo is what `digitoll version` prints, read from the build
// information the Go toolchain stamps into the binary.
type versionInfo struct {
	// Module is the main module's version: a tag such as v1.4.0 for a
	// binary built by `go install …@v1.4.0`, "(devel)" for one built in a
	// checkout.
	Module string
	// Revision is the VCS commit, with "-dirty" when the checkout had
	// changes; empty when the build recorded none (go run, -buildvcs=false).
	Revision string
	// Time is the commit's time, RFC 3339.
	Time string
	// Go is the toolchain that built the binary.
	Go string
}

// readVersion extracts versionInfo from bi; bi is nil when the binary
// carries no build information.
func readVersion(bi *debug.BuildInfo, ok bool) versionInfo {
	v := versionInfo{Module: "unknown", Go: "unknown"}
	if !ok || bi == nil {
		return v
	}
	if bi.Main.Version != "" {
		v.Module = bi.Main.Version
	}
	if bi.GoVersion != "" {
		v.Go = bi.GoVersion
	}
	dirty := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Revision = s.Value
		case "vcs.time":
			v.Time = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if dirty && v.Revision != "" {
		v.Revision += "-dirty"
	}
	return v
}

// printVersion prints v on one line, e.g.
// "digitoll v1.4.0 (commit 1a2b3c…, 2026-11-30T09:12:00Z) built with go1.26.8".
func printVersion(w io.Writer, v versionInfo) {
	commit := "commit unknown"
	if v.Revision != "" {
		commit = "commit " + v.Revision
		if v.Time != "" {
			commit += ", " + v.Time
		}
	}
	fmt.Fprintf(w, "digitoll %s (%s) built with %s\n", v.Module, commit, v.Go)
}
