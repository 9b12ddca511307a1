package main

import (
	"os"
	"strings"
	"testing"

	"github.com/digitoll/digitoll-worker/config"
)

// The README documents every setting, and CI runs the README's test
// command: both drift silently unless a test holds them together.
func TestReadmeStaysTrue(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	ci, err := os.ReadFile("../../.ci/run")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range config.Settings() {
		if !strings.Contains(string(readme), "`"+s.Env+"`") || !strings.Contains(string(readme), "`--"+s.Flag+"`") {
			t.Errorf("README's configuration table lacks %s / --%s", s.Env, s.Flag)
		}
	}
	const testCmd = "go test -race -count=1 ./..."
	if !strings.Contains(string(readme), testCmd) || !strings.Contains(string(ci), testCmd) {
		t.Errorf("README and .ci/run must both run %q", testCmd)
	}
	for _, c := range commands() {
		if !strings.Contains(string(readme), "digitoll "+c.name) {
			t.Errorf("README does not mention `digitoll %s`", c.name)
		}
	}
}
