package contract

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

// decodeSubmission decodes a submission body as a json.Decoder with
// DisallowUnknownFields does (decodeStrict), with far fewer allocations
// for the bodies producers send: a valid object whose keys are the
// submission's own, spelled exactly, each once, with strings free of
// escapes, a metadata object of such strings, and no presentation or
// document. Any other body, valid or not, is decoded by decodeStrict,
// which gives the same result or error as before this fast path existed.
func decodeSubmission(data []byte) (*Submission, error) {
	if s, ok := decodeCommon(data); ok {
		return s, nil
	}
	return decodeStrict(data)
}

// decodeStrict is the reference decoding of a submission body.
func decodeStrict(data []byte) (*Submission, error) {
	var s Submission
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return nil, malformed("body is not a submission JSON object: %s", oneLine(err.Error()))
	}
	if dec.More() {
		return nil, malformed("body has data after the JSON object")
	}
	return &s, nil
}

// The submission's keys, as bits of decodeCommon's record of those seen.
const (
	keyID = 1 << iota
	keyOperation
	keyLevel
	keyMRN
	keyAfter
	keyDeclaration
	keyMetadata
)

// decodeCommon is decodeSubmission's fast path; ok is false for a body it
// leaves to decodeStrict. json.Valid (which allocates nothing) vouches
// for the syntax, so the walk below only finds where values end.
func decodeCommon(data []byte) (_ *Submission, ok bool) {
	if !json.Valid(data) {
		return nil, false
	}
	i := skipSpace(data, 0)
	if data[i] != '{' {
		return nil, false
	}
	s := &Submission{}
	seen := 0
	i = skipSpace(data, i+1)
	for data[i] != '}' {
		key, end, ok := plainString(data, i)
		if !ok {
			return nil, false
		}
		i = skipSpace(data, end) // ':'
		i = skipSpace(data, i+1) // the value
		end = valueEnd(data, i)
		value := data[i:end]
		bit, ok := decodeField(s, string(key), value)
		if !ok || seen&bit != 0 {
			return nil, false
		}
		seen |= bit
		i = skipSpace(data, end)
		if data[i] == ',' {
			i = skipSpace(data, i+1)
		}
	}
	return s, true
}

// decodeField sets the field key names to value and returns the key's
// bit; ok is false for what decodeCommon leaves to decodeStrict.
func decodeField(s *Submission, key string, value []byte) (bit int, ok bool) {
	switch key {
	case "id":
		s.ID, ok = stringValue(value)
		return keyID, ok
	case "operation":
		var v string
		v, ok = stringValue(value)
		s.Operation = internOperation(v)
		return keyOperation, ok
	case "level":
		var v string
		v, ok = stringValue(value)
		s.Level = internLevel(v)
		return keyLevel, ok
	case "mrn":
		s.MRN, ok = stringValue(value)
		return keyMRN, ok
	case "after":
		s.After, ok = stringValue(value)
		return keyAfter, ok
	case "declaration":
		if value[0] == 'n' {
			return keyDeclaration, false // null: json.RawMessage keeps it
		}
		s.Declaration = bytes.Clone(value)
		return keyDeclaration, true
	case "metadata":
		s.Metadata, ok = stringMap(value)
		return keyMetadata, ok
	}
	return 0, false
}

// internOperation and internLevel return the constant for a known value,
// so that decoding it allocates nothing.
func internOperation(v string) Operation {
	for _, op := range [...]Operation{OpCreate, OpUpdate, OpDelete, OpPresent, OpUpload} {
		if string(op) == v {
			return op
		}
	}
	return Operation(v)
}

func internLevel(v string) Level {
	for _, l := range [...]Level{LevelTransport, LevelMasterConsignment, LevelHouseConsignment} {
		if string(l) == v {
			return l
		}
	}
	return Level(v)
}

// stringValue is a JSON string value as encoding/json decodes it, when
// that is its bytes between the quotes: no escape, no control character,
// valid UTF-8 (encoding/json would replace what is not).
func stringValue(value []byte) (string, bool) {
	raw, end, ok := plainString(value, 0)
	if !ok || end != len(value) {
		return "", false
	}
	return string(raw), true
}

// plainString returns the bytes of the string starting at data[i] and the
// index after its closing quote; ok is false for anything but a string of
// the kind stringValue describes.
func plainString(data []byte, i int) (raw []byte, end int, ok bool) {
	if data[i] != '"' {
		return nil, 0, false
	}
	ascii := true
	for j := i + 1; j < len(data); j++ {
		switch c := data[j]; {
		case c == '"':
			raw = data[i+1 : j]
			if !ascii && !utf8.Valid(raw) {
				return nil, 0, false
			}
			return raw, j + 1, true
		case c == '\\' || c < 0x20:
			return nil, 0, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return nil, 0, false
}

// stringMap decodes an object of plain strings, as encoding/json decodes
// it into a map[string]string (a later key replaces an earlier one).
func stringMap(value []byte) (map[string]string, bool) {
	if value[0] != '{' {
		return nil, false
	}
	m := make(map[string]string, bytes.Count(value, []byte{':'}))
	i := skipSpace(value, 1)
	for value[i] != '}' {
		k, end, ok := plainString(value, i)
		if !ok {
			return nil, false
		}
		i = skipSpace(value, end)
		i = skipSpace(value, i+1)
		v, end, ok := plainString(value, i)
		if !ok {
			return nil, false
		}
		m[string(k)] = string(v)
		i = skipSpace(value, end)
		if value[i] == ',' {
			i = skipSpace(value, i+1)
		}
	}
	return m, true
}

// skipSpace returns the index of the first byte at or after i that is
// not JSON whitespace.
func skipSpace(data []byte, i int) int {
	for i < len(data) {
		switch data[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// valueEnd returns the index after the valid JSON value starting at
// data[i].
func valueEnd(data []byte, i int) int {
	switch data[i] {
	case '"':
		return stringEnd(data, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(data); j++ {
			switch data[j] {
			case '"':
				j = stringEnd(data, j) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return j + 1
				}
			}
		}
		return len(data)
	}
	// A number, true, false or null ends at a delimiter.
	j := i
	for j < len(data) {
		switch data[j] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return j
		}
		j++
	}
	return j
}

// stringEnd returns the index after the closing quote of the string
// starting at data[i].
func stringEnd(data []byte, i int) int {
	for j := i + 1; j < len(data); j++ {
		switch data[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return len(data)
}
