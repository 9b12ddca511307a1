package toll

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/failure"
	"github.com/digitoll/digitoll-worker/internal/buftest"
)

// fakeTokens issues "secret-token-<n>", a new n after each Invalidate of
// the current token, and counts calls.
type fakeTokens struct {
	mu          sync.Mutex
	generation  int
	scopes      []string
	invalidated []string
	err         error
}

func (f *fakeTokens) Token(_ context.Context, scope string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.scopes = append(f.scopes, scope)
	if f.err != nil {
		return "", f.err
	}
	return fmt.Sprintf("secret-token-%d", f.generation+1), nil
}

func (f *fakeTokens) Invalidate(scope, token string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.invalidated = append(f.invalidated, scope+" "+token)
	if token == fmt.Sprintf("secret-token-%d", f.generation+1) {
		f.generation++
	}
}

func (f *fakeTokens) invalidations() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.invalidated...)
}

// seen is one request as the fake Toll received it.
type seen struct {
	Method, Path, Auth, ContentType, Accept string
	Body                                    []byte
}

// fakeToll answers the i-th request with replies[i] (the last one
// repeats) and records what it received.
type fakeToll struct {
	mu       sync.Mutex
	requests []seen
}

type reply struct {
	status int
	header map[string]string
	body   string
}

func newFakeToll(t *testing.T, replies ...reply) (*fakeToll, *httptest.Server) {
	t.Helper()
	f := &fakeToll{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		n := len(f.requests)
		f.requests = append(f.requests, seen{
			Method: r.Method, Path: r.URL.Path, Auth: r.Header.Get("Authorization"),
			ContentType: r.Header.Get("Content-Type"), Accept: r.Header.Get("Accept"), Body: body,
		})
		f.mu.Unlock()
		rep := replies[min(n, len(replies)-1)]
		for k, v := range rep.header {
			w.Header().Set(k, v)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(rep.status)
		io.WriteString(w, rep.body)
	}))
	t.Cleanup(srv.Close)
	return f, srv
}

func (f *fakeToll) seen() []seen {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]seen(nil), f.requests...)
}

