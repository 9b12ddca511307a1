package worker

import (
	"bytes"
	"log/slog"
	"testing"
)

// A delivery's lines read as those of a logger made with a With per
// attribute, in the order the stages learn them.
func TestJobLogWritesAsWith(t *testing.T) {
	noTime := &slog.HandlerOptions{ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey && len(groups) == 0 {
			return slog.Attr{}
		}
		return a
	}}
	var want, got bytes.Buffer
	withs := slog.New(slog.NewTextHandler(&want, noTime)).With("kind", "road")
	withs.Info("first", "k", 1)
	withs = withs.With("tenant", "acme").With("id", "s-1", "operation", "create")
	withs.Info("second", "status", "accepted")
	withs.WithGroup("g").Info("grouped", "k", "v")

	l, log := newJobLog(slog.New(slog.NewTextHandler(&got, noTime)), slog.String("kind", "road"))
	log.Info("first", "k", 1)
	l.add(slog.String("tenant", "acme"), slog.String("id", "s-1"), slog.String("operation", "create"))
	log.Info("second", "status", "accepted")
	log.WithGroup("g").Info("grouped", "k", "v")

	if want.String() == "" || got.String() != want.String() {
		t.Errorf("job log:\n%s\nWith:\n%s", &got, &want)
	}
}
