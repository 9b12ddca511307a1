package simulator

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Messages of Toll's synchronous (400) validation.
const (
	msgNull    = "must not be null"
	msgBlank   = "must not be blank"
	msgInstant = "invalid ISO-8601 instant in UTC (yyyy-MM-ddTHH:mm:ssZ)"
	msgObject  = "must be an object"
	msgString  = "must be a string"
)

// instantLayout is the only date-time form Toll accepts: UTC, no
// fractions.
const instantLayout = "2006-01-02T15:04:05Z"

// fieldError is one entry of a 400 answer's validationErrors.
type fieldError struct {
	Field string `json:"field"`
	Error string `json:"error"`
}

type fieldKind int

const (
	kindObject fieldKind = iota + 1
	kindString
	kindInstant
)

// rule says that the field at a dotted path must be present, of a kind.
type rule struct {
	path string
	kind fieldKind
}

// validateDeclaration collects every 400 error of a body: required
// fields by rules, and the format of every date-time in it. Like a bean
// validator, a missing object is reported once, not for each field in it.
func validateDeclaration(body map[string]any, rules []rule) []fieldError {
	seen := map[fieldError]bool{}
	add := func(e fieldError) { seen[e] = true }
	for _, r := range rules {
		if e, bad := checkRule(body, r); bad {
			add(e)
		}
	}
	walkInstants(body, "", add)
	errs := slices.Collect(maps.Keys(seen))
	slices.SortFunc(errs, func(a, b fieldError) int {
		if c := strings.Compare(a.Field, b.Field); c != 0 {
			return c
		}
		return strings.Compare(a.Error, b.Error)
	})
	return errs
}

func checkRule(body map[string]any, r rule) (fieldError, bool) {
	segs := strings.Split(r.path, ".")
	var cur any = body
	for i, seg := range segs {
		m, ok := cur.(map[string]any)
		if !ok {
			return fieldError{strings.Join(segs[:i], "."), msgObject}, true
		}
		v, ok := m[seg]
		if !ok || v == nil {
			return fieldError{strings.Join(segs[:i+1], "."), msgNull}, true
		}
		cur = v
	}
	switch r.kind {
	case kindObject:
		if _, ok := cur.(map[string]any); !ok {
			return fieldError{r.path, msgObject}, true
		}
	case kindString:
		s, ok := cur.(string)
		if !ok {
			return fieldError{r.path, msgString}, true
		}
		if strings.TrimSpace(s) == "" {
			return fieldError{r.path, msgBlank}, true
		}
	case kindInstant:
		// walkInstants reports the format of every date-time.
	}
	return fieldError{}, false
}

// isInstantField says which fields hold date-times: documentIssueDate and
// the ...DateAndTime... family (estimatedDateAndTimeOfArrival etc.).
// Plain dates such as a date of birth are named otherwise.
func isInstantField(name string) bool {
	return name == "documentIssueDate" || strings.Contains(name, "DateAndTime")
}

// walkInstants reports every date-time field whose value is not an instant
// in instantLayout, in a stable order.
func walkInstants(v any, path string, add func(fieldError)) {
	switch x := v.(type) {
	case map[string]any:
		for _, k := range slices.Sorted(maps.Keys(x)) {
			p := joinPath(path, k)
			child := x[k]
			if isInstantField(k) && child != nil {
				if s, ok := child.(string); !ok || !validInstant(s) {
					add(fieldError{p, msgInstant})
				}
				continue
			}
			walkInstants(child, p, add)
		}
	case []any:
		for i, e := range x {
			walkInstants(e, fmt.Sprintf("%s[%d]", path, i), add)
		}
	}
}

// validInstant checks the exact form yyyy-MM-ddTHH:mm:ssZ. time.Parse
// alone would also take fractional seconds and one-digit hours.
func validInstant(s string) bool {
	if len(s) != len(instantLayout) {
		return false
	}
	for i := range len(s) {
		switch i {
		case 4, 7:
			if s[i] != '-' {
				return false
			}
		case 10:
			if s[i] != 'T' {
				return false
			}
		case 13, 16:
			if s[i] != ':' {
				return false
			}
		case 19:
			if s[i] != 'Z' {
				return false
			}
		default:
			if s[i] < '0' || s[i] > '9' {
				return false
			}
		}
	}
	_, err := time.Parse(instantLayout, s)
	return err == nil
}

func joinPath(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

// stringAt returns the string at a dotted path, or "".
func stringAt(v any, path string) string {
	for seg := range strings.SplitSeq(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return ""
		}
		v = m[seg]
	}
	s, _ := v.(string)
	return s
}

// valueAt returns the value at a dotted path, or nil.
func valueAt(v any, path string) any {
	for seg := range strings.SplitSeq(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[seg]
	}
	return v
}

// findString returns the path of the first string field (in sorted key
// order) whose value is want.
func findString(v any, path, want string) (string, bool) {
	switch x := v.(type) {
	case string:
		return path, x == want
	case map[string]any:
		for _, k := range slices.Sorted(maps.Keys(x)) {
			if p, ok := findString(x[k], joinPath(path, k), want); ok {
				return p, true
			}
		}
	case []any:
		for i, e := range x {
			if p, ok := findString(e, fmt.Sprintf("%s[%d]", path, i), want); ok {
				return p, true
			}
		}
	}
	return "", false
}