// newClient returns a client for srv whose log output lands in logs.
func newClient(srv *httptest.Server, tokens Tokens, logs *buftest.Buffer) *Client {
	return &Client{
		BaseURL: srv.URL + "/api/",
		HTTP:    srv.Client(),
		Tokens:  tokens,
		Timeout: 5 * time.Second,
		Logger:  slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
}

func TestDeclareStatusMapping(t *testing.T) {
	const decl = `{"documentIssueDate":"2025-01-15T08:00:00Z"}`
	tests := []struct {
		name     string
		replies  []reply
		requests int
		check    func(t *testing.T, id string, err error, tokens *fakeTokens, got []seen)
	}{
		{
			name:     "202 gives the requestId",
			replies:  []reply{{status: 202, body: `{"requestId":"r-1"}`}},
			requests: 1,
			check: func(t *testing.T, id string, err error, _ *fakeTokens, _ []seen) {
				if err != nil || id != "r-1" {
					t.Fatalf("got %q, %v; want r-1", id, err)
				}
			},
		},
		{
			name:     "400 with validation errors is a rejection",
			replies:  []reply{{status: 400, body: `{"validationErrors":[{"field":"documentIssueDate","error":"invalid ISO-8601 instant in UTC (yyyy-MM-ddTHH:mm:ssZ)"},{"field":"carrier.name","error":"must not be blank"}]}`}},
			requests: 1,
			check: func(t *testing.T, _ string, err error, _ *fakeTokens, _ []seen) {
				var rej *RejectedError
				if !errors.As(err, &rej) {
					t.Fatalf("err = %v, want *RejectedError", err)
				}
				want := []contract.FieldError{
					{Path: "documentIssueDate", Message: "invalid ISO-8601 instant in UTC (yyyy-MM-ddTHH:mm:ssZ)"},
					{Path: "carrier.name", Message: "must not be blank"},
				}
				if rej.Status != 400 || fmt.Sprint(rej.Errors) != fmt.Sprint(want) {
					t.Errorf("rejection = %d %v, want 400 %v", rej.Status, rej.Errors, want)
				}
				for _, s := range []error{failure.ErrTransient, failure.ErrConfig, failure.ErrPermanent, failure.ErrPoison} {
					if errors.Is(err, s) {
						t.Errorf("a rejection must carry no failure class, has %v", s)
					}
				}
			},
		},
		{
			name:     "400 with an unreadable body is a rejection holding the text",
			replies:  []reply{{status: 400, body: "Bad\nRequest: " + strings.Repeat("x", 500)}},
			requests: 1,
			check: func(t *testing.T, _ string, err error, _ *fakeTokens, _ []seen) {
				var rej *RejectedError
				if !errors.As(err, &rej) || len(rej.Errors) != 1 {
					t.Fatalf("err = %v, want *RejectedError with one error", err)
				}
				m := rej.Errors[0].Message
				if !strings.HasPrefix(m, "Bad Request: xxx") || strings.Contains(m, "\n") || len(m) > maxErrorBody+10 {
					t.Errorf("message = %q, want one truncated line", m)
				}
			},
		},
		{
			name:     "401 then 202: one invalidation, a fresh token, success",
			replies:  []reply{{status: 401}, {status: 202, body: `{"requestId":"r-2"}`}},
			requests: 2,
			check: func(t *testing.T, id string, err error, tokens *fakeTokens, got []seen) {
				if err != nil || id != "r-2" {
					t.Fatalf("got %q, %v; want r-2", id, err)
				}
				if inv := tokens.invalidations(); len(inv) != 1 || inv[0] != "toll:movement/road/v2 secret-token-1" {
					t.Errorf("invalidations = %q, want exactly the first token once", inv)
				}
				if got[0].Auth != "Bearer secret-token-1" || got[1].Auth != "Bearer secret-token-2" {
					t.Errorf("authorization = %q then %q, want token 1 then 2", got[0].Auth, got[1].Auth)
				}
				if !bytes.Equal(got[0].Body, got[1].Body) || string(got[1].Body) != decl {
					t.Errorf("bodies %q and %q, want %q twice", got[0].Body, got[1].Body, decl)
				}
			},
		},
		{
			name:     "401 twice is configuration",
			replies:  []reply{{status: 401, body: `{"error":"invalid_token"}`}},
			requests: 2,
			check: func(t *testing.T, _ string, err error, tokens *fakeTokens, _ []seen) {
				if failure.Classify(err) != failure.Config {
					t.Fatalf("class of %v = %v, want config", err, failure.Classify(err))
				}
				if !strings.Contains(err.Error(), "freshly issued token for scope toll:movement/road/v2") {
					t.Errorf("error %q does not explain the refused fresh token", err)
				}
				if n := len(tokens.invalidations()); n != 1 {
					t.Errorf("%d invalidations, want 1", n)
				}
			},
		},
		{
			name:     "403 is configuration",
			replies:  []reply{{status: 403, body: `{"message":"Forbidden"}`}},
			requests: 1,
			check: func(t *testing.T, _ string, err error, _ *fakeTokens, _ []seen) {
				var he *HTTPError
				if failure.Classify(err) != failure.Config || !errors.As(err, &he) || he.StatusCode != 403 {
					t.Fatalf("err = %v (%v), want config *HTTPError 403", err, failure.Classify(err))
				}
			},
		},
		{
			name:     "429 is transient and carries Retry-After",
			replies:  []reply{{status: 429, header: map[string]string{"Retry-After": "7"}}},
			requests: 1,
			check: func(t *testing.T, _ string, err error, _ *fakeTokens, _ []seen) {
				if failure.Classify(err) != failure.Transient {
					t.Fatalf("class of %v = %v, want transient", err, failure.Classify(err))
				}
				if d, ok := failure.RetryAfter(err); !ok || d != 7*time.Second {
					t.Errorf("RetryAfter = %v %v, want 7s", d, ok)
				}
			},
		},
		{
			name:     "503 with an HTTP-date Retry-After",
			replies:  []reply{{status: 503, header: map[string]string{"Retry-After": time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)}}},
			requests: 1,
			check: func(t *testing.T, _ string, err error, _ *fakeTokens, _ []seen) {
				d, ok := failure.RetryAfter(err)
				if failure.Classify(err) != failure.Transient || !ok || d < 50*time.Minute || d > time.Hour {
					t.Errorf("err = %v, RetryAfter = %v; want transient, about an hour", err, d)
				}
			},
		},
		{
			name:     "500 is transient",
			replies:  []reply{{status: 500, body: "<html>\n<body>oops</body></html>"}},
			requests: 1,
			check: func(t *testing.T, _ string, err error, _ *fakeTokens, _ []seen) {
				if failure.Classify(err) != failure.Transient {
					t.Fatalf("class of %v = %v, want transient", err, failure.Classify(err))
				}
				if _, ok := failure.RetryAfter(err); ok {
					t.Errorf("RetryAfter set without a header")
				}
				if !strings.Contains(err.Error(), "<html> <body>oops</body></html>") {
					t.Errorf("error %q lacks the body on one line", err)
				}
			},
		},
		{
			name:     "418 is permanent",
			replies:  []reply{{status: 418}},
			requests: 1,
			check: func(t *testing.T, _ string, err error, _ *fakeTokens, _ []seen) {
				if failure.Classify(err) != failure.Permanent {
					t.Fatalf("class of %v = %v, want permanent", err, failure.Classify(err))
				}
			},
		},
		{
			name:     "202 without a requestId is permanent",
			replies:  []reply{{status: 202, body: `{}`}},
			requests: 1,
			check: func(t *testing.T, _ string, err error, _ *fakeTokens, _ []seen) {
				if failure.Classify(err) != failure.Permanent || !strings.Contains(err.Error(), "no requestId") {
					t.Fatalf("err = %v (%v), want permanent about the missing requestId", err, failure.Classify(err))
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake, srv := newFakeToll(t, tt.replies...)
			tokens := &fakeTokens{}
			var logs buftest.Buffer
			c := newClient(srv, tokens, &logs)
			id, err := c.Declare(t.Context(), RoadV2(), contract.OpCreate, contract.LevelHouseConsignment, "", []byte(decl))
			got := fake.seen()
			if len(got) != tt.requests {
				t.Errorf("%d requests, want %d", len(got), tt.requests)
			}
			for _, r := range got {
				if r.Method != http.MethodPost || r.Path != "/api/movement/road/v2/house-consignment" {
					t.Errorf("request %s %s, want POST /api/movement/road/v2/house-consignment", r.Method, r.Path)
				}
				if r.ContentType != "application/json" || r.Accept != "application/json" {
					t.Errorf("content-type %q accept %q, want JSON", r.ContentType, r.Accept)
				}
			}
			if err != nil && strings.Contains(err.Error(), "secret-token") {
				t.Errorf("error leaks the token: %v", err)
			}
			if strings.Contains(logs.String(), "secret-token") {
				t.Errorf("log leaks the token: %s", logs.String())
			}
			tt.check(t, id, err, tokens, got)
		})
	}
}

func TestDeclareOperations(t *testing.T) {
	issueDate := regexp.MustCompile(`^\{"documentIssueDate":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"\}$`)
	tests := []struct {
		name       string
		api        API
		foreign    bool
		op         contract.Operation
		level      contract.Level
		mrn        string
		body       string
		wantMethod string
		wantPath   string
		wantScope  string
		checkBody  func(b []byte) bool
	}{
		{"road create", RoadV2(), false, contract.OpCreate, contract.LevelTransport, "", `{"a":1}`,
			"POST", "/api/movement/road/v2/transport", "toll:movement/road/v2", func(b []byte) bool { return string(b) == `{"a":1}` }},
		{"road update", RoadV2(), false, contract.OpUpdate, contract.LevelMasterConsignment, "25NO4TU2HUD59UCBT8", `{"b":2}`,
			"PUT", "/api/movement/road/v2/master-consignment/25NO4TU2HUD59UCBT8", "toll:movement/road/v2", func(b []byte) bool { return string(b) == `{"b":2}` }},
		{"road delete without body sends the issue date", RoadV2(), false, contract.OpDelete, contract.LevelHouseConsignment, "25NO4TU2HUD59UCBT8", "",
			"DELETE", "/api/movement/road/v2/house-consignment/25NO4TU2HUD59UCBT8", "toll:movement/road/v2", issueDate.Match},
		{"air delete with body, foreign", AirV1(), true, contract.OpDelete, contract.LevelTransport, "25NO4TU2HUD59UCBT8", `{"c":3}`,
			"DELETE", "/api/movement/air/v1/transport/25NO4TU2HUD59UCBT8", "toll:eu/movement/air", func(b []byte) bool { return string(b) == `{"c":3}` }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake, srv := newFakeToll(t, reply{status: 202, body: `{"requestId":"r"}`})
			tokens := &fakeTokens{}
			var logs buftest.Buffer
			c := newClient(srv, tokens, &logs)
			c.Foreign = tt.foreign
			var body []byte
			if tt.body != "" {
				body = []byte(tt.body)
			}
			if _, err := c.Declare(t.Context(), tt.api, tt.op, tt.level, tt.mrn, body); err != nil {
				t.Fatal(err)
			}
			got := fake.seen()
			if len(got) != 1 {
				t.Fatalf("%d requests, want 1", len(got))
			}
			if got[0].Method != tt.wantMethod || got[0].Path != tt.wantPath {
				t.Errorf("request %s %s, want %s %s", got[0].Method, got[0].Path, tt.wantMethod, tt.wantPath)
			}
			if !tt.checkBody(got[0].Body) {
				t.Errorf("body %q unexpected", got[0].Body)
			}
			if tokens.scopes[0] != tt.wantScope {
				t.Errorf("scope %q, want %q", tokens.scopes[0], tt.wantScope)
			}
		})
	}
}

