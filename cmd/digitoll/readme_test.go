package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/digitoll/digitoll-worker/config"
)

// repoRoot is where README.md and docs/ live, seen from this package.
const repoRoot = "../.."

func readDoc(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// docFiles lists README.md and every page under docs/, relative to the
// repository root.
func docFiles(t *testing.T) []string {
	t.Helper()
	pages, err := filepath.Glob(filepath.Join(repoRoot, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	files := []string{"README.md"}
	for _, p := range pages {
		rel, err := filepath.Rel(repoRoot, p)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, filepath.ToSlash(rel))
	}
	return files
}

// The README's two commands are what a newcomer runs, and CI runs the
// same test script: they drift silently unless a test holds them together.
func TestReadmeStaysTrue(t *testing.T) {
	readme := readDoc(t, "README.md")
	ci := readDoc(t, ".ci/run")
	if !strings.Contains(readme, "\n.ci/run ") {
		t.Error("README's test command is not .ci/run, the script CI runs")
	}
	for _, cmd := range []string{"go vet ./...", "go tool staticcheck ./...", "go test -race -count=1 ./...", "go test -count=1 ./..."} {
		if !strings.Contains(ci, "\n"+cmd+"\n") {
			t.Errorf(".ci/run does not run %q", cmd)
		}
	}
	if !strings.Contains(readme, "go run ./cmd/digitoll demo") {
		t.Error("README lacks the demo command `go run ./cmd/digitoll demo`")
	}
	commandsPage := readDoc(t, "docs/commands.md")
	for _, c := range commands() {
		if !strings.Contains(commandsPage, "`digitoll "+c.name) {
			t.Errorf("docs/commands.md does not describe `digitoll %s`", c.name)
		}
	}
	// Every page is reachable from the docs index and from the README.
	index := readDoc(t, "docs/README.md")
	for _, f := range docFiles(t) {
		page, ok := strings.CutPrefix(f, "docs/")
		if !ok || page == "README.md" {
			continue
		}
		if !strings.Contains(index, "]("+page+")") {
			t.Errorf("docs/README.md does not link %s", page)
		}
		if !strings.Contains(readme, "](docs/"+page+")") {
			t.Errorf("README.md does not link docs/%s", page)
		}
	}
}

// configRow matches a row of the settings table in docs/configuration.md:
// variable, flag, default, meaning.
var configRow = regexp.MustCompile("(?m)^\\| `(DIGITOLL_[A-Z0-9_]+)` \\| `--([a-z0-9-]+)` \\|([^|]*)\\|")

// docs/configuration.md documents every setting with its flag and its real
// default, and nothing that is not a setting.
func TestConfigurationDocumented(t *testing.T) {
	page := readDoc(t, "docs/configuration.md")
	type row struct{ flag, def string }
	rows := map[string]row{}
	for _, m := range configRow.FindAllStringSubmatch(page, -1) {
		rows[m[1]] = row{flag: m[2], def: strings.Trim(strings.TrimSpace(m[3]), "`")}
	}
	known := map[string]bool{}
	for _, s := range config.Settings() {
		known[s.Env] = true
		r, ok := rows[s.Env]
		if !ok {
			t.Errorf("docs/configuration.md's table lacks %s", s.Env)
			continue
		}
		if r.flag != s.Flag {
			t.Errorf("docs/configuration.md: %s has flag --%s, the code --%s", s.Env, r.flag, s.Flag)
		}
		want := s.Default
		if want == "" && (r.def == "" || r.def == "from env") {
			continue
		}
		if r.def != want {
			t.Errorf("docs/configuration.md: %s defaults to %q, the code to %q", s.Env, r.def, want)
		}
	}
	for env := range rows {
		if !known[env] {
			t.Errorf("docs/configuration.md documents %s, which is not a setting", env)
		}
	}
}

// statedDefault finds prose that states a setting's default next to its
// name: "`DIGITOLL_OUTAGE_THRESHOLD` (10)", "`DIGITOLL_TOLL_RATE` requests
// per second (100)", "`DIGITOLL_KIND_CONCURRENCY` (default `document=8`)".
var statedDefault = regexp.MustCompile("`(DIGITOLL_[A-Z0-9_]+)`(?:\\s[a-z]+){0,4}\\s\\((?:default )?`?([0-9]+(?: ?[a-z]+)?|[a-z]+=[0-9]+(?:,[a-z]+=[0-9]+)*)`?\\)")

// Every default stated in the prose of the README and docs/ is the code's.
func TestDocumentedDefaults(t *testing.T) {
	defaults := map[string]string{}
	for _, s := range config.Settings() {
		defaults[s.Env] = s.Default
	}
	found := 0
	for _, f := range docFiles(t) {
		for _, m := range statedDefault.FindAllStringSubmatch(readDoc(t, f), -1) {
			env, stated := m[1], strings.ReplaceAll(m[2], " ", "")
			want, ok := defaults[env]
			if !ok {
				t.Errorf("%s: %s is not a setting", f, env)
				continue
			}
			found++
			if !sameDefault(stated, want) {
				t.Errorf("%s says %s defaults to %s; the code's default is %q", f, env, m[2], want)
			}
		}
	}
	if found == 0 {
		t.Error("found no stated default at all: the pattern no longer matches the docs")
	}
}

// sameDefault compares a default as written in prose with the code's,
// reading both as durations when they are ("1m" is "60s").
func sameDefault(stated, code string) bool {
	if stated == code {
		return true
	}
	a, errA := time.ParseDuration(stated)
	b, errB := time.ParseDuration(code)
	return errA == nil && errB == nil && a == b
}

// mdLink matches a markdown link's target.
var mdLink = regexp.MustCompile(`\]\(([^)\s]+)\)`)

// Every relative link in the README and docs/ names a file that exists,
// and an anchor names a heading of that file.
func TestDocLinksResolve(t *testing.T) {
	for _, f := range docFiles(t) {
		text := stripFences(readDoc(t, f))
		for _, m := range mdLink.FindAllStringSubmatch(text, -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			file, anchor, _ := strings.Cut(target, "#")
			path := f
			if file != "" {
				path = filepath.ToSlash(filepath.Join(filepath.Dir(f), file))
			}
			if _, err := os.Stat(filepath.Join(repoRoot, path)); err != nil {
				t.Errorf("%s links %s, which does not exist", f, target)
				continue
			}
			if anchor == "" {
				continue
			}
			if !strings.HasSuffix(path, ".md") {
				t.Errorf("%s links %s: an anchor into a file that is not markdown", f, target)
				continue
			}
			if !headingAnchors(readDoc(t, path))[anchor] {
				t.Errorf("%s links %s, but %s has no heading #%s", f, target, path, anchor)
			}
		}
	}
}

// stripFences drops fenced code blocks, whose brackets are not links.
func stripFences(text string) string {
	var out []string
	in := false
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, "```") {
			in = !in
			continue
		}
		if !in {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// headingAnchors returns the anchors GitHub makes for a page's headings:
// the heading's text lower-cased, punctuation dropped, spaces as hyphens.
func headingAnchors(text string) map[string]bool {
	anchors := map[string]bool{}
	linkText := regexp.MustCompile(`\[([^\]]*)\]\([^)]*\)`)
	for _, l := range strings.Split(stripFences(text), "\n") {
		h := strings.TrimLeft(l, "#")
		if h == l || !strings.HasPrefix(h, " ") {
			continue
		}
		h = linkText.ReplaceAllString(strings.TrimSpace(h), "$1")
		var b strings.Builder
		for _, r := range strings.ToLower(h) {
			switch {
			case r == ' ':
				b.WriteRune('-')
			case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
				b.WriteRune(r)
			}
		}
		anchors[b.String()] = true
	}
	return anchors
}
