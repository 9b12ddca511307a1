package worker

import (
	"context"
	"log/slog"
	"slices"
)

// jobLog is the log handler of one delivery. The attributes naming the
// message (kind, tenant, id, stream sequence, trace, requestId, MRN) are
// gathered as the stages learn them and formatted only when a line is
// written: a With for each would make the production handler format the
// growing set again every time, for a delivery that writes one info line
// in all. It belongs to the delivery's goroutine, which alone adds to it.
type jobLog struct {
	h     slog.Handler
	attrs []slog.Attr
}

// maxJobAttrs is room for every attribute the stages add (kind, trace
// and span, stream sequence and delivery, tenant, id, operation, level,
// MRN, requestId, and the MRN obtained).
const maxJobAttrs = 12

// newJobLog returns the delivery's handler over base's and a logger
// writing through it.
func newJobLog(base *slog.Logger, attrs ...slog.Attr) (*jobLog, *slog.Logger) {
	l := &jobLog{h: base.Handler(), attrs: make([]slog.Attr, 0, maxJobAttrs)}
	l.attrs = append(l.attrs, attrs...)
	return l, slog.New(l)
}

// add appends attributes to every line written from now on.
func (l *jobLog) add(attrs ...slog.Attr) { l.attrs = append(l.attrs, attrs...) }

// Enabled implements slog.Handler.
func (l *jobLog) Enabled(ctx context.Context, level slog.Level) bool {
	return l.h.Enabled(ctx, level)
}

// Handle implements slog.Handler: the delivery's attributes come first,
// as they would after With.
func (l *jobLog) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	out.AddAttrs(l.attrs...)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(a)
		return true
	})
	return l.h.Handle(ctx, out)
}

// WithAttrs implements slog.Handler; the result no longer follows add.
func (l *jobLog) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &jobLog{h: l.h, attrs: append(slices.Clip(l.attrs), attrs...)}
}

// WithGroup implements slog.Handler: the delivery's attributes stay
// outside the group.
func (l *jobLog) WithGroup(name string) slog.Handler {
	return l.h.WithAttrs(slices.Clone(l.attrs)).WithGroup(name)
}
