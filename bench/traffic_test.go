package bench

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/internal/natstest"
)

// A consumer that stops by itself ends the wait for its results at once,
// with its error and how many results came: the wait does not sit out
// resultTimeout (or the caller's deadline) for results that cannot come.
func TestResultWaitEndsWithItsRun(t *testing.T) {
	_, js := natstest.Start(t, "")
	st := &stage{nc: js.Conn()}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()

	for _, tc := range []struct {
		name    string
		results int
		runErr  error
		wantErr string
	}{
		{"fails before every result", 1, errors.New("no heartbeat received"), "stopped by itself after 1 of 3 results: no heartbeat received"},
		{"returns right after the last result", 3, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			watch, err := st.watchResults(3)
			if err != nil {
				t.Fatal(err)
			}
			defer watch.stop()
			run := start(ctx, func(context.Context) error {
				for i := range tc.results {
					m := nats.NewMsg(contract.ResultSubject(contract.KindRoad, contract.DefaultTenant))
					m.Header.Set(contract.HeaderResultSubmissionID, tc.name+string(rune('a'+i)))
					if err := st.nc.PublishMsg(m); err != nil {
						return err
					}
				}
				if err := st.nc.Flush(); err != nil {
					return err
				}
				return tc.runErr
			})
			_, err = watch.wait(ctx, run)
			if ctx.Err() != nil {
				t.Fatalf("the wait lasted until the test's deadline: %v", err)
			}
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("wait: %v, want every result", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("wait: %v, want an error containing %q", err, tc.wantErr)
			}
			if err := run.stop(); !errors.Is(err, tc.runErr) {
				t.Errorf("stop: %v, want the run's own error %v", err, tc.runErr)
			}
		})
	}
}
