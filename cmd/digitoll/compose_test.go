package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	osexec "os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// composeFile is the part of docker-compose.yml this test checks.
type composeFile struct {
	// Name must stay unset: docker-compose 1.29 refuses a top-level name.
	Name     any `yaml:"name"`
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
	cf := readCompose(t)
	if cf.Name != nil {
		t.Errorf("docker-compose.yml has a top-level name (%v), which docker-compose 1.29 refuses", cf.Name)
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
			// The worker pauses consumers: NATS server 2.11 or later.
			m := regexp.MustCompile(`^nats:2\.(\d+)(\.\d+)?-alpine$`).FindStringSubmatch(svc.Image)
			if minor, _ := strconv.Atoi(safeIndex(m, 1)); minor < 11 {
				t.Errorf("service %s: image %q is not a pinned nats:2.x-alpine of 2.11 or later", name, svc.Image)
			}
		case strings.HasPrefix(svc.Image, "prom/prometheus:"), strings.HasPrefix(svc.Image, "grafana/grafana:"):
		default:
			t.Errorf("service %s: image %q is neither built here nor the official nats, prometheus or grafana image", name, svc.Image)
		}
		if svc.Image != "" && !regexp.MustCompile(`:v?\d+\.\d+`).MatchString(svc.Image) {
			t.Errorf("service %s: image %q is not pinned to a version", name, svc.Image)
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
	cf := readCompose(t)
	_, port, err := net.SplitHostPort(cf.Services["worker"].Environment["DIGITOLL_HTTP_ADDR"])
	if err != nil {
		t.Fatalf("worker's DIGITOLL_HTTP_ADDR: %v", err)
	}
	raw, err := os.ReadFile("../../deploy/prometheus.yml")
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
			for _, m := range queriedMetrics(r.Expr) {
				if !exported[m] {
					t.Errorf("alert %s uses %s, which the worker does not export", r.Alert, m)
				}
			}
		}
	}
	if n < 5 {
		t.Errorf("only %d alerts", n)
	}
}

