package telemetry

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/digitoll/digitoll-worker/internal/promtest"
)

func TestEndpoint(t *testing.T) {
	for path, want := range map[string]string{
		"":  "/",
		"/": "/",
		"/toll/api/movement/road/v2/house-consignment":                                                          "/toll/api/movement/road/v2/house-consignment",
		"/api/movement/road/v2/transport/26NOOPXMJZBSVRBOBI":                                                    "/api/movement/road/v2/transport/{id}",
		"/api/movement/road/status/v2/house-consignment/validation-status/1bdf0f33-f42e-48e2-b334-3944722e3fe5": "/api/movement/road/status/v2/house-consignment/validation-status/{id}",
		"/api/goodsdeclaration/document/v2/declaration-id/123456789-15012025-1/document":                        "/api/goodsdeclaration/document/v2/declaration-id/{id}/document",
		"/api/movement/presentation/v1/entry-summary-declaration":                                               "/api/movement/presentation/v1/entry-summary-declaration",
		"/api/access/external/oauth/token":                                                                      "/api/access/external/oauth/token",
		"/token":                                                                                                "/token",
		"/api/movement/routing/v1/transport":                                                                    "/api/movement/routing/v1/transport",
		"/a/-leading/trailing-/UPPER/v123/v/x_y/":                                                               "/a/{id}/{id}/{id}/{id}/v/{id}",
		"/" + strings.Repeat("a", maxSegmentLen+1):                                                              "/{id}",
		strings.Repeat("/seg", maxSegments+5):                                                                   strings.Repeat("/seg", maxSegments) + "/…",
		"/api/movement/air/status/v1/entry/status/X":                                                            "/api/movement/air/status/v1/entry/status/{id}",
	} {
		if got := Endpoint(path); got != want {
			t.Errorf("Endpoint(%q) = %q, want %q", path, got, want)
		}
	}
}

// Every exchange is measured by endpoint template and status code; spans
// are made under a recording span only, named by method and template,
// with a server failure and a transport failure marked as errors.
func TestTransportMeasuresAndTraces(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.Contains(r.URL.Path, "validation-status"):
			w.WriteHeader(http.StatusNotFound)
		case strings.HasSuffix(r.URL.Path, "/boom"):
			w.WriteHeader(http.StatusBadGateway)
		default:
			w.WriteHeader(http.StatusAccepted)
		}
	}))
	t.Cleanup(srv.Close)
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()

	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	m := NewMetrics()
	hc := &http.Client{Transport: Transport(nil, m)}

	call := func(ctx context.Context, method, url string) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, method, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer not-for-metrics")
		resp, err := hc.Do(req)
		if err == nil {
			resp.Body.Close()
		}
	}
	// Untraced: measured, no span.
	call(t.Context(), http.MethodPost, srv.URL+"/api/movement/road/v2/house-consignment")
	if n := len(exp.GetSpans()); n != 0 {
		t.Fatalf("%d spans without a span in the context", n)
	}
	ctx, parent := tp.Tracer("test").Start(t.Context(), "process road")
	for _, id := range []string{"1bdf0f33-f42e-48e2-b334-3944722e3fe5", "2cdf0f33-f42e-48e2-b334-3944722e3fe5"} {
		call(ctx, http.MethodGet, srv.URL+"/api/movement/road/status/v2/house-consignment/validation-status/"+id)
	}
	call(ctx, http.MethodGet, srv.URL+"/api/boom")
	call(ctx, http.MethodGet, dead.URL+"/token")
	parent.End()

	ms := httptest.NewServer(m.Handler())
	t.Cleanup(ms.Close)
	metrics, text := promtest.Scrape(t, ms.URL)
	const name = "digitoll_http_request_duration_seconds_count"
	for _, c := range []struct {
		method, endpoint, code string
		want                   float64
	}{
		{"POST", "/api/movement/road/v2/house-consignment", "202", 1},
		{"GET", "/api/movement/road/status/v2/house-consignment/validation-status/{id}", "404", 2},
		{"GET", "/api/boom", "502", 1},
		{"GET", "/token", "error", 1},
	} {
		if got := metrics[promtest.Key(name, "method", c.method, "endpoint", c.endpoint, "code", c.code)]; got != c.want {
			t.Errorf("%s %s %s: count %v, want %v", c.method, c.endpoint, c.code, got, c.want)
		}
	}
	if strings.Contains(text, "1bdf0f33") || strings.Contains(text, "not-for-metrics") {
		t.Error("a requestId or a token reached the metrics")
	}

	spans := exp.GetSpans()
	if len(spans) != 5 {
		t.Fatalf("%d spans, want 4 HTTP spans and their parent", len(spans))
	}
	byName := map[string][]tracetest.SpanStub{}
	for _, s := range spans {
		byName[s.Name] = append(byName[s.Name], s)
		if s.Name != "process road" && s.Parent.SpanID() != parent.SpanContext().SpanID() {
			t.Errorf("span %q is not a child of the message's span", s.Name)
		}
	}
	if polls := byName["GET /api/movement/road/status/v2/house-consignment/validation-status/{id}"]; len(polls) != 2 || polls[0].Status.Code == codes.Error {
		t.Errorf("validation-status spans %+v: want 2, not errors (404 means not ready)", polls)
	}
	if boom := byName["GET /api/boom"]; len(boom) != 1 || boom[0].Status.Code != codes.Error {
		t.Errorf("502 span %+v: want one, an error", boom)
	}
	if tok := byName["GET /token"]; len(tok) != 1 || tok[0].Status.Code != codes.Error {
		t.Errorf("transport failure span %+v: want one, an error", tok)
	}
}

// closer is a RoundTripper that counts CloseIdleConnections.
type closer struct {
	http.RoundTripper
	closed int
}

func (c *closer) CloseIdleConnections() { c.closed++ }

// Wrapping a transport keeps http.Client.CloseIdleConnections working.
func TestTransportPassesOnCloseIdleConnections(t *testing.T) {
	next := &closer{RoundTripper: http.DefaultTransport}
	(&http.Client{Transport: Transport(next, nil)}).CloseIdleConnections()
	if next.closed != 1 {
		t.Errorf("CloseIdleConnections reached the wrapped transport %d times, want 1", next.closed)
	}
}
