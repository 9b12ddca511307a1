package main

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/digitoll/digitoll-worker/config"
)

// Every variable a command's flag reads must be known, or `run` and
// `config check` would call it unknown.
func TestCommandVariablesAreKnown(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	named := regexp.MustCompile(`\(\$(DIGITOLL_[A-Z0-9_]+)\)`)
	var environ []string
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range named.FindAllStringSubmatch(string(b), -1) {
			environ = append(environ, m[1]+"=x")
		}
	}
	if len(environ) == 0 {
		t.Fatal("no flag names a variable: the pattern is out of date")
	}
	if unknown := config.UnknownVariables(environ, commandVariables...); len(unknown) > 0 {
		t.Errorf("add to commandVariables:\n%s", strings.Join(unknown, "\n"))
	}
	for _, v := range commandVariables {
		if slices.ContainsFunc(config.Settings(), func(s config.Setting) bool { return s.Env == v }) {
			t.Errorf("%s is a setting: drop it from commandVariables", v)
		}
	}
}
