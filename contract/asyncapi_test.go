package contract_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/internal/schematest"
)

// asyncAPI is the part of docs/asyncapi.yaml the tests read.
type asyncAPI struct {
	AsyncAPI string `yaml:"asyncapi"`
	Channels map[string]struct {
		Address    string         `yaml:"address"`
		Stream     string         `yaml:"x-jetstream-stream"`
		Parameters map[string]any `yaml:"parameters"`
		Messages   map[string]any `yaml:"messages"`
	} `yaml:"channels"`
	Components struct {
		Parameters map[string]struct {
			Enum []string `yaml:"enum"`
		} `yaml:"parameters"`
		Schemas map[string]struct {
			Properties map[string]any `yaml:"properties"`
		} `yaml:"schemas"`
	} `yaml:"components"`
}

func docsDir(t *testing.T) string { return filepath.Dir(schematest.Dir(t)) }

func readAsyncAPI(t *testing.T) (asyncAPI, any) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(docsDir(t), "asyncapi.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc asyncAPI
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("docs/asyncapi.yaml does not parse: %v", err)
	}
	var tree any
	if err := yaml.Unmarshal(raw, &tree); err != nil {
		t.Fatal(err)
	}
	return doc, tree
}

// The AsyncAPI document names exactly the streams and subjects package
// contract defines: every subject a builder makes is a channel's address
// with its parameters filled in, every channel's address is one a builder
// makes, and each channel lies in the stream it names.
func TestAsyncAPIMatchesTheSubjects(t *testing.T) {
	doc, _ := readAsyncAPI(t)
	if !strings.HasPrefix(doc.AsyncAPI, "3.") {
		t.Errorf("asyncapi is %q, want 3.x", doc.AsyncAPI)
	}
	const tenant = "acme"
	feeds := []contract.Feed{contract.FeedHouseConsignment, contract.FeedTransport}
	fromCode := map[string]bool{}
	for _, k := range contract.Kinds() {
		fromCode[contract.SubmitSubject(k, tenant)] = true
		fromCode[contract.ResultSubject(k, tenant)] = true
		fromCode[contract.DLQSubject(k, tenant)] = true
	}
	for _, f := range feeds {
		fromCode[contract.RoutingSubject(f, tenant)] = true
	}
	streams := map[string]string{
		contract.StreamSubmit:  contract.SubjectsSubmit,
		contract.StreamResults: contract.SubjectsResults,
		contract.StreamDLQ:     contract.SubjectsDLQ,
		contract.StreamRouting: contract.SubjectsRouting,
	}

	// Parameter values: the enums, checked against the code's lists.
	values := map[string][]string{"tenant": {tenant}}
	for name, p := range doc.Components.Parameters {
		if len(p.Enum) > 0 {
			values[name] = p.Enum
		}
	}
	var kinds []string
	for _, k := range contract.Kinds() {
		kinds = append(kinds, string(k))
	}
	if !slices.Equal(values["kind"], kinds) {
		t.Errorf("parameter kind is %v, the code's kinds %v", values["kind"], kinds)
	}
	if !slices.Equal(values["feed"], []string{string(feeds[0]), string(feeds[1])}) {
		t.Errorf("parameter feed is %v, the code's feeds %v", values["feed"], feeds)
	}

	fromDoc := map[string]bool{}
	streamsSeen := map[string]bool{}
	for name, ch := range doc.Channels {
		filter, ok := streams[ch.Stream]
		if !ok {
			t.Errorf("channel %s names stream %q, which the code does not define", name, ch.Stream)
		}
		streamsSeen[ch.Stream] = true
		subjects := expand(t, ch.Address, values)
		for param := range ch.Parameters {
			if !strings.Contains(ch.Address, "{"+param+"}") {
				t.Errorf("channel %s has parameter %s that its address %s lacks", name, param, ch.Address)
			}
		}
		for _, s := range subjects {
			fromDoc[s] = true
			if !subjectMatches(filter, s) {
				t.Errorf("channel %s: %s is not in stream %s (%s)", name, s, ch.Stream, filter)
			}
			if !fromCode[s] {
				t.Errorf("channel %s: %s is a subject no builder of package contract makes", name, s)
			}
		}
		if len(ch.Messages) == 0 {
			t.Errorf("channel %s has no messages", name)
		}
	}
	for s := range fromCode {
		if !fromDoc[s] {
			t.Errorf("subject %s is not a channel of docs/asyncapi.yaml", s)
		}
	}
	for stream := range streams {
		if !streamsSeen[stream] {
			t.Errorf("stream %s has no channel in docs/asyncapi.yaml", stream)
		}
	}
}

