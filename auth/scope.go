package auth

// Scope returns the Maskinporten scope for a Toll API. base is the part
// after "toll:", e.g. "movement/road/v2", "movement/air",
// "movement/entry" or "goodsdeclaration/document.write". Foreign
// businesses (without a Norwegian organisation number) are granted the
// same APIs under "toll:eu/", so foreign selects that prefix.
func Scope(foreign bool, base string) string {
	if foreign {
		return "toll:eu/" + base
	}
	return "toll:" + base
}
