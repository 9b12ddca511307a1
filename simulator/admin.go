package simulator

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"
)

// The admin API changes the simulator while it runs, so that people and
// tests driving a `digitoll sim` process can inject faults, grant and
// revoke scopes and change Toll's validation time without a restart:
//
//	GET    /_sim/faults                          the faults in force (JSON)
//	PUT    /_sim/faults                          replace them: {"latency":"200ms","errorRate":0.5,…}
//	PUT    /_sim/validation-delay                body "2s": validation time of writes from now on
//	PUT    /_sim/clients/{client}/scopes/{scope} grant a scope (e.g. …/scopes/toll:movement/road/v2)
//	DELETE /_sim/clients/{client}/scopes/{scope} revoke it
//	GET    /_sim/stats                           requests per route (JSON)
//
// It has no authentication: the simulator is a test double for loopback
// and private networks, never something to expose.
const adminPrefix = "/_sim/"

// faultsJSON is Faults on the wire, with durations as text ("250ms").
type faultsJSON struct {
	Latency          string  `json:"latency"`
	ErrorRate        float64 `json:"errorRate"`
	TooManyRate      float64 `json:"tooManyRate"`
	ResetRate        float64 `json:"resetRate"`
	LoseResponseRate float64 `json:"loseResponseRate"`
	LoseResponses    int     `json:"loseResponses"`
	MaskinportenDown bool    `json:"maskinportenDown"`
	ExchangeDown     bool    `json:"exchangeDown"`
}

func toJSON(f Faults) faultsJSON {
	return faultsJSON{
		Latency: f.Latency.String(), ErrorRate: f.ErrorRate, TooManyRate: f.TooManyRate, ResetRate: f.ResetRate,
		LoseResponseRate: f.LoseResponseRate, LoseResponses: f.LoseResponses,
		MaskinportenDown: f.MaskinportenDown, ExchangeDown: f.ExchangeDown,
	}
}

func (j faultsJSON) faults() (Faults, error) {
	var lat time.Duration
	if j.Latency != "" {
		d, err := time.ParseDuration(j.Latency)
		if err != nil || d < 0 {
			return Faults{}, fmt.Errorf("latency %q is not a duration", j.Latency)
		}
		lat = d
	}
	for name, r := range map[string]float64{"errorRate": j.ErrorRate, "tooManyRate": j.TooManyRate, "resetRate": j.ResetRate, "loseResponseRate": j.LoseResponseRate} {
		if r < 0 || r > 1 {
			return Faults{}, fmt.Errorf("%s %v is not between 0 and 1", name, r)
		}
	}
	if j.ErrorRate+j.TooManyRate+j.ResetRate > 1 {
		return Faults{}, fmt.Errorf("errorRate, tooManyRate and resetRate add up to more than 1")
	}
	if j.LoseResponses < 0 {
		return Faults{}, fmt.Errorf("loseResponses %d is negative", j.LoseResponses)
	}
	return Faults{
		Latency: lat, ErrorRate: j.ErrorRate, TooManyRate: j.TooManyRate, ResetRate: j.ResetRate,
		LoseResponseRate: j.LoseResponseRate, LoseResponses: j.LoseResponses,
		MaskinportenDown: j.MaskinportenDown, ExchangeDown: j.ExchangeDown,
	}, nil
}

// registerAdmin mounts the admin API.
func (s *Server) registerAdmin(mux *http.ServeMux) {
	mux.HandleFunc("GET "+adminPrefix+"faults", func(w http.ResponseWriter, _ *http.Request) {
		writeAdminJSON(w, toJSON(s.currentFaults()))
	})
	mux.HandleFunc("PUT "+adminPrefix+"faults", func(w http.ResponseWriter, r *http.Request) {
		var j faultsJSON
		dec := json.NewDecoder(io.LimitReader(r.Body, 1<<16))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&j); err != nil {
			http.Error(w, "faults: "+err.Error(), http.StatusBadRequest)
			return
		}
		f, err := j.faults()
		if err != nil {
			http.Error(w, "faults: "+err.Error(), http.StatusBadRequest)
			return
		}
		s.SetFaults(f)
		s.log.Info("faults changed", "faults", toJSON(f))
		writeAdminJSON(w, toJSON(f))
	})
	mux.HandleFunc("PUT "+adminPrefix+"validation-delay", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(io.LimitReader(r.Body, 64))
		d, err := time.ParseDuration(strings.Trim(strings.TrimSpace(string(b)), `"`))
		if err != nil || d < 0 {
			http.Error(w, fmt.Sprintf("validation delay %q is not a duration", b), http.StatusBadRequest)
			return
		}
		s.SetValidationDelay(d)
		fmt.Fprintln(w, d)
	})
	scope := func(grant bool) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			client, sc := r.PathValue("client"), r.PathValue("scope")
			if !s.hasClient(client) {
				http.Error(w, "unknown client "+client, http.StatusNotFound)
				return
			}
			if grant {
				s.GrantScope(client, sc)
			} else {
				s.RevokeScope(client, sc)
			}
			w.WriteHeader(http.StatusNoContent)
		}
	}
	mux.HandleFunc("PUT "+adminPrefix+"clients/{client}/scopes/{scope...}", scope(true))
	mux.HandleFunc("DELETE "+adminPrefix+"clients/{client}/scopes/{scope...}", scope(false))
	mux.HandleFunc("GET "+adminPrefix+"stats", func(w http.ResponseWriter, _ *http.Request) {
		st := s.Stats()
		routes := map[string]int{}
		for _, name := range st.routes() {
			routes[name] = st.Requests(name)
		}
		writeAdminJSON(w, map[string]any{"requests": routes})
	})
}

func (s *Server) hasClient(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.st.clients[id]
	return ok
}

// routes lists the routes with at least one request, sorted.
func (st Stats) routes() []string {
	out := make([]string, 0, len(st.requests))
	for r := range st.requests {
		out = append(out, r)
	}
	sort.Strings(out)
	return out
}

func writeAdminJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}
