package worker

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/handlers"
)

// Messages on subjects no kind's consumer matches (an unknown kind, a
// subject with too many or too few tokens) are dead-lettered "malformed"
// within seconds in both consuming modes, and the stray lanes stop once
// their subjects are empty.
func TestStraySubjectsAreDeadLettered(t *testing.T) {
	t.Parallel()
	for _, mode := range []struct {
		name    string
		tenants TenantSource
	}{
		{"one consumer per kind", nil},
		{"lanes", &tenantList{tenants: []Tenant{roadTenant(contract.DefaultTenant, 0)}}},
	} {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			h := &fakeHandler{behaviour: accept}
			rec := newLogRecorder()
			// One stray waits before the worker starts, the others arrive
			// while it runs.
			submit(t, e.js, "digitoll.submit.ship.default", "", roadBody("s1"), nil)
			w := runWorker(t, e.js, Config{
				Handlers: map[contract.Kind]handlers.Handler{contract.KindRoad: h},
				Tenants:  mode.tenants,
				LaneSync: 50 * time.Millisecond,
				Logger:   slog.New(rec),
			}).w
			submit(t, e.js, "digitoll.submit.road.default.extra", "", roadBody("s2"), nil)
			submit(t, e.js, "digitoll.submit.road", "", roadBody("s3"), nil)
			submit(t, e.js, roadSubject, "", roadBody("ok"), nil)

			collect(t, e.js, contract.StreamResults, roadResults, 1, 30*time.Second)
			dead := collect(t, e.js, contract.StreamDLQ, "digitoll.dlq.>", 3, 30*time.Second)
			subjects := map[string]bool{}
			for _, m := range dead {
				if m.Subject() != contract.DLQSubject(contract.InvalidKind, contract.InvalidTenant) {
					t.Errorf("dead letter on %s, want %s", m.Subject(), contract.DLQSubject(contract.InvalidKind, contract.InvalidTenant))
				}
				if got := m.Headers().Get(contract.HeaderDLQReason); got != reasonMalformed {
					t.Errorf("dead letter of %s: reason %q, want malformed", m.Headers().Get(contract.HeaderOriginalSubject), got)
				}
				if !strings.Contains(m.Headers().Get(contract.HeaderDLQError), "subject") {
					t.Errorf("dead letter error %q does not say what is wrong with the subject", m.Headers().Get(contract.HeaderDLQError))
				}
				subjects[m.Headers().Get(contract.HeaderOriginalSubject)] = true
			}
			for _, s := range []string{"digitoll.submit.ship.default", "digitoll.submit.road.default.extra", "digitoll.submit.road"} {
				if !subjects[s] {
					t.Errorf("no dead letter from %s (got %v)", s, subjects)
				}
			}
			if n := h.totalCalls(); n != 1 {
				t.Errorf("handler called %d times, want once: strays never reach it", n)
			}
			eventually(t, 30*time.Second, "the submit stream to be empty", func() bool {
				return count(t, e.js, contract.StreamSubmit, contract.SubjectsSubmit) == 0
			})
			eventually(t, 30*time.Second, "the stray lanes to stop", func() bool {
				return len(rec.find("stopped consuming stray subject")) == 3
			})
			if st := w.Status(); len(st) != 1 || st[0].Kind != contract.KindRoad {
				t.Errorf("status %+v, want the road lane alone: stray lanes have no health", st)
			}
		})
	}
}
