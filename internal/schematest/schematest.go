// Package schematest compiles the JSON Schemas of docs/schemas for tests,
// so that the tests of every package can hold the code to the contract as
// it is published (docs/contract.md), not to a copy of it.
package schematest

import (
	"bytes"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// Schema files in docs/schemas.
const (
	Submission = "submission.schema.json"
	Result     = "result.schema.json"
)

// Dir returns the absolute path of docs/schemas.
func Dir(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("schematest: cannot find its own source file")
	}
	return filepath.Join(filepath.Dir(file), "..", "..", "docs", "schemas")
}

// Compile compiles the schema file name of docs/schemas, or a part of it
// named by a JSON pointer fragment ("submission.schema.json#/$defs/road").
// Formats (date-time) and content encodings (base64) are asserted, not
// only annotated, as the worker checks them too.
func Compile(t testing.TB, name string) *jsonschema.Schema {
	t.Helper()
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	c.AssertContent()
	s, err := c.Compile(filepath.Join(Dir(t), name))
	if err != nil {
		t.Fatalf("compile %s: %v", name, err)
	}
	return s
}

// Validate checks one JSON document against s; the error lists every
// violation.
func Validate(s *jsonschema.Schema, data []byte) error {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return err
	}
	return s.Validate(doc)
}
