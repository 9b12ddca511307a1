package contract

import (
	"fmt"
	"slices"
	"strings"
)

// Kind is the family of Toll APIs a submission is for; it is the third
// token of every submission subject.
type Kind string

// The kinds of docs/contract.md.
const (
	KindRoad     Kind = "road"
	KindAir      Kind = "air"
	KindEntry    Kind = "entry"
	KindDocument Kind = "document"
)

// kindRules is what the contract says of the submissions of one kind.
type kindRules struct {
	kind Kind
	// operations are those a submission may ask, in the order messages
	// name them.
	operations []Operation
	// levels are the declaration levels one of which a submission must
	// name; nil for a kind without levels.
	levels []Level
	// check checks the rest of the body once its id, after, mrn,
	// operation and level have passed.
	check func(*Submission) error
}

var (
	movementOperations = []Operation{OpCreate, OpUpdate, OpDelete}
	movementLevels     = []Level{LevelTransport, LevelMasterConsignment, LevelHouseConsignment}
)

// kindTable is every kind, in the stable order of Kinds. It is the one
// list of kinds: Kinds, ParseKind and ParseSubmission read it, and
// config's supported kinds are Kinds. A new kind is an entry here (and a
// handler in package handlers: see docs/development.md). It is never
// written.
var kindTable = [...]kindRules{
	{kind: KindRoad, operations: movementOperations, levels: movementLevels, check: (*Submission).checkMovement},
	{kind: KindAir, operations: movementOperations, levels: movementLevels, check: (*Submission).checkMovement},
	{kind: KindEntry, operations: []Operation{OpPresent}, check: (*Submission).checkEntry},
	{kind: KindDocument, operations: []Operation{OpUpload}, check: (*Submission).checkDocument},
}

// rulesOf returns the rules of kind, or nil for an unknown kind.
func rulesOf(kind Kind) *kindRules {
	for i := range kindTable {
		if kindTable[i].kind == kind {
			return &kindTable[i]
		}
	}
	return nil
}

// Kinds lists every kind in a stable order.
func Kinds() []Kind {
	out := make([]Kind, len(kindTable))
	for i, r := range kindTable {
		out[i] = r.kind
	}
	return out
}

// ParseKind returns the kind named s or an error naming the valid ones.
func ParseKind(s string) (Kind, error) {
	if r := rulesOf(Kind(s)); r != nil {
		return r.kind, nil
	}
	return "", fmt.Errorf("unknown kind %q (want one of %s)", s, joinList(Kinds(), ", "))
}

// checkOperationAndLevel checks what r says of every submission of its
// kind: one of its operations and, for a kind with levels, one of those.
func (r *kindRules) checkOperationAndLevel(s *Submission) error {
	if err := oneOf("operation", s.Operation, r.operations); err != nil {
		return err
	}
	if r.levels == nil {
		return nil
	}
	return oneOf("level", s.Level, r.levels)
}

// oneOf checks that the field called name has one of the values of list.
// The list is joined only for an error: this runs for every message.
func oneOf[T ~string](name string, v T, list []T) error {
	switch {
	case v == "":
		return malformed("%s is missing (want %s)", name, joinList(list, " or "))
	case !slices.Contains(list, v):
		return malformed("%s %q is not %s", name, truncate(string(v), 40), joinList(list, " or "))
	}
	return nil
}

// joinList names the items of list as "a, b<last>c", last being " or "
// or ", ".
func joinList[T ~string](list []T, last string) string {
	var b strings.Builder
	for i, v := range list {
		switch {
		case i == 0:
		case i == len(list)-1:
			b.WriteString(last)
		default:
			b.WriteString(", ")
		}
		b.WriteString(string(v))
	}
	return b.String()
}
