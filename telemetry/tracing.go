package telemetry

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// ServiceName is the service.name of the worker's spans.
const ServiceName = "digitoll-worker"

// otlpTracesPath is where an OTLP/HTTP receiver takes traces.
const otlpTracesPath = "/v1/traces"

// TracingConfig configures NewTracerProvider.
type TracingConfig struct {
	// Endpoint is the base URL of an OTLP/HTTP receiver, such as an
	// OpenTelemetry Collector's http://otel-collector:4318; spans are
	// posted to its /v1/traces. Empty turns tracing off. The exporter
	// also honours the standard OTEL_EXPORTER_OTLP_HEADERS,
	// OTEL_EXPORTER_OTLP_CERTIFICATE and OTEL_EXPORTER_OTLP_TIMEOUT
	// variables.
	Endpoint string
	// EndpointIsTracesURL says that Endpoint is the full URL spans are
	// posted to, used as it is, as the standard
	// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is; otherwise /v1/traces is
	// added to it, as to OTEL_EXPORTER_OTLP_ENDPOINT.
	EndpointIsTracesURL bool
	// ServiceName is the service.name of the spans; empty is ServiceName.
	ServiceName string
	// ServiceVersion is the service.version of the spans; optional.
	ServiceVersion string
	// Exporter replaces the OTLP exporter when set (tests use an
	// in-memory one); Endpoint is then ignored.
	Exporter sdktrace.SpanExporter
}

// NewTracerProvider returns the tracer provider of cfg and its shutdown,
// which flushes spans not yet exported and must be called before the
// process exits. Without an endpoint or exporter it is a no-op provider:
// spans then cost next to nothing, and trace context still passes from
// submissions to results unchanged. Spans are sampled as the producer's
// traceparent says, and always when a submission has none.
func NewTracerProvider(ctx context.Context, cfg TracingConfig) (trace.TracerProvider, func(context.Context) error, error) {
	exp := cfg.Exporter
	if exp == nil {
		if cfg.Endpoint == "" {
			return noop.NewTracerProvider(), func(context.Context) error { return nil }, nil
		}
		u, err := tracesURL(cfg.Endpoint, cfg.EndpointIsTracesURL)
		if err != nil {
			return nil, nil, err
		}
		if exp, err = otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(u)); err != nil {
			return nil, nil, fmt.Errorf("telemetry: OTLP exporter for %s: %w", cfg.Endpoint, err)
		}
	}
	name := cfg.ServiceName
	if name == "" {
		name = ServiceName
	}
	attrs := []attribute.KeyValue{attribute.String("service.name", name)}
	if cfg.ServiceVersion != "" {
		attrs = append(attrs, attribute.String("service.version", cfg.ServiceVersion))
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(resource.NewSchemaless(attrs...)),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.AlwaysSample())),
	)
	return tp, tp.Shutdown, nil
}

// tracesURL is the traces URL of an OTLP/HTTP base URL. A URL that names
// /v1/traces already is taken as it is, and so is any when asIs is set.
func tracesURL(endpoint string, asIs bool) (string, error) {
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("telemetry: OTLP endpoint %q is not an http(s) URL", endpoint)
	}
	if !asIs && !strings.HasSuffix(u.Path, otlpTracesPath) {
		u.Path = strings.TrimRight(u.Path, "/") + otlpTracesPath
	}
	return u.String(), nil
}
