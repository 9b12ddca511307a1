package telemetry

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

func TestTracesURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://collector:4318":          "http://collector:4318/v1/traces",
		"http://collector:4318/":         "http://collector:4318/v1/traces",
		"https://otlp.example/otel":      "https://otlp.example/otel/v1/traces",
		"https://otlp.example/v1/traces": "https://otlp.example/v1/traces",
		"collector:4318":                 "",
		"ftp://collector/":               "",
		"http://":                        "",
	} {
		got, err := tracesURL(in, false)
		if (err != nil) != (want == "") || got != want {
			t.Errorf("tracesURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is the whole URL.
	for in, want := range map[string]string{
		"https://ingest.example/api/spans": "https://ingest.example/api/spans",
		"http://collector:4318":            "http://collector:4318",
		"collector:4318":                   "",
	} {
		got, err := tracesURL(in, true)
		if (err != nil) != (want == "") || got != want {
			t.Errorf("tracesURL(%q, as is) = %q, %v; want %q", in, got, err, want)
		}
	}
}

// Without an endpoint spans are not recorded; with one they are posted to
// its /v1/traces in OTLP when the provider shuts down, with the service
// name.
func TestNewTracerProvider(t *testing.T) {
	tp, shutdown, err := NewTracerProvider(t.Context(), TracingConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if _, span := tp.Tracer("test").Start(t.Context(), "nothing"); span.IsRecording() {
		t.Error("a span records without an endpoint")
	}
	if err := shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	var got []*coltrace.ExportTraceServiceRequest
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		req := &coltrace.ExportTraceServiceRequest{}
		if r.URL.Path != "/v1/traces" || proto.Unmarshal(body, req) != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		mu.Lock()
		got = append(got, req)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(collector.Close)
	tp, shutdown, err = NewTracerProvider(t.Context(), TracingConfig{Endpoint: collector.URL, ServiceVersion: "1.2.3"})
	if err != nil {
		t.Fatal(err)
	}
	_, span := tp.Tracer("test").Start(t.Context(), "process road")
	span.End()
	if err := shutdown(t.Context()); err != nil {
		t.Fatalf("shutdown (flush to the collector): %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	var names, service []string
	for _, req := range got {
		for _, rs := range req.GetResourceSpans() {
			for _, a := range rs.GetResource().GetAttributes() {
				service = append(service, a.GetKey()+"="+a.GetValue().GetStringValue())
			}
			for _, ss := range rs.GetScopeSpans() {
				for _, s := range ss.GetSpans() {
					names = append(names, s.GetName())
				}
			}
		}
	}
	if strings.Join(names, ",") != "process road" {
		t.Errorf("collector received spans %v, want [process road]", names)
	}
	if s := strings.Join(service, ","); !strings.Contains(s, "service.name="+ServiceName) || !strings.Contains(s, "service.version=1.2.3") {
		t.Errorf("resource %s lacks the service name or version", s)
	}
}

// OTEL_SERVICE_NAME (as config reads it) names the service; a traces URL
// is posted to as it is.
func TestTracerProviderServiceNameAndTracesURL(t *testing.T) {
	paths := make(chan string, 10)
	services := make(chan string, 10)
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		req := &coltrace.ExportTraceServiceRequest{}
		if proto.Unmarshal(body, req) == nil {
			for _, rs := range req.GetResourceSpans() {
				for _, a := range rs.GetResource().GetAttributes() {
					if a.GetKey() == "service.name" {
						services <- a.GetValue().GetStringValue()
					}
				}
			}
		}
		paths <- r.URL.Path
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(collector.Close)
	tp, shutdown, err := NewTracerProvider(t.Context(), TracingConfig{
		Endpoint: collector.URL + "/ingest/spans", EndpointIsTracesURL: true, ServiceName: "customs-edge",
	})
	if err != nil {
		t.Fatal(err)
	}
	_, span := tp.Tracer("test").Start(t.Context(), "process road")
	span.End()
	if err := shutdown(t.Context()); err != nil {
		t.Fatalf("shutdown (flush to the collector): %v", err)
	}
	if p := <-paths; p != "/ingest/spans" {
		t.Errorf("spans posted to %s, want /ingest/spans", p)
	}
	if s := <-services; s != "customs-edge" {
		t.Errorf("service.name %q, want customs-edge", s)
	}
}

func TestLogHandlerAddsTraceIDs(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(LogHandler(slog.NewTextHandler(&buf, nil))).With("component", "test")
	exp := newRecordingProvider(t)
	ctx, span := exp.Tracer("test").Start(context.Background(), "process road")
	log.InfoContext(ctx, "inside")
	log.Info("outside")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("log lines %q", lines)
	}
	want := "traceId=" + span.SpanContext().TraceID().String() + " spanId=" + span.SpanContext().SpanID().String()
	if !strings.Contains(lines[0], want) || !strings.Contains(lines[0], "component=test") {
		t.Errorf("line in a span %q lacks %q", lines[0], want)
	}
	if strings.Contains(lines[1], "traceId") {
		t.Errorf("line outside a span %q has a trace id", lines[1])
	}
}

// newRecordingProvider is an SDK provider that records every span and
// keeps none.
func newRecordingProvider(t *testing.T) *sdktrace.TracerProvider {
	tp := sdktrace.NewTracerProvider()
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return tp
}

// LogHandler hands With's attributes to the handler with each line rather
// than to its WithAttrs; the lines must read as the handler's own would,
// groups included.
func TestLogHandlerWritesWithAttrsAsTheHandlerWould(t *testing.T) {
	noTime := &slog.HandlerOptions{ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey && len(groups) == 0 {
			return slog.Attr{}
		}
		return a
	}}
	for _, newHandler := range []func(*bytes.Buffer) slog.Handler{
		func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, noTime) },
		func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, noTime) },
	} {
		var want, got bytes.Buffer
		for _, c := range []struct {
			buf *bytes.Buffer
			h   slog.Handler
		}{{&want, newHandler(&want)}, {&got, LogHandler(newHandler(&got))}} {
			log := slog.New(c.h).With("component", "test").With("id", "s-1", "n", 2)
			log.Info("plain", "status", "accepted")
			log.WithGroup("g").With("in", true).Info("grouped", "k", "v")
			log.Debug("below the level")
		}
		if want.String() == "" || got.String() != want.String() {
			t.Errorf("through LogHandler:\n%s\nthe handler alone:\n%s", &got, &want)
		}
	}
}
