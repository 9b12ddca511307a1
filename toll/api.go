package toll

import "github.com/digitoll/digitoll-worker/contract"

// API describes one Toll API: the submission kind it serves, where
// requests are sent, where statuses are read (the movement APIs' query
// APIs) and which scope its token needs. The road and air movement APIs,
// entry presentation, document upload and routing differ only in these
// values, so one client serves them all, and one handler road and air.
type API struct {
	// Kind is the submission kind this API serves.
	Kind contract.Kind
	// Path is the declaration API relative to the base URL, e.g.
	// "movement/road/v2"; levels and MRNs are appended to it.
	Path string
	// QueryPath is the matching query API, e.g. "movement/road/status/v2";
	// empty for an API without one.
	QueryPath string
	// ScopeBase is the scope without its "toll:" or "toll:eu/" prefix.
	ScopeBase string
}

// RoadV2 is movement-road-api-v2 with its query API.
func RoadV2() API {
	return API{
		Kind:      contract.KindRoad,
		Path:      "movement/road/v2",
		QueryPath: "movement/road/status/v2",
		ScopeBase: "movement/road/v2",
	}
}

// AirV1 is movement-air-api v1 with its query API. Its scope carries no
// version, unlike road's.
func AirV1() API {
	return API{
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
func PresentationV1() API {
	return API{
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
