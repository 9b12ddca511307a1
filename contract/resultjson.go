package contract

import (
	"encoding/json"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
)

// AppendJSON appends r encoded exactly as json.Marshal encodes it (the
// same fields in the same order, HTML-safe escaping, sorted metadata
// keys, RFC 3339 times), without reflection: every finished message
// encodes its result. A time json.Marshal refuses, or one not in UTC
// (the worker's are), is left to json.Marshal, error included.
func (r *Result) AppendJSON(b []byte) ([]byte, error) {
	if !plainTime(r.ReceivedAt) || !plainTime(r.CompletedAt) {
		data, err := json.Marshal(r)
		if err != nil {
			return b, err
		}
		return append(b, data...), nil
	}
	b = append(b, `{"id":`...)
	b = appendString(b, r.ID)
	b = append(b, `,"tenant":`...)
	b = appendString(b, r.Tenant)
	b = append(b, `,"kind":`...)
	b = appendString(b, string(r.Kind))
	if r.Operation != "" {
		b = append(b, `,"operation":`...)
		b = appendString(b, string(r.Operation))
	}
	if r.Level != "" {
		b = append(b, `,"level":`...)
		b = appendString(b, string(r.Level))
	}
	b = append(b, `,"status":`...)
	b = appendString(b, string(r.Status))
	if r.MRN != "" {
		b = append(b, `,"mrn":`...)
		b = appendString(b, r.MRN)
	}
	if r.RequestID != "" {
		b = append(b, `,"requestId":`...)
		b = appendString(b, r.RequestID)
	}
	b = append(b, `,"errors":`...)
	if r.Errors == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, e := range r.Errors {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"path":`...)
			b = appendString(b, e.Path)
			b = append(b, `,"message":`...)
			b = appendString(b, e.Message)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	b = append(b, `,"incompleteDocumentation":`...)
	if r.IncompleteDocumentation == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, s := range r.IncompleteDocumentation {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, s)
		}
		b = append(b, ']')
	}
	if r.Note != "" {
		b = append(b, `,"note":`...)
		b = appendString(b, r.Note)
	}
	b = append(b, `,"attempts":`...)
	b = strconv.AppendInt(b, int64(r.Attempts), 10)
	b = append(b, `,"receivedAt":"`...)
	b = r.ReceivedAt.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","completedAt":"`...)
	b = r.CompletedAt.AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	if len(r.Metadata) > 0 {
		b = append(b, `,"metadata":{`...)
		var buf [8]string
		keys := buf[:0]
		for k := range r.Metadata {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, k)
			b = append(b, ':')
			b = appendString(b, r.Metadata[k])
		}
		b = append(b, '}')
	}
	return append(b, '}'), nil
}

// plainTime reports whether t is encoded by AppendFormat as json.Marshal
// encodes it: in UTC, with a four-digit year.
func plainTime(t time.Time) bool {
	return t.Location() == time.UTC && t.Year() >= 0 && t.Year() <= 9999
}

const hexDigits = "0123456789abcdef"

// AppendJSONString appends s as a JSON string exactly as json.Marshal
// writes it, for other hand-written encoders of records that must match
// json.Marshal byte for byte.
func AppendJSONString(b []byte, s string) []byte { return appendString(b, s) }

// appendString appends s as a JSON string the way json.Marshal writes
// it: <, > and & escaped for HTML, invalid UTF-8 replaced by U+FFFD, and
// U+2028 and U+2029 escaped.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
