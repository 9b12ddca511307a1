package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
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
		Secrets     []string          `yaml:"secrets"`
		Healthcheck struct {
			Test    []string `yaml:"test"`
			Disable bool     `yaml:"disable"`
		} `yaml:"healthcheck"`
	} `yaml:"services"`
	Volumes map[string]any `yaml:"volumes"`
	Secrets map[string]struct {
		File string `yaml:"file"`
	} `yaml:"secrets"`
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
		case strings.HasPrefix(svc.Image, "prom/prometheus:"):
		default:
			t.Errorf("service %s: image %q is neither built here nor the official nats or prometheus image", name, svc.Image)
		}
		// Every long-running service has a health check; one run by the
		// binary names a real subcommand.
		hc := svc.Healthcheck.Test
		switch {
		case svc.Healthcheck.Disable:
		case len(hc) < 2 || hc[0] != "CMD":
			t.Errorf("service %s: no health check of the form [CMD, ...]: %v", name, hc)
		case hc[1] == "/usr/local/bin/digitoll" && (len(hc) < 3 || !subcommands[hc[2]]):
			t.Errorf("service %s: health check %v runs no digitoll subcommand", name, hc)
		}
		for _, sec := range svc.Secrets {
			if _, ok := cf.Secrets[sec]; !ok {
				t.Errorf("service %s uses undeclared secret %s", name, sec)
			}
		}
		for k, v := range svc.Environment {
			if sec, ok := strings.CutPrefix(v, "/run/secrets/"); ok && !contains(svc.Secrets, sec) {
				t.Errorf("service %s: %s=%s names a secret the service does not mount", name, k, v)
			}
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
			if strings.HasPrefix(src, "./") {
				if _, err := os.Stat(filepath.Join("../..", src)); err != nil {
					t.Errorf("service %s mounts %s: %v", name, src, err)
				}
			}
		}
	}
	// Secrets are files in a directory git ignores, so that no key is
	// ever committed beside the compose file.
	for name, sec := range cf.Secrets {
		if !strings.HasPrefix(sec.File, "./deploy/secrets/") {
			t.Errorf("secret %s is read from %q, not from ./deploy/secrets/", name, sec.File)
		}
	}
	ignore, err := os.ReadFile("../../deploy/secrets/.gitignore")
	if err != nil || !strings.Contains(string(ignore), "\n*\n") {
		t.Errorf("deploy/secrets/.gitignore must ignore every file: %q %v", ignore, err)
	}
}

// The Prometheus of docker-compose scrapes the worker where it serves
// /metrics, and its alerts name only metrics the worker exports.
func TestPrometheusConfigScrapesTheWorker(t *testing.T) {
	raw, err := os.ReadFile("../../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var cf composeFile
	if err := yaml.Unmarshal(raw, &cf); err != nil {
		t.Fatal(err)
	}
	_, port, err := net.SplitHostPort(cf.Services["worker"].Environment["DIGITOLL_HTTP_ADDR"])
	if err != nil {
		t.Fatalf("worker's DIGITOLL_HTTP_ADDR: %v", err)
	}
	raw, err = os.ReadFile("../../deploy/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	var prom struct {
		RuleFiles     []string `yaml:"rule_files"`
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			MetricsPath   string `yaml:"metrics_path"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(raw, &prom); err != nil {
		t.Fatalf("deploy/prometheus.yml: %v", err)
	}
	scraped := false
	for _, sc := range prom.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			if contains(st.Targets, "worker:"+port) && sc.MetricsPath == "/metrics" && sc.JobName == "digitoll-worker" {
				scraped = true
			}
		}
	}
	if !scraped {
		t.Errorf("no digitoll-worker job scrapes worker:%s/metrics", port)
	}
	mounted := strings.Join(cf.Services["prometheus"].Volumes, " ")
	for _, f := range prom.RuleFiles {
		if !strings.Contains(mounted, ":"+f+":") {
			t.Errorf("rule file %s is not mounted into the prometheus service", f)
		}
	}

	raw, err = os.ReadFile("../../deploy/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(raw, &rules); err != nil {
		t.Fatalf("deploy/alerts.yml: %v", err)
	}
	exported := exportedMetricNames(t)
	n := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			n++
			for _, m := range regexp.MustCompile(`digitoll_[a-z_]+`).FindAllString(r.Expr, -1) {
				base := m
				for _, suffix := range []string{"_bucket", "_count", "_sum"} {
					base = strings.TrimSuffix(base, suffix)
				}
				if !exported[base] {
					t.Errorf("alert %s uses %s, which the worker does not export", r.Alert, m)
				}
			}
		}
	}
	if n < 5 {
		t.Errorf("only %d alerts", n)
	}
}

// exportedMetricNames are the metric names the telemetry package defines,
// read from its source: namespace "digitoll" and each Name, or each
// namespace+"_name" descriptor.
func exportedMetricNames(t *testing.T) map[string]bool {
	t.Helper()
	files, err := filepath.Glob("../../telemetry/*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("telemetry sources: %v", err)
	}
	names := map[string]bool{}
	re := regexp.MustCompile(`Name:\s*"([a-z_]+)"|namespace\+"_([a-z_]+)"`)
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllStringSubmatch(string(b), -1) {
			names["digitoll_"+m[1]+m[2]] = true
		}
	}
	if len(names) < 10 {
		t.Fatalf("only %d metric names found in telemetry/", len(names))
	}
	return names
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
