package simulator

import (
	"math/rand/v2"
	"net/http"
)

// answerLost decides whether an authorized Toll API call loses its answer:
// only writes do (a lost answer to a read is just a failed read), the
// next Faults.LoseResponses of them, then a Faults.LoseResponseRate
// fraction.
func (s *Server) answerLost(r *http.Request) bool {
	switch r.Method {
	case http.MethodPost, http.MethodPut, http.MethodDelete:
	default:
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	f := &s.st.faults
	if f.LoseResponses > 0 {
		f.LoseResponses--
		return true
	}
	return f.LoseResponseRate > 0 && rand.Float64() < f.LoseResponseRate
}

// serveWithoutAnswer lets serve process the request in full, writing to
// nowhere, then drops the connection: Toll acted, the client never hears.
func serveWithoutAnswer(w http.ResponseWriter, r *http.Request, serve func(http.ResponseWriter)) {
	serve(&discardResponse{header: http.Header{}})
	dropConnection(w, r, "simulated fault: answer lost after processing")
}

// dropConnection closes the request's connection without an answer. The
// response must not have been written to yet.
func dropConnection(w http.ResponseWriter, r *http.Request, note string) {
	setRequestNote(r, note)
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		// A connection that cannot be hijacked (HTTP/2) is reset by
		// aborting the handler instead.
		panic(http.ErrAbortHandler)
	}
	// Nothing is left to tell the client; a close error changes nothing.
	_ = conn.Close()
}

// discardResponse is a ResponseWriter that forgets the answer.
type discardResponse struct {
	header http.Header
}

func (d *discardResponse) Header() http.Header         { return d.header }
func (d *discardResponse) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardResponse) WriteHeader(int)             {}
