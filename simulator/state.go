package simulator

import (
	"crypto/rand"
	"encoding/base64"
	"maps"
	"time"
)

// state is everything the simulator remembers. Server.mu guards it.
type state struct {
	clients         map[string]Client
	validationDelay time.Duration
	faults          Faults

	// usedGrants maps client and jti of accepted grants to when they may
	// be forgotten (their exp plus the allowed skew).
	usedGrants map[scopeKey]time.Time
	mpTokens   map[string]issuedToken
	tollTokens map[string]issuedToken
	lastPrune  time.Time

	requests map[string]*request     // by requestId
	decls    map[string]*declaration // by MRN
	// docs maps the document number of each live (not cancelled)
	// declaration to its MRN: a number in use cannot be created again.
	docs map[docKey]string
	// entry remembers entry presentations.
	entry presentations
	// routing holds every client's routing feeds (see routing.go); its
	// zero value is ready.
	routing routingState

	// issuedTokens and receivedGrants are the credentials that passed
	// through, for tests that check they leak nowhere (secrets.go).
	issuedTokens   []string
	receivedGrants []string

	// counters for Stats
	requestCounts map[string]int
	grants        map[scopeKey]int
	exchanges     map[scopeKey]int
	submissions   map[string]int
	declarations  []Declaration
}

func newState(validationDelay time.Duration) state {
	return state{
		clients:         map[string]Client{},
		validationDelay: validationDelay,
		usedGrants:      map[scopeKey]time.Time{},
		mpTokens:        map[string]issuedToken{},
		tollTokens:      map[string]issuedToken{},
		requests:        map[string]*request{},
		decls:           map[string]*declaration{},
		docs:            map[docKey]string{},
		entry:           newPresentations(),
		requestCounts:   map[string]int{},
		grants:          map[scopeKey]int{},
		exchanges:       map[scopeKey]int{},
		submissions:     map[string]int{},
	}
}

// issuedToken is what an opaque access token stands for.
type issuedToken struct {
	clientID string
	scopes   []string
	expires  time.Time
}

// pruneInterval is how often expired grants and tokens are forgotten;
// pruning on every call would make issuing quadratic.
const pruneInterval = time.Second

// prune forgets expired jtis and tokens.
func (st *state) prune(now time.Time) {
	if now.Sub(st.lastPrune) < pruneInterval {
		return
	}
	st.lastPrune = now
	maps.DeleteFunc(st.usedGrants, func(_ scopeKey, until time.Time) bool { return now.After(until) })
	expired := func(_ string, t issuedToken) bool { return !now.Before(t.expires) }
	maps.DeleteFunc(st.mpTokens, expired)
	maps.DeleteFunc(st.tollTokens, expired)
}

// newOpaqueToken returns an unguessable token string.
func newOpaqueToken() string {
	b := make([]byte, 32)
	// crypto/rand.Read never fails on supported platforms (Go 1.24+).
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
