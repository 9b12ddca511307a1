package telemetry

import (
	"net/http"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// instrumentation names the tracers of this package.
const instrumentation = "github.com/digitoll/digitoll-worker/telemetry"

// Bounds of an endpoint template: Toll's paths have under a dozen
// segments of a few dozen bytes.
const (
	maxSegments   = 16
	maxSegmentLen = 48
)

// Transport wraps next (nil: http.DefaultTransport) so that every HTTP
// exchange is measured in m (nil: not measured) and, when the request's
// context carries a recording span, traced as a client span under it. The
// request is passed on otherwise unchanged: no header is added, so Toll
// and Maskinporten see exactly what they saw before.
func Transport(next http.RoundTripper, m *Metrics) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	return &transport{next: next, m: m, endpoints: map[string]string{}}
}

type transport struct {
	next http.RoundTripper
	m    *Metrics
	// endpoints interns the templates seen (see endpoint), at most
	// maxEndpoints of them.
	mu        sync.RWMutex
	endpoints map[string]string
}

// maxEndpoints bounds the templates a transport keeps: Toll's APIs have a
// few dozen.
const maxEndpoints = 256

// RoundTrip implements http.RoundTripper. Its duration is the time to the
// response headers: Toll's bodies are small, and a streamed upload's body
// is written before the answer comes.
func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	endpoint := t.endpoint(req.URL.Path)
	ctx := req.Context()
	// A span only under a recording one: the sampler follows the parent,
	// so a child of anything else would record nothing, and building it
	// (its name and attributes) is most of this function's cost. Without
	// one, span is the parent, on which the calls below do nothing.
	parent := trace.SpanFromContext(ctx)
	span := parent
	if parent.IsRecording() {
		ctx, span = parent.TracerProvider().Tracer(instrumentation).Start(ctx, req.Method+" "+endpoint,
			trace.WithSpanKind(trace.SpanKindClient),
			trace.WithAttributes(
				attribute.String("http.request.method", req.Method),
				attribute.String("url.template", endpoint),
				attribute.String("server.address", req.URL.Hostname()),
			))
		defer span.End()
		if span.IsRecording() {
			req = req.WithContext(ctx)
		}
	}
	start := time.Now()
	res, err := t.next.RoundTrip(req)
	d := time.Since(start)
	status := 0
	if err == nil {
		status = res.StatusCode
	}
	if t.m != nil {
		t.m.observeHTTP(req.Method, endpoint, status, d)
	}
	switch {
	case err != nil:
		// The error of a transport carries no secrets: it names the
		// host and the failure, never headers or bodies.
		span.SetAttributes(attribute.String("error.type", "transport"))
		span.SetStatus(codes.Error, err.Error())
	default:
		span.SetAttributes(attribute.Int("http.response.status_code", status))
		// 4xx are answers the worker handles (404 while validation is
		// pending, 400 rejections, a 401 answered with a new token);
		// only a server failure marks the span as failed.
		if status >= 500 {
			span.SetStatus(codes.Error, http.StatusText(status))
		}
	}
	return res, err
}

// Endpoint is the template of a URL path, for metric labels and span
// names: each segment that is a lowercase word ("movement",
// "house-consignment", "validation-status") or a version ("v2") is kept,
// anything else (MRNs, requestIds, declaration ids) becomes "{id}". The
// result has at most maxSegments segments, so the number of distinct
// endpoints is bounded by the API, not by the data sent through it.
func Endpoint(path string) string { return string(appendEndpoint(nil, path)) }

// endpoint is Endpoint, the same string each time for one template (no
// allocation once it has been seen).
func (t *transport) endpoint(path string) string {
	var buf [256]byte
	b := appendEndpoint(buf[:0], path)
	t.mu.RLock()
	e, ok := t.endpoints[string(b)]
	t.mu.RUnlock()
	if ok {
		return e
	}
	e = string(b)
	t.mu.Lock()
	if len(t.endpoints) < maxEndpoints {
		t.endpoints[e] = e
	}
	t.mu.Unlock()
	return e
}

// appendEndpoint appends the template of path (see Endpoint) to b.
func appendEndpoint(b []byte, path string) []byte {
	rest := strings.Trim(path, "/")
	if rest == "" {
		return append(b, '/')
	}
	for i := 0; ; i++ {
		if i == maxSegments {
			return append(b, "/…"...)
		}
		seg, more, found := strings.Cut(rest, "/")
		b = append(b, '/')
		if word(seg) {
			b = append(b, seg...)
		} else {
			b = append(b, "{id}"...)
		}
		if !found {
			return b
		}
		rest = more
	}
}

// word reports whether a path segment names part of an API rather than a
// value: lowercase letters with inner hyphens, or v and a version number.
func word(s string) bool {
	if s == "" || len(s) > maxSegmentLen {
		return false
	}
	if len(s) <= 3 && s[0] == 'v' && len(s) > 1 && strings.Trim(s[1:], "0123456789") == "" {
		return true
	}
	if s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for _, r := range s {
		if (r < 'a' || r > 'z') && r != '-' {
			return false
		}
	}
	return true
}

// CloseIdleConnections passes the call on, so that the http.Client's
// CloseIdleConnections still reaches the connections.
func (t *transport) CloseIdleConnections() {
	if c, ok := t.next.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}
