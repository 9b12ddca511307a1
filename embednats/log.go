package embednats

import (
	"context"
	"fmt"
	"log/slog"
)

// slogAdapter routes nats-server's printf-style logging to slog. Notices
// (the start-up banner, listening addresses) are debug: the worker prints
// the one line an operator needs, the client URL, itself; fatal lines are logged as errors without exiting: the server stops
// itself after a fatal condition and Start reports that it never became
// ready, so the embedding program decides what happens next.
type slogAdapter struct {
	l *slog.Logger
}

func (a slogAdapter) log(level slog.Level, format string, v []any) {
	ctx := context.Background()
	if !a.l.Enabled(ctx, level) {
		return
	}
	a.l.Log(ctx, level, fmt.Sprintf(format, v...))
}

// Noticef logs at debug.
func (a slogAdapter) Noticef(format string, v ...any) { a.log(slog.LevelDebug, format, v) }

// Warnf logs at warn.
func (a slogAdapter) Warnf(format string, v ...any) { a.log(slog.LevelWarn, format, v) }

// Fatalf logs at error, with fatal=true.
func (a slogAdapter) Fatalf(format string, v ...any) {
	a.l.Error(fmt.Sprintf(format, v...), "fatal", true)
}

// Errorf logs at error.
func (a slogAdapter) Errorf(format string, v ...any) { a.log(slog.LevelError, format, v) }

// Debugf logs at debug.
func (a slogAdapter) Debugf(format string, v ...any) { a.log(slog.LevelDebug, format, v) }

// Tracef logs at debug; the server only calls it when tracing is on, which
// Start never turns on.
func (a slogAdapter) Tracef(format string, v ...any) { a.log(slog.LevelDebug, format, v) }

func debugEnabled(l *slog.Logger) bool { return l.Enabled(context.Background(), slog.LevelDebug) }
