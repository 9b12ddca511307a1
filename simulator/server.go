package simulator

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// Defaults applied by Start to zero Config fields.
const (
	// DefaultTollTokenLifetime is the expires_in of exchanged Toll tokens,
	// the value the real exchange answers with.
	DefaultTollTokenLifetime = 970 * time.Second
	// DefaultMaskinportenTokenLifetime is the expires_in of Maskinporten
	// access tokens.
	DefaultMaskinportenTokenLifetime = 120 * time.Second
)

// Routes of the token endpoints, as counted by Stats.Requests. Movement
// routes are named the same way: method, a space and the path pattern,
// e.g. "POST /toll/api/movement/road/v2/house-consignment".
const (
	RouteMaskinportenToken    = "POST /maskinporten/token"
	RouteMaskinportenMetadata = "GET /maskinporten/.well-known/oauth-authorization-server"
	RouteTokenExchange        = "POST /toll/api/access/external/oauth/token"
)

// Config configures a Server. The zero value is a working simulator
// without clients.
type Config struct {
	// ValidationDelay is how long Toll's asynchronous validation of a
	// declaration takes: validation-status answers 404 until it has
	// passed. Zero means ready at once; the write still answers 202 and
	// the client must still poll, as with the real service.
	ValidationDelay time.Duration
	// TollTokenLifetime is the expires_in of exchanged Toll tokens;
	// zero means DefaultTollTokenLifetime.
	TollTokenLifetime time.Duration
	// MaskinportenTokenLifetime is the expires_in of Maskinporten
	// access tokens; zero means DefaultMaskinportenTokenLifetime.
	MaskinportenTokenLifetime time.Duration
	// Clients are the integrations Maskinporten knows at start.
	Clients []Client
	// Now is the simulator's clock (grant times, token expiry,
	// validation readiness); nil means time.Now.
	Now func() time.Time
	// Logger receives one debug line per request; nil discards.
	Logger *slog.Logger
	// BaseURL, if set, is the externally visible base URL (scheme, host,
	// port, no trailing slash) used by URL, Issuer, TokenURL and
	// TollBaseURL instead of the listener's address: for a simulator
	// reached through a proxy or container port mapping. The required
	// grant `aud` follows it.
	BaseURL string
	// RoutingPageSize is the most signals one routing feed answer holds;
	// zero means DefaultRoutingPageSize (Toll's 1000).
	RoutingPageSize int
}

// Client is an integration registered at Maskinporten.
type Client struct {
	// ID is the integration id: the client_id and the grant's `iss`.
	ID string
	// KeyID is the `kid` of the key registered on the integration, for
	// grants that name their key.
	KeyID string
	// PublicKey verifies grants that carry KeyID as `kid`.
	PublicKey *rsa.PublicKey
	// MoreKeys are further keys registered on the integration besides
	// KeyID's: Maskinporten keeps several at once so that a customer can
	// rotate its key, and a grant naming any of them verifies with it.
	MoreKeys []RegisteredKey
	// Certificate is the business certificate for grants that carry
	// `x5c`: the leaf certificate in x5c must equal it (it is pinned) and
	// its key verifies the grant. Nil means x5c grants are refused.
	Certificate *x509.Certificate
	// Scopes are the scopes granted to the integration, e.g.
	// "toll:movement/road/v2".
	Scopes []string
}

// RegisteredKey is a public key registered on an integration under a kid.
type RegisteredKey struct {
	// KeyID is the kid grants name the key by.
	KeyID string
	// PublicKey verifies those grants.
	PublicKey *rsa.PublicKey
}

func (c Client) clone() Client {
	c.Scopes = slices.Clone(c.Scopes)
	c.MoreKeys = slices.Clone(c.MoreKeys)
	return c
}

// key returns the public key registered under kid, or nil.
func (c Client) key(kid string) *rsa.PublicKey {
	if kid == "" {
		return nil
	}
	if kid == c.KeyID {
		return c.PublicKey
	}
	for _, k := range c.MoreKeys {
		if k.KeyID == kid {
			return k.PublicKey
		}
	}
	return nil
}

// Faults are injected into the simulator at run time to test how clients
// cope with an unreliable outside world. The zero value injects nothing.
type Faults struct {
	// Latency is added to every Toll API call (not to the token
	// endpoints). The wait ends early when the request's context ends.
	Latency time.Duration
	// ErrorRate is the fraction of Toll API calls answered 503 before
	// they are authenticated or processed.
	ErrorRate float64
	// TooManyRate is the fraction of Toll API calls answered 429 with
	// Retry-After: 1, before they are authenticated or processed.
	TooManyRate float64
	// ResetRate is the fraction of Toll API calls whose connection is
	// dropped before they are authenticated or processed: the client
	// gets no answer, and nothing happened. ErrorRate, TooManyRate and
	// ResetRate share one draw, so together they are fractions of all
	// calls.
	ResetRate float64
	// LoseResponseRate is the fraction of authorized Toll API writes
	// (POST, PUT, DELETE, including entry presentations) that are
	// processed in full and then get no answer: the connection is
	// dropped instead, so the client cannot tell whether Toll acted.
	LoseResponseRate float64
	// LoseResponses is how many of the next authorized Toll API writes
	// lose their answer as with LoseResponseRate, whatever the rate; it
	// counts down as they do. Tests use it to lose exactly one answer.
	LoseResponses int
	// AnswerDelay holds the answer of every authorized Toll API write
	// (POST, PUT, DELETE) for this long after the write was processed:
	// Toll has acted and the client has not heard yet. A client that dies
	// meanwhile never hears, which is how tests make a worker die during
	// its Toll call.
	AnswerDelay time.Duration
	// MaskinportenDown makes the Maskinporten token endpoint answer 503.
	MaskinportenDown bool
	// ExchangeDown makes the Toll token exchange answer 503.
	ExchangeDown bool
}

