// Package health serves what operators and orchestrators ask a running worker:
// liveness (/healthz) and readiness (/readyz). Readiness is the worker's
// own judgement: connected to NATS, the streams present, and no kind or
// routing feed paused by a configuration fault or an outage. A probe that
// fails says why in its body, one line per reason.
package health

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"
)

// CheckTimeout bounds each readiness check.
const CheckTimeout = time.Second

// Check is one readiness condition: nil when it holds, else an error whose
// text tells the operator what is wrong.
type Check func(ctx context.Context) error

// NamedCheck is a Check with the name it is reported under.
type NamedCheck struct {
	Name  string
	Check Check
}

// Profiles returns the routes of Go's runtime profiles under
// /debug/pprof/, to mount with Handler's extra handlers. They are opt-in:
// a profile shows the process's internals (command line, stacks) and a CPU
// profile or trace costs CPU while it runs.
func Profiles() map[string]http.Handler {
	return map[string]http.Handler{
		// The index also serves the named profiles: heap, goroutine,
		// allocs, block, mutex, threadcreate.
		"GET /debug/pprof/":        http.HandlerFunc(pprof.Index),
		"GET /debug/pprof/cmdline": http.HandlerFunc(pprof.Cmdline),
		"GET /debug/pprof/profile": http.HandlerFunc(pprof.Profile),
		"GET /debug/pprof/symbol":  http.HandlerFunc(pprof.Symbol),
		"POST /debug/pprof/symbol": http.HandlerFunc(pprof.Symbol),
		"GET /debug/pprof/trace":   http.HandlerFunc(pprof.Trace),
	}
}

// Handler returns the HTTP handler for /healthz and /readyz. extra
// handlers (e.g. /metrics) are mounted beside them.
func Handler(checks []NamedCheck, extra map[string]http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		// Each check gets a second: an orchestrator's probe times out
		// after about that long, and a check that hangs (NATS away) must
		// turn into "not ready", not into no answer.
		var failed []string
		for _, c := range checks {
			ctx, cancel := context.WithTimeout(r.Context(), CheckTimeout)
			err := c.Check(ctx)
			cancel()
			if err != nil {
				failed = append(failed, c.Name+": "+oneLine(err.Error()))
			}
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if len(failed) > 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, "not ready")
			for _, f := range failed {
				fmt.Fprintln(w, f)
			}
			return
		}
		fmt.Fprintln(w, "ready")
	})
	for path, h := range extra {
		mux.Handle(path, h)
	}
	return mux
}

// Server is the operations HTTP server.
type Server struct {
	srv  *http.Server
	ln   net.Listener
	done chan error
}

// Listen starts serving h on addr (host:port; port 0 picks one).
func Listen(addr string, h http.Handler, logger *slog.Logger) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("health: listen on %s: %w", addr, err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		srv: &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 5 * time.Second,
			ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		},
		ln:   ln,
		done: make(chan error, 1),
	}
	go func() { s.done <- s.srv.Serve(ln) }()
	return s, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Shutdown stops the server gracefully within ctx and waits for it.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if serr := <-s.done; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