// queriedMetrics are the worker's metrics a PromQL expression names, a
// histogram's _bucket, _count and _sum series by the histogram's name.
func queriedMetrics(expr string) []string {
	var out []string
	for _, m := range regexp.MustCompile(`digitoll_[a-z_]+`).FindAllString(expr, -1) {
		for _, suffix := range []string{"_bucket", "_count", "_sum"} {
			m = strings.TrimSuffix(m, suffix)
		}
		out = append(out, m)
	}
	return out
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

// safeIndex is list[i], or "" when list is shorter.
func safeIndex(list []string, i int) string {
	if i < len(list) {
		return list[i]
	}
	return ""
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// The Grafana of docker-compose is provisioned with the Prometheus that
// scrapes the worker and with the worker's dashboard, whose queries name
// only metrics the worker exports.
func TestGrafanaDashboardQueriesExportedMetrics(t *testing.T) {
	cf := readCompose(t)
	grafana, ok := cf.Services["grafana"]
	if !ok {
		t.Fatal("no grafana service")
	}
	mounts := map[string]string{}
	for _, v := range grafana.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) >= 2 {
			mounts[parts[0]] = parts[1]
		}
	}
	if mounts["./deploy/grafana/provisioning"] != "/etc/grafana/provisioning" {
		t.Errorf("deploy/grafana/provisioning is not mounted at /etc/grafana/provisioning: %v", grafana.Volumes)
	}

	var providers struct {
		Providers []struct {
			Type    string `yaml:"type"`
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	readYAML(t, "../../deploy/grafana/provisioning/dashboards/digitoll.yml", &providers)
	if len(providers.Providers) != 1 || providers.Providers[0].Type != "file" ||
		providers.Providers[0].Options.Path != mounts["./deploy/grafana/dashboards"] {
		t.Errorf("the dashboard provider reads %+v, not where deploy/grafana/dashboards is mounted (%q)", providers.Providers, mounts["./deploy/grafana/dashboards"])
	}
	var sources struct {
		Datasources []struct {
			UID  string `yaml:"uid"`
			Type string `yaml:"type"`
			URL  string `yaml:"url"`
		} `yaml:"datasources"`
	}
	readYAML(t, "../../deploy/grafana/provisioning/datasources/prometheus.yml", &sources)
	if len(sources.Datasources) != 1 || sources.Datasources[0].Type != "prometheus" || sources.Datasources[0].URL != "http://prometheus:9090" {
		t.Fatalf("datasources %+v: want the compose prometheus service", sources.Datasources)
	}
	if _, ok := cf.Services["prometheus"]; !ok {
		t.Error("no prometheus service for the datasource")
	}

	raw, err := os.ReadFile("../../deploy/grafana/dashboards/digitoll-worker.json")
	if err != nil {
		t.Fatal(err)
	}
	type target struct {
		Expr string `json:"expr"`
	}
	var dash struct {
		UID        string `json:"uid"`
		Templating struct {
			List []struct {
				Name    string `json:"name"`
				Current struct {
					Value string `json:"value"`
				} `json:"current"`
			} `json:"list"`
		} `json:"templating"`
		Panels []struct {
			Type       string   `json:"type"`
			Title      string   `json:"title"`
			Targets    []target `json:"targets"`
			Datasource struct {
				UID string `json:"uid"`
			} `json:"datasource"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	if dash.UID == "" {
		t.Error("the dashboard has no uid (links to it would break on every import)")
	}
	for _, v := range dash.Templating.List {
		if v.Name == "datasource" && v.Current.Value != sources.Datasources[0].UID {
			t.Errorf("the dashboard's datasource variable defaults to %q, not the provisioned %q", v.Current.Value, sources.Datasources[0].UID)
		}
	}
	exported := exportedMetricNames(t)
	queried := map[string]bool{}
	for _, p := range dash.Panels {
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		if p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q queries datasource %q, not ${datasource}", p.Title, p.Datasource.UID)
		}
		for _, tg := range p.Targets {
			for _, m := range queriedMetrics(tg.Expr) {
				queried[m] = true
				if !exported[m] {
					t.Errorf("panel %q queries %s, which the worker does not export", p.Title, m)
				}
			}
		}
	}
	if len(queried) < 10 {
		t.Errorf("the dashboard shows only %d of the worker's metrics", len(queried))
	}
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// The systemd unit example runs a real subcommand with settings the worker
// knows, and, where systemd-analyze is installed, verifies.
func TestSystemdUnitExample(t *testing.T) {
	unit, err := os.ReadFile("../../deploy/systemd/digitoll-worker.service")
	if err != nil {
		t.Fatal(err)
	}
	envFile, err := os.ReadFile("../../deploy/systemd/worker.env")
	if err != nil {
		t.Fatal(err)
	}
	known := knownVariables(t)
	subcommands := map[string]bool{}
	for _, c := range commands() {
		subcommands[c.name] = true
	}
	exec := regexp.MustCompile(`(?m)^ExecStart=/usr/local/bin/digitoll (\S+)`).FindSubmatch(unit)
	if exec == nil || !subcommands[string(exec[1])] {
		t.Errorf("ExecStart does not run a digitoll subcommand: %q", exec)
	}
	set := regexp.MustCompile(`(?m)^(?:Environment=|#?\s*)(DIGITOLL_[A-Z0-9_]+)=`)
	n := 0
	for _, src := range [][]byte{unit, envFile} {
		for _, m := range set.FindAllSubmatch(src, -1) {
			n++
			if !known[string(m[1])] {
				t.Errorf("the systemd example sets %s, which no subcommand reads", m[1])
			}
		}
	}
	if n < 5 {
		t.Errorf("only %d settings in the systemd example", n)
	}
	for _, want := range []string{"StateDirectory=digitoll-worker", "DIGITOLL_NATS_DIR=%S/digitoll-worker/", "LoadCredential=", "Restart=on-failure", "EnvironmentFile="} {
		if !strings.Contains(string(unit), want) {
			t.Errorf("the unit lacks %s", want)
		}
	}

	analyze, err := osexec.LookPath("systemd-analyze")
	if err != nil {
		t.Log("systemd-analyze not installed: the unit is not verified")
		return
	}
	// verify wants the binary and the environment file where the unit
	// names them: point both into the test's directory.
	dir := t.TempDir()
	bin := filepath.Join(dir, "digitoll")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	local := strings.NewReplacer("/usr/local/bin/digitoll", bin, "/etc/digitoll-worker/worker.env", filepath.Join(dir, "worker.env")).Replace(string(unit))
	if err := os.WriteFile(filepath.Join(dir, "worker.env"), envFile, 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "digitoll-worker.service")
	if err := os.WriteFile(path, []byte(local), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := osexec.Command(analyze, "verify", path).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// readCompose parses docker-compose.yml.
func readCompose(t *testing.T) composeFile {
	t.Helper()
	raw, err := os.ReadFile("../../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var cf composeFile
	if err := yaml.Unmarshal(raw, &cf); err != nil {
		t.Fatalf("docker-compose.yml does not parse: %v", err)
	}
	return cf
}