func TestDeclareNeedsMRN(t *testing.T) {
	fake, srv := newFakeToll(t, reply{status: 202, body: `{"requestId":"r"}`})
	c := newClient(srv, &fakeTokens{}, &buftest.Buffer{})
	_, err := c.Declare(t.Context(), RoadV2(), contract.OpUpdate, contract.LevelTransport, "", []byte(`{}`))
	if failure.Classify(err) != failure.Permanent {
		t.Errorf("err = %v, want permanent", err)
	}
	if n := len(fake.seen()); n != 0 {
		t.Errorf("%d requests sent, want none", n)
	}
}

func TestTokenErrorKeepsItsClass(t *testing.T) {
	fake, srv := newFakeToll(t, reply{status: 202, body: `{"requestId":"r"}`})
	tokenErr := fmt.Errorf("maskinporten: invalid_scope: %w", failure.ErrConfig)
	c := newClient(srv, &fakeTokens{err: tokenErr}, &buftest.Buffer{})
	_, err := c.Declare(t.Context(), RoadV2(), contract.OpCreate, contract.LevelTransport, "", []byte(`{}`))
	if !errors.Is(err, tokenErr) || failure.Classify(err) != failure.Config {
		t.Errorf("err = %v, want the token error, config", err)
	}
	if n := len(fake.seen()); n != 0 {
		t.Errorf("%d requests sent, want none", n)
	}
}

