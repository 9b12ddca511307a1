package simulator

import "slices"

// maxRemembered bounds the credentials kept for IssuedTokens and
// ReceivedGrants, so that a simulator that runs for days does not grow
// without end; a test issues a handful.
const maxRemembered = 1000

// remember appends v to list, dropping the oldest entry when list is full.
func remember(list []string, v string) []string {
	if len(list) >= maxRemembered {
		list = append(list[:0], list[1:]...)
	}
	return append(list, v)
}

// IssuedTokens lists the access tokens the simulator issued, Maskinporten's
// and Toll's, oldest first (the last 1000). Tests look for them where they
// must never appear: logs, results, dead letters, metrics.
func (s *Server) IssuedTokens() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.st.issuedTokens)
}

// ReceivedGrants lists the JWT grants presented to the Maskinporten token
// endpoint, accepted or not, oldest first (the last 1000), for the same
// tests.
func (s *Server) ReceivedGrants() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.st.receivedGrants)
}
