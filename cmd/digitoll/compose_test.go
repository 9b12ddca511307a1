package main

import (
	"bytes"
	"context"
	"os"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// composeFile is the part of docker-compose.yml this test checks.
type composeFile struct {
	Services map[string]struct {
		Image       string            `yaml:"image"`
		Build       any               `yaml:"build"`
		Command     []string          `yaml:"command"`
		Environment map[string]string `yaml:"environment"`
		Volumes     []string          `yaml:"volumes"`
	} `yaml:"services"`
	Volumes map[string]any `yaml:"volumes"`
}

// There is no Docker engine where the tests run, so the compose file is
// held to what can be checked without one: it parses, every container runs
// a real subcommand, and every DIGITOLL_ variable it sets is one that some
// subcommand reads (a misspelt variable would be silently ignored).
func TestComposeFileNamesRealCommandsAndVariables(t *testing.T) {
	raw, err := os.ReadFile("../../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var cf composeFile
	if err := yaml.Unmarshal(raw, &cf); err != nil {
		t.Fatalf("docker-compose.yml does not parse: %v", err)
	}
	known := knownVariables(t)
	subcommands := map[string]bool{}
	for _, c := range commands() {
		subcommands[c.name] = true
	}
	for _, want := range []string{"nats", "simulator", "worker"} {
		if _, ok := cf.Services[want]; !ok {
			t.Errorf("service %s is missing", want)
		}
	}
	for name, svc := range cf.Services {
		switch {
		case svc.Build != nil:
			if len(svc.Command) == 0 || !subcommands[svc.Command[0]] {
				t.Errorf("service %s runs %v, not a digitoll subcommand", name, svc.Command)
			}
		case strings.HasPrefix(svc.Image, "nats:"):
			if !contains(svc.Command, "--jetstream") {
				t.Errorf("service %s: NATS without --jetstream", name)
			}
		default:
			t.Errorf("service %s: image %q is neither built here nor the official nats image", name, svc.Image)
		}
		for k := range svc.Environment {
			if strings.HasPrefix(k, "DIGITOLL_") && !known[k] {
				t.Errorf("service %s sets %s, which no subcommand reads", name, k)
			}
		}
		for _, v := range svc.Volumes {
			src := strings.SplitN(v, ":", 2)[0]
			if _, ok := cf.Volumes[src]; !ok && !strings.HasPrefix(src, ".") && !strings.HasPrefix(src, "/") {
				t.Errorf("service %s mounts undeclared volume %s", name, src)
			}
		}
	}
}

// knownVariables collects every $DIGITOLL_ variable named in the help of
// the subcommands.
func knownVariables(t *testing.T) map[string]bool {
	t.Helper()
	re := regexp.MustCompile(`\$(DIGITOLL_[A-Z0-9_]+)`)
	known := map[string]bool{}
	for _, c := range commands() {
		var out bytes.Buffer
		env := &environment{stdout: &out, stderr: &out, getenv: func(string) string { return "" }}
		if code := run(context.Background(), env, []string{c.name, "--help"}); code != 0 {
			t.Fatalf("%s --help exited %d: %s", c.name, code, out.String())
		}
		for _, m := range re.FindAllStringSubmatch(out.String(), -1) {
			known[m[1]] = true
		}
	}
	if len(known) < 10 {
		t.Fatalf("only %d variables found in the help texts", len(known))
	}
	return known
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