func TestValidationStatus(t *testing.T) {
	tests := []struct {
		name  string
		reply reply
		check func(t *testing.T, v Validation, err error)
	}{
		{"404 is not ready", reply{status: 404}, func(t *testing.T, _ Validation, err error) {
			if !errors.Is(err, ErrNotReady) {
				t.Errorf("err = %v, want ErrNotReady", err)
			}
		}},
		{"success with mixed incomplete documentation", reply{status: 200, body: `{"status":"SUCCESS","requestId":"r-9","mrn":"25NO4TU2HUD59UCBT8","notificationDate":"2025-01-15T08:00:03Z",
			"incompleteDocumentationReasonList":["missing house consignment",{"code":"MISSING_MASTER","description":"no master consignment yet"},{"x":1}]}`},
			func(t *testing.T, v Validation, err error) {
				if err != nil {
					t.Fatal(err)
				}
				want := Validation{Status: ValidationSuccess, RequestID: "r-9", MRN: "25NO4TU2HUD59UCBT8", NotificationDate: "2025-01-15T08:00:03Z",
					IncompleteDocumentation: []string{"missing house consignment", "MISSING_MASTER: no master consignment yet", `{"x":1}`}}
				if fmt.Sprint(v) != fmt.Sprint(want) {
					t.Errorf("got %+v\nwant %+v", v, want)
				}
			}},
		{"failure with 202", reply{status: 202, body: `{"status":"FAILURE","requestId":"r-9","validationErrorList":[
			{"description":"Transport document HWB-1 is already in use","pointer":{"messageElementPath":"consignmentHouseLevel.transportDocumentHouseLevel.documentNumber"}},
			{"pointer":{"messageElementPath":"x"},"code":"E1"}]}`},
			func(t *testing.T, v Validation, err error) {
				if err != nil {
					t.Fatal(err)
				}
				if v.Status != ValidationFailure || len(v.Errors) != 2 {
					t.Fatalf("got %+v, want FAILURE with two errors", v)
				}
				if v.Errors[0] != (contract.FieldError{Path: "consignmentHouseLevel.transportDocumentHouseLevel.documentNumber", Message: "Transport document HWB-1 is already in use"}) {
					t.Errorf("first error %+v", v.Errors[0])
				}
				if v.Errors[1].Path != "x" || !strings.Contains(v.Errors[1].Message, `"code":"E1"`) {
					t.Errorf("second error %+v, want its JSON as message", v.Errors[1])
				}
			}},
		{"missing requestId is filled in", reply{status: 200, body: `{"status":"SUCCESS","mrn":"25NO4TU2HUD59UCBT8"}`},
			func(t *testing.T, v Validation, err error) {
				if err != nil || v.RequestID != "req-1" {
					t.Errorf("got %+v, %v; want requestId req-1", v, err)
				}
			}},
		{"unknown status is transient", reply{status: 200, body: `{"status":"PENDING"}`}, func(t *testing.T, _ Validation, err error) {
			if failure.Classify(err) != failure.Transient || errors.Is(err, ErrNotReady) {
				t.Errorf("err = %v, want transient", err)
			}
		}},
		{"unreadable body is transient", reply{status: 200, body: `<html>`}, func(t *testing.T, _ Validation, err error) {
			if err == nil || failure.Classify(err) != failure.Transient {
				t.Errorf("err = %v, want transient", err)
			}
		}},
		{"403 is configuration", reply{status: 403}, func(t *testing.T, _ Validation, err error) {
			if failure.Classify(err) != failure.Config {
				t.Errorf("err = %v, want config", err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake, srv := newFakeToll(t, tt.reply)
			c := newClient(srv, &fakeTokens{}, &buftest.Buffer{})
			v, err := c.ValidationStatus(t.Context(), RoadV2(), contract.LevelHouseConsignment, "req-1")
			got := fake.seen()
			if len(got) != 1 || got[0].Method != "GET" || got[0].Path != "/api/movement/road/status/v2/house-consignment/validation-status/req-1" {
				t.Errorf("requests %+v, want one GET of the validation status", got)
			}
			tt.check(t, v, err)
		})
	}
}

func TestTestAuth(t *testing.T) {
	fake, srv := newFakeToll(t, reply{status: 200, body: "OK"})
	c := newClient(srv, &fakeTokens{}, &buftest.Buffer{})
	if err := c.TestAuth(t.Context(), AirV1()); err != nil {
		t.Fatal(err)
	}
	if got := fake.seen(); len(got) != 1 || got[0].Path != "/api/movement/air/v1/test-auth" || got[0].Auth != "Bearer secret-token-1" {
		t.Errorf("requests %+v, want GET /api/movement/air/v1/test-auth with the token", got)
	}
}

// TestNetworkErrors tells a request that never left (safe to repeat) from
// one Toll received but did not answer (ambiguous).
func TestNetworkErrors(t *testing.T) {
	hijack := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body)
		conn, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		conn.Close()
	}))
	t.Cleanup(hijack.Close)

	release := make(chan struct{})
	silent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body)
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(silent.Close)
	t.Cleanup(func() { close(release) })

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "http://" + ln.Addr().String()
	ln.Close()

	tests := []struct {
		name      string
		baseURL   string
		timeout   time.Duration
		ambiguous bool
	}{
		{"connection closed after the request was read", hijack.URL, 5 * time.Second, true},
		{"no answer before the timeout", silent.URL, 200 * time.Millisecond, true},
		{"connection refused", refused, 5 * time.Second, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &Client{BaseURL: tt.baseURL, HTTP: &http.Client{}, Tokens: &fakeTokens{}, Timeout: tt.timeout}
			_, err := c.Declare(t.Context(), RoadV2(), contract.OpCreate, contract.LevelTransport, "", []byte(`{"a":1}`))
			if failure.Classify(err) != failure.Transient || !errors.Is(err, failure.ErrTransient) {
				t.Errorf("err = %v, want marked transient", err)
			}
			if got := errors.Is(err, ErrAmbiguous); got != tt.ambiguous {
				t.Errorf("ambiguous = %v, want %v (err %v)", got, tt.ambiguous, err)
			}
			var ne *NetworkError
			if !errors.As(err, &ne) || ne.Written != tt.ambiguous {
				t.Errorf("err = %#v, want *NetworkError with Written %v", err, tt.ambiguous)
			}
			if strings.Contains(err.Error(), "secret-token") {
				t.Errorf("error leaks the token: %v", err)
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2025, 1, 15, 8, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"3", 3 * time.Second},
		{" 10 ", 10 * time.Second},
		{"-1", 0},
		{"0", 0},
		{"99999999999999", 86400 * time.Second},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
		{"soon", 0},
	}
	for _, tt := range tests {
		if got := parseRetryAfter(tt.in, now); got != tt.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestScope(t *testing.T) {
	if got := Scope(false, RoadV2().ScopeBase); got != "toll:movement/road/v2" {
		t.Errorf("road scope %q", got)
	}
	if got := Scope(true, AirV1().ScopeBase); got != "toll:eu/movement/air" {
		t.Errorf("foreign air scope %q", got)
	}
}

// The rejection's JSON shape is what the result carries.
func TestRejectedErrorText(t *testing.T) {
	e := &RejectedError{Status: 400, Errors: []contract.FieldError{{Path: "a", Message: "must not be null"}, {Message: "bad"}}}
	if got, want := e.Error(), "toll rejected the declaration (HTTP 400): a: must not be null; bad"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if _, err := json.Marshal(e.Errors); err != nil {
		t.Fatal(err)
	}
}

// Toll's answer to a declaration is read as json.Unmarshal reads it,
// whether or not it takes the short way.
func TestRequestIDAnswer(t *testing.T) {
	for _, body := range []string{
		`{"requestId":"1bdf0f33-f42e-48e2-b334-3944722e3fe5"}`,
		" {\"requestId\":\"abc\"}\n",
		`{"requestId":"a\"b"}`,
		`{"requestId":"a\u0062"}`,
		`{"requestId":"æ"}`,
		`{"requestId":""}`,
		`{"requestId": "spaced"}`,
		`{"requestId":"x","status":"ok"}`,
		`{"requestid":"case"}`,
		`{"requestId":5}`,
		`{}`, `null`, `not json`, ``,
	} {
		var want struct {
			RequestID string `json:"requestId"`
		}
		wantErr := json.Unmarshal([]byte(body), &want)
		got, err := requestIDAnswer([]byte(body))
		if got != want.RequestID || (err == nil) != (wantErr == nil) {
			t.Errorf("requestIDAnswer(%q) = %q, %v; want %q, %v", body, got, err, want.RequestID, wantErr)
		}
	}
}
