package toll

import "github.com/digitoll/digitoll-worker/contract"

// Movement describes one asynchronous movement API: where declarations
// are sent, where their validation status is read, and which scope both
// need. Road and air differ only in these values, so one client and one
// handler serve both.
type Movement struct {
	// Kind is the submission kind this API serves.
	Kind contract.Kind
	// Path is the declaration API relative to the base URL, e.g.
	// "movement/road/v2"; levels and MRNs are appended to it.
	Path string
	// QueryPath is the matching query API, e.g. "movement/road/status/v2".
	QueryPath string
	// ScopeBase is the scope without its "toll:" or "toll:eu/" prefix.
	ScopeBase string
}

// RoadV2 is movement-road-api-v2 with its query API.
func RoadV2() Movement {
	return Movement{
		Kind:      contract.KindRoad,
		Path:      "movement/road/v2",
		QueryPath: "movement/road/status/v2",
		ScopeBase: "movement/road/v2",
	}
}

// AirV1 is movement-air-api v1 with its query API. Its scope carries no
// version, unlike road's.
func AirV1() Movement {
	return Movement{
		Kind:      contract.KindAir,
		Path:      "movement/air/v1",
		QueryPath: "movement/air/status/v1",
		ScopeBase: "movement/air",
	}
}

// EntryScopeBase is the scope base of the entry APIs, presentation and
// routing: "toll:movement/entry" or "toll:eu/movement/entry".
const EntryScopeBase = "movement/entry"

// PresentationV1 is the entry presentation API (movement/presentation/v1).
// It has no query API of its own: whether goods have entered is read from
// the road or air query API of the declaration (Client.EntryStatus).
func PresentationV1() Movement {
	return Movement{
		Kind:      contract.KindEntry,
		Path:      "movement/presentation/v1",
		ScopeBase: EntryScopeBase,
	}
}

// Scope returns the Maskinporten scope for an API scope base: Norwegian
// businesses use "toll:<base>", foreign ones "toll:eu/<base>".
func Scope(foreign bool, base string) string {
	if foreign {
		return "toll:eu/" + base
	}
	return "toll:" + base
}
