package telemetry

import (
	"net/http"
	"strings"
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
	return &transport{next: next, m: m}
}

type transport struct {
	next http.RoundTripper
	m    *Metrics
}

// RoundTrip implements http.RoundTripper. Its duration is the time to the
// response headers: Toll's bodies are small, and a streamed upload's body
// is written before the answer comes.
func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	endpoint := Endpoint(req.URL.Path)
	ctx := req.Context()
	tracer := trace.SpanFromContext(ctx).TracerProvider().Tracer(instrumentation)
	ctx, span := tracer.Start(ctx, req.Method+" "+endpoint,
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
func Endpoint(path string) string {
	segs := strings.Split(strings.Trim(path, "/"), "/")
	if len(segs) == 1 && segs[0] == "" {
		return "/"
	}
	var b strings.Builder
	for i, s := range segs {
		if i == maxSegments {
			b.WriteString("/…")
			break
		}
		b.WriteByte('/')
		if word(s) {
			b.WriteString(s)
		} else {
			b.WriteString("{id}")
		}
	}
	return b.String()
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
