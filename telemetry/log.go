package telemetry

import (
	"context"
	"log/slog"
	"slices"

	"go.opentelemetry.io/otel/trace"
)

// Log attributes that tie a log line to its trace.
const (
	LogTraceID = "traceId"
	LogSpanID  = "spanId"
)

// LogHandler wraps h so that a record logged with a context (InfoContext
// and the like) inside a span carries the span's traceId and spanId: the
// Toll client's and the handlers' lines can then be found from a trace,
// and the other way round.
//
// Attributes given by With are kept and handed to h with each record, not
// to h's WithAttrs: the text and JSON handlers format them there at once,
// and again with every With that follows, which for a logger made per
// message (a handful of With, one or two lines written, most of them
// below the level) costs more than formatting them with the lines that
// are written. A LogValuer among them is resolved when a line is written.
func LogHandler(h slog.Handler) slog.Handler { return traceHandler{Handler: h} }

type traceHandler struct {
	slog.Handler
	// attrs are those of With since the last WithGroup, not yet given
	// to Handler.
	attrs []slog.Attr
}

// Handle implements slog.Handler.
func (h traceHandler) Handle(ctx context.Context, r slog.Record) error {
	sc := trace.SpanContextFromContext(ctx)
	if len(h.attrs) == 0 && !sc.IsValid() {
		return h.Handler.Handle(ctx, r)
	}
	// With's attributes come first, as Handler's WithAttrs would put
	// them.
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	out.AddAttrs(h.attrs...)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(a)
		return true
	})
	if sc.IsValid() {
		out.AddAttrs(slog.String(LogTraceID, sc.TraceID().String()), slog.String(LogSpanID, sc.SpanID().String()))
	}
	return h.Handler.Handle(ctx, out)
}

// WithAttrs implements slog.Handler.
func (h traceHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return h
	}
	return traceHandler{Handler: h.Handler, attrs: append(slices.Clip(h.attrs), attrs...)}
}

// WithGroup implements slog.Handler: the attributes so far stay outside
// the group.
func (h traceHandler) WithGroup(name string) slog.Handler {
	inner := h.Handler
	if len(h.attrs) > 0 {
		inner = inner.WithAttrs(h.attrs)
	}
	return traceHandler{Handler: inner.WithGroup(name)}
}