// The headers the worker sets are documented on the messages that carry them.
func TestAsyncAPIDocumentsTheHeaders(t *testing.T) {
	doc, _ := readAsyncAPI(t)
	want := map[string][]string{
		"submissionHeaders": {contract.HeaderMsgID, contract.HeaderTraceparent, contract.HeaderTracestate},
		"resultHeaders": {contract.HeaderMsgID, contract.HeaderResultStatus, contract.HeaderResultKind, contract.HeaderResultTenant,
			contract.HeaderResultSubmissionID, contract.HeaderTraceparent, contract.HeaderTracestate},
		"deadLetterHeaders": {contract.HeaderMsgID, contract.HeaderDLQReason, contract.HeaderDLQError, contract.HeaderAttempts,
			contract.HeaderOriginalSubject, contract.HeaderOriginalStreamSeq, contract.HeaderFailedAt},
		"routingHeaders": {contract.HeaderMsgID, contract.HeaderResultTenant, "Digitoll-Routing", "Digitoll-Routing-Id", "Digitoll-Routing-After"},
	}
	for schema, headers := range want {
		props := doc.Components.Schemas[schema].Properties
		for _, h := range headers {
			if _, ok := props[h]; !ok {
				t.Errorf("docs/asyncapi.yaml: %s lacks %s", schema, h)
			}
		}
	}
}

// Every $ref of the AsyncAPI document resolves: references within it to
// a node that exists, references to the schema files to a part of a file
// that compiles as a JSON Schema.
func TestAsyncAPIRefsResolve(t *testing.T) {
	_, tree := readAsyncAPI(t)
	var refs []string
	collectRefs(tree, &refs)
	if len(refs) == 0 {
		t.Fatal("docs/asyncapi.yaml has no $ref at all")
	}
	external := 0
	for _, ref := range refs {
		file, pointer, _ := strings.Cut(ref, "#")
		if file == "" {
			if resolvePointer(tree, pointer) == nil {
				t.Errorf("$ref %s names nothing in docs/asyncapi.yaml", ref)
			}
			continue
		}
		external++
		rel, err := filepath.Rel("schemas", filepath.FromSlash(file))
		if err != nil || strings.HasPrefix(rel, "..") {
			t.Errorf("$ref %s is not a file in docs/schemas", ref)
			continue
		}
		raw, err := os.ReadFile(filepath.Join(docsDir(t), filepath.FromSlash(file)))
		if err != nil {
			t.Errorf("$ref %s: %v", ref, err)
			continue
		}
		var schema any
		if err := json.Unmarshal(raw, &schema); err != nil {
			t.Errorf("$ref %s: %v", ref, err)
			continue
		}
		if resolvePointer(schema, pointer) == nil {
			t.Errorf("$ref %s names nothing in %s", ref, file)
			continue
		}
		schematest.Compile(t, rel+"#"+pointer)
	}
	if external < 5 {
		t.Errorf("only %d payloads refer to docs/schemas; want the four submissions and the result", external)
	}
}

// expand fills the {parameters} of a channel address with every value.
func expand(t *testing.T, address string, values map[string][]string) []string {
	out := []string{address}
	for {
		open := strings.Index(out[0], "{")
		if open < 0 {
			return out
		}
		end := strings.Index(out[0][open:], "}")
		if end < 0 {
			t.Fatalf("address %s: unclosed parameter", address)
		}
		name := out[0][open+1 : open+end]
		vs, ok := values[name]
		if !ok {
			t.Fatalf("address %s: parameter %s has no values to test with", address, name)
		}
		var next []string
		for _, a := range out {
			for _, v := range vs {
				next = append(next, strings.Replace(a, "{"+name+"}", v, 1))
			}
		}
		out = next
	}
}

// subjectMatches reports whether a NATS subject filter (tokens, '*' and a
// final '>') matches subject.
func subjectMatches(filter, subject string) bool {
	f, s := strings.Split(filter, "."), strings.Split(subject, ".")
	for i, tok := range f {
		switch {
		case tok == ">":
			return len(s) > i
		case i >= len(s):
			return false
		case tok != "*" && tok != s[i]:
			return false
		}
	}
	return len(f) == len(s)
}

func collectRefs(node any, refs *[]string) {
	switch n := node.(type) {
	case map[string]any:
		for k, v := range n {
			if s, ok := v.(string); ok && k == "$ref" {
				*refs = append(*refs, s)
				continue
			}
			collectRefs(v, refs)
		}
	case []any:
		for _, v := range n {
			collectRefs(v, refs)
		}
	}
}

// resolvePointer follows a JSON pointer ("/components/messages/result");
// nil when it names nothing.
func resolvePointer(node any, pointer string) any {
	if pointer == "" {
		return node
	}
	for _, tok := range strings.Split(strings.TrimPrefix(pointer, "/"), "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		m, ok := node.(map[string]any)
		if !ok {
			return nil
		}
		if node, ok = m[tok]; !ok {
			return nil
		}
	}
	return node
}
