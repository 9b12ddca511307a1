package simulator

import (
	"bytes"
	"maps"
	"math/rand/v2"
	"net/http"
	"time"
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

// answerDelay is how long the answer of an authorized Toll API write is
// held after processing (Faults.AnswerDelay); reads are never held.
func (s *Server) answerDelay(r *http.Request) time.Duration {
	switch r.Method {
	case http.MethodPost, http.MethodPut, http.MethodDelete:
		return s.currentFaults().AnswerDelay
	default:
		return 0
	}
}

// serveDelayed lets serve process the request in full at once, then holds
// its answer for d. If the client goes away meanwhile the answer is
// dropped: Toll acted, the client never hears.
func serveDelayed(w http.ResponseWriter, r *http.Request, d time.Duration, serve func(http.ResponseWriter)) {
	held := &heldResponse{header: http.Header{}, status: http.StatusOK}
	serve(held)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.Context().Done():
		setRequestNote(r, "simulated fault: client gone while its answer was held")
		panic(http.ErrAbortHandler)
	}
	maps.Copy(w.Header(), held.header)
	w.WriteHeader(held.status)
	// The client may be gone; there is no one to tell.
	_, _ = w.Write(held.body.Bytes())
}

// heldResponse is a ResponseWriter that keeps the answer for later.
type heldResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (h *heldResponse) Header() http.Header         { return h.header }
func (h *heldResponse) Write(p []byte) (int, error) { return h.body.Write(p) }
func (h *heldResponse) WriteHeader(code int)        { h.status = code }