// Server is a running simulator of Maskinporten and Toll. All methods are
// safe for concurrent use.
type Server struct {
	now          func() time.Time
	log          *slog.Logger
	url          string
	mpLifetime   time.Duration
	tollLifetime time.Duration
	handler      http.Handler

	httpSrv   *http.Server
	cancel    context.CancelFunc
	served    chan struct{}
	serveErr  error
	closeOnce sync.Once
	closeErr  error

	mu sync.Mutex
	st state
	// documents are the uploads the document API accepted, in order.
	documents []Document
}

// Start listens on addr ("127.0.0.1:0" picks a free port; "" means that)
// and serves the simulator in a goroutine that Close stops.
func Start(cfg Config, addr string) (*Server, error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	for _, c := range cfg.Clients {
		if c.ID == "" {
			return nil, errors.New("simulator: client without ID")
		}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("simulator: listen: %w", err)
	}
	s := &Server{
		now:          cfg.Now,
		log:          cfg.Logger,
		url:          strings.TrimSuffix(cfg.BaseURL, "/"),
		mpLifetime:   cfg.MaskinportenTokenLifetime,
		tollLifetime: cfg.TollTokenLifetime,
		served:       make(chan struct{}),
		st:           newState(cfg.ValidationDelay),
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.mpLifetime <= 0 {
		s.mpLifetime = DefaultMaskinportenTokenLifetime
	}
	if s.tollLifetime <= 0 {
		s.tollLifetime = DefaultTollTokenLifetime
	}
	if s.url == "" {
		s.url = "http://" + reachableAddr(ln.Addr())
	}
	for _, c := range cfg.Clients {
		s.st.clients[c.ID] = c.clone()
	}
	s.st.routing.pageSize = cfg.RoutingPageSize
	s.handler = s.logRequests(s.routes())

	// Request contexts derive from ctx, so that Close ends handlers that
	// wait (injected latency) instead of waiting for them.
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.httpSrv = &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	go func() {
		defer close(s.served)
		if err := s.httpSrv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			s.serveErr = fmt.Errorf("simulator: serve: %w", err)
		}
	}()
	return s, nil
}

// reachableAddr turns a listener address into one a client can dial: an
// unspecified host (":8080", "0.0.0.0:8080") becomes 127.0.0.1.
func reachableAddr(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// shutdownTimeout bounds how long Close waits for in-flight requests
// before it cuts their connections.
const shutdownTimeout = time.Second

// Close stops the listener, ends in-flight requests and waits for the
// serve goroutine. Calling it again returns the first result.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.cancel()
		ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		var err error
		if shutErr := s.httpSrv.Shutdown(ctx); shutErr != nil {
			// Request contexts are cancelled already, so what is left
			// is connections that never sent a request: net/http counts
			// a new connection as busy for 5 s. Closing them loses
			// nothing; only a failure to close is worth reporting.
			if cerr := s.httpSrv.Close(); cerr != nil {
				err = fmt.Errorf("simulator: shutdown: %w", errors.Join(shutErr, cerr))
			}
		}
		<-s.served
		s.closeErr = errors.Join(err, s.serveErr)
	})
	return s.closeErr
}

// URL is the simulator's base URL, e.g. http://127.0.0.1:41234.
func (s *Server) URL() string { return s.url }

// Issuer is the Maskinporten issuer, with its trailing slash; grants must
// carry it as `aud`.
func (s *Server) Issuer() string { return s.url + "/maskinporten/" }

// TokenURL is the Maskinporten token endpoint.
func (s *Server) TokenURL() string { return s.url + "/maskinporten/token" }

// TollBaseURL is the Toll API base URL, the simulator's counterpart of
// https://api.toll.no/api.
func (s *Server) TollBaseURL() string { return s.url + "/toll/api" }

// Handler is the simulator's HTTP handler, for embedding it in another
// server. Grants must still carry Issuer as `aud`, so set Config.BaseURL
// to where the embedding server serves it.
func (s *Server) Handler() http.Handler { return s.handler }

// AddClient registers an integration, replacing one with the same ID.
func (s *Server) AddClient(c Client) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st.clients[c.ID] = c.clone()
}

// GrantScope adds scope to a registered integration; unknown clients are
// ignored.
func (s *Server) GrantScope(clientID, scope string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.st.clients[clientID]
	if !ok || slices.Contains(c.Scopes, scope) {
		return
	}
	c.Scopes = append(c.Scopes, scope)
	s.st.clients[clientID] = c
}

