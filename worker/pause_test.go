package worker

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/failure"
	"github.com/digitoll/digitoll-worker/handlers"
)

// switchable is a handler whose dependency can be broken and mended: while
// broken it fails every message (and its probe) with err.
type switchable struct {
	fakeHandler
	broken atomic.Bool
	err    error
	probes atomic.Int32
}

func newSwitchable(err error) *switchable {
	s := &switchable{err: err}
	s.behaviour = func(ctx context.Context, req handlers.Request) (handlers.Outcome, error) {
		if s.broken.Load() {
			return handlers.Outcome{}, s.err
		}
		return accept(ctx, req)
	}
	s.broken.Store(true)
	return s
}

func (s *switchable) ProbeTenant(context.Context, string) error {
	s.probes.Add(1)
	if s.broken.Load() {
		return s.err
	}
	return nil
}

func consumerPaused(t *testing.T, e *env, kind contract.Kind) bool {
	t.Helper()
	c, err := e.js.Consumer(testCtx(t), contract.StreamSubmit, LaneConsumerName(kind, contract.DefaultTenant))
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	return info.Paused
}

func kindStatus(w *Worker, kind contract.Kind) KindStatus {
	for _, s := range w.Status() {
		if s.Kind == kind {
			return s
		}
	}
	return KindStatus{}
}

// A configuration fault (scope not granted) pauses the kind on the server,
// keeps every message, lets other kinds go on, and resumes when the probe
// succeeds: then every message completes and nothing is dead-lettered.
func TestConfigurationFaultPausesTheKindUntilAProbeSucceeds(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		err       error
		threshold int
	}{
		{"scope not granted", fmt.Errorf("maskinporten: invalid_scope: Not authorized to request scope toll:movement/road/v2: %w", failure.ErrConfig), 0},
		{"toll down", fmt.Errorf("toll answered 503: %w", failure.ErrTransient), 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			road := newSwitchable(tc.err)
			air := &fakeHandler{behaviour: accept}
			w, err := New(e.js, withTenant(Config{
				Handlers:         map[contract.Kind]Handler{contract.KindRoad: road, contract.KindAir: air},
				Concurrency:      4,
				ConfigRetryDelay: 50 * time.Millisecond,
				RetryDelay:       func(int) time.Duration { return 50 * time.Millisecond },
				ProbeInterval:    50 * time.Millisecond,
				PauseFor:         5 * time.Second,
				OutageThreshold:  tc.threshold,
			}))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- w.Run(ctx) }()
			t.Cleanup(func() {
				cancel()
				if err := <-done; err != nil {
					t.Error(err)
				}
			})

			const n = 10
			for i := range n {
				submit(t, e.js, roadSubject, "", roadBody(fmt.Sprintf("r%d", i)), nil)
			}
			eventually(t, 20*time.Second, "road to be paused", func() bool {
				return kindStatus(w, contract.KindRoad).Paused && consumerPaused(t, e, contract.KindRoad)
			})
			st := kindStatus(w, contract.KindRoad)
			if st.Error == "" || (tc.threshold == 0 && st.Reason != pauseConfig) || (tc.threshold > 0 && st.Reason != pauseOutage) {
				t.Errorf("status %+v", st)
			}

			// Air is not affected.
			submit(t, e.js, contract.SubmitSubject(contract.KindAir, contract.DefaultTenant), "", roadBody("a1"), nil)
			collect(t, e.js, contract.StreamResults, contract.ResultSubject(contract.KindAir, contract.DefaultTenant), 1, 20*time.Second)
			if kindStatus(w, contract.KindAir).Paused {
				t.Error("air was paused with road")
			}
			eventually(t, 10*time.Second, "probes while paused", func() bool { return road.probes.Load() >= 2 })

			road.broken.Store(false)
			results := collect(t, e.js, contract.StreamResults, roadResults, n, 30*time.Second)
			for _, m := range results {
				if r := decodeResult(t, m); r.Status != contract.StatusAccepted {
					t.Errorf("%s: %s", r.ID, r.Status)
				}
			}
			eventually(t, 10*time.Second, "road to be resumed", func() bool {
				return !kindStatus(w, contract.KindRoad).Paused && !consumerPaused(t, e, contract.KindRoad)
			})
			if got := count(t, e.js, contract.StreamDLQ, "digitoll.dlq.>"); got != 0 {
				t.Errorf("%d dead letters, want none", got)
			}
		})
	}
}

// A kind is unhealthy once every served tenant's lane is paused. The lane
// that dead-letters an unserved tenant's messages never pauses, and does
// not make the kind look healthy while the served tenants wait.
func TestKindHealthCountsServedTenantsOnly(t *testing.T) {
	since := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	paused := func(tenant string) KindStatus {
		return KindStatus{Kind: contract.KindRoad, Tenant: tenant, Paused: true, Reason: pauseOutage, Since: since, Error: "toll down"}
	}
	running := func(tenant string) KindStatus { return KindStatus{Kind: contract.KindRoad, Tenant: tenant} }
	served := func(tenant string) error {
		if tenant == "stranger" {
			return fmt.Errorf("tenant %q is not served", tenant)
		}
		return nil
	}
	tests := []struct {
		name     string
		statuses []KindStatus
		want     string // "" for healthy
	}{
		{"no lane", nil, ""},
		{"the only tenant running", []KindStatus{running("a")}, ""},
		{"the only tenant paused", []KindStatus{paused("a")}, "paused for tenant a since 2026-12-03T09:00:00Z (outage): toll down"},
		{"one of two paused", []KindStatus{paused("a"), running("b")}, ""},
		{"both paused", []KindStatus{paused("a"), paused("b")}, "paused for all 2 tenants since 2026-12-03T09:00:00Z (outage): toll down"},
		{"paused beside a stranger's lane", []KindStatus{running("stranger"), paused("a")}, "paused for tenant a since 2026-12-03T09:00:00Z (outage): toll down"},
		{"another kind's lane running", []KindStatus{{Kind: contract.KindAir, Tenant: "a"}, paused("a")}, "paused for tenant a since 2026-12-03T09:00:00Z (outage): toll down"},
		{"only a stranger's lane", []KindStatus{running("stranger")}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := kindHealth(contract.KindRoad, tt.statuses, served)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Errorf("kindHealth = %q, want %q", got, tt.want)
			}
		})
	}
}