// RevokeScope removes scope from a registered integration. Like the real
// services, tokens already issued for it stay valid until they expire;
// only new grants are refused.
func (s *Server) RevokeScope(clientID, scope string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.st.clients[clientID]
	if !ok {
		return
	}
	c.Scopes = slices.DeleteFunc(c.Scopes, func(have string) bool { return have == scope })
	s.st.clients[clientID] = c
}

// SetValidationDelay changes the validation time of declarations written
// from now on.
func (s *Server) SetValidationDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st.validationDelay = d
}

// SetFaults replaces the injected faults.
func (s *Server) SetFaults(f Faults) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st.faults = f
}

func (s *Server) currentFaults() Faults {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st.faults
}

// routes registers every endpoint on a plain ServeMux.
func (s *Server) routes() *http.ServeMux {
	mux := http.NewServeMux()
	s.handle(mux, RouteMaskinportenMetadata, s.serveMetadata)
	s.handle(mux, RouteMaskinportenToken, s.serveMaskinportenToken)
	s.handle(mux, RouteTokenExchange, s.serveTokenExchange)
	for _, api := range movementAPIs() {
		s.registerMovement(mux, api)
	}
	s.registerDocuments(mux)
	s.registerEntry(mux)
	s.registerRouting(mux)
	s.registerAdmin(mux)
	return mux
}

// handle registers h under pattern, counting requests by pattern.
func (s *Server) handle(mux *http.ServeMux, pattern string, h http.HandlerFunc) {
	mux.HandleFunc(pattern, s.route(pattern, h))
}

// route wraps h so that it counts as route name in Stats and logs.
func (s *Server) route(name string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.st.requestCounts[name]++
		s.mu.Unlock()
		if info, ok := r.Context().Value(requestInfoKey{}).(*requestInfo); ok {
			info.route = name
		}
		h(w, r)
	}
}

type requestInfoKey struct{}

// requestInfo carries what handlers learn about a request back to the
// log line written after them.
type requestInfo struct {
	route  string
	client string
	note   string // why a request was refused; never a secret
}

func setRequestClient(r *http.Request, clientID string) {
	if info, ok := r.Context().Value(requestInfoKey{}).(*requestInfo); ok {
		info.client = clientID
	}
}

func setRequestNote(r *http.Request, note string) {
	if info, ok := r.Context().Value(requestInfoKey{}).(*requestInfo); ok {
		info.note = note
	}
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// logRequests writes one debug line per request. It logs the path but
// never the query, headers or body, where grants and tokens travel.
func (s *Server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		info := &requestInfo{}
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		// Deferred, so that a handler aborted with http.ErrAbortHandler
		// is logged too.
		defer func() {
			s.log.LogAttrs(r.Context(), slog.LevelDebug, "simulator request",
				slog.String("method", r.Method),
				slog.String("path", r.URL.Path),
				slog.String("route", info.route),
				slog.String("client", info.client),
				slog.Int("status", rec.status),
				slog.String("note", info.note),
				slog.Duration("duration", time.Since(start)))
		}()
		next.ServeHTTP(rec, r.WithContext(context.WithValue(r.Context(), requestInfoKey{}, info)))
	})
}

// injectFaults applies the configured faults to a Toll API call. It
// reports whether the call may go on; if not, it has answered or dropped
// the connection. A call whose context ends during the injected latency
// is aborted.
func (s *Server) injectFaults(w http.ResponseWriter, r *http.Request) bool {
	f := s.currentFaults()
	if f.Latency > 0 {
		t := time.NewTimer(f.Latency)
		select {
		case <-t.C:
		case <-r.Context().Done():
			// The client is gone or the simulator is closing: cut the
			// connection rather than send an answer nobody asked for.
			t.Stop()
			setRequestNote(r, "aborted during injected latency")
			panic(http.ErrAbortHandler)
		}
	}
	if f.ErrorRate <= 0 && f.TooManyRate <= 0 && f.ResetRate <= 0 {
		return true
	}
	// One draw decides all three, so the rates are fractions of all calls.
	switch x := rand.Float64(); {
	case x < f.ErrorRate:
		writeProblem(w, http.StatusServiceUnavailable, "simulated fault: service unavailable")
		return false
	case x < f.ErrorRate+f.TooManyRate:
		w.Header().Set("Retry-After", "1")
		writeProblem(w, http.StatusTooManyRequests, "simulated fault: too many requests")
		return false
	case x < f.ErrorRate+f.TooManyRate+f.ResetRate:
		dropConnection(w, r, "simulated fault: connection reset before processing")
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	// The client may be gone; there is no one to tell.
	_ = json.NewEncoder(w).Encode(v)
}

// problem is the error body of Toll API answers other than validation
// errors, shaped like the Spring Boot error the real API sends.
type problem struct {
	Status  int    `json:"status"`
	Error   string `json:"error"`
	Message string `json:"message"`
}

func writeProblem(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, problem{Status: status, Error: http.StatusText(status), Message: msg})
}
