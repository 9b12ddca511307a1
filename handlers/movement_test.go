package handlers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/failure"
	"github.com/digitoll/digitoll-worker/toll"
)

// recorder keeps the order of journal and Toll calls across fakes.
type recorder struct {
	mu     sync.Mutex
	events []string
}

func (r *recorder) add(e string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

func (r *recorder) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.events...)
}

func (r *recorder) count(prefix string) int {
	n := 0
	for _, e := range r.list() {
		if strings.HasPrefix(e, prefix) {
			n++
		}
	}
	return n
}

// fakeAPI answers the n-th Declare (from 1) and the n-th
// ValidationStatus with its behaviour functions.
type fakeAPI struct {
	rec     *recorder
	mu      sync.Mutex
	nDecl   int
	nStat   int
	declare func(n int) (string, error)
	status  func(n int) (toll.Validation, error)
}

func (f *fakeAPI) Declare(ctx context.Context, _ toll.API, op contract.Operation, level contract.Level, mrn string, _ []byte) (string, error) {
	// Where a real client's request would leave: the journal's Sending.
	if err := toll.RunBeforeSend(ctx); err != nil {
		return "", err
	}
	f.mu.Lock()
	f.nDecl++
	n := f.nDecl
	f.mu.Unlock()
	f.rec.add(fmt.Sprintf("declare %s %s %s", op, level, mrn))
	return f.declare(n)
}

// errNoLookup is the answer of fakeAPI's lookups: Toll finds nothing.
var errNoLookup = errors.New("fakeAPI has no lookup")

// StatusWithDescendants finds nothing; fakeQueryAPI answers lookups.
func (f *fakeAPI) StatusWithDescendants(context.Context, toll.API, contract.Level, string) (toll.StatusTree, error) {
	return toll.StatusTree{}, errNoLookup
}

// EntryStatus finds nothing; fakeQueryAPI answers lookups.
func (f *fakeAPI) EntryStatus(context.Context, toll.API, string) (toll.EntryStatus, error) {
	return toll.EntryStatus{}, errNoLookup
}

// TestAuth passes.
func (f *fakeAPI) TestAuth(context.Context, toll.API) error { return nil }

func (f *fakeAPI) ValidationStatus(ctx context.Context, _ toll.API, _ contract.Level, requestID string) (toll.Validation, error) {
	f.mu.Lock()
	f.nStat++
	n := f.nStat
	f.mu.Unlock()
	f.rec.add("status " + requestID)
	if f.status == nil {
		<-ctx.Done()
		return toll.Validation{}, ctx.Err()
	}
	return f.status(n)
}

// fakeJournal records Sending and Sent, failing when told to.
type fakeJournal struct {
	rec        *recorder
	sendingErr error
	sentErr    error
}

func (j *fakeJournal) Sending(context.Context) error {
	j.rec.add("sending")
	return j.sendingErr
}

func (j *fakeJournal) Sent(_ context.Context, id string) error {
	j.rec.add("sent " + id)
	return j.sentErr
}

// Release is not recorded: these tests look at what is sent and
// journaled; releasingJournal's tests look at releases.
func (j *fakeJournal) Release(context.Context, bool) error { return nil }

// retryAfterErr is a transient error asking for a delay.
type retryAfterErr struct{ d time.Duration }

func (e retryAfterErr) Error() string             { return "HTTP 429" }
func (e retryAfterErr) Unwrap() error             { return failure.ErrTransient }
func (e retryAfterErr) RetryAfter() time.Duration { return e.d }

var (
	errUnavailable = fmt.Errorf("HTTP 503: %w", failure.ErrTransient)
	errAmbiguous   = fmt.Errorf("connection reset: %w: %w", failure.ErrTransient, toll.ErrAmbiguous)
)

func success(n int) (toll.Validation, error) {
	return toll.Validation{Status: toll.ValidationSuccess, RequestID: "req-1", MRN: "25NO4TU2HUD59UCBT8"}, nil
}

func fastPolicies(m *Movement) *Movement {
	m.Retry = RetryPolicy{Initial: time.Millisecond, Max: 5 * time.Millisecond, MaxElapsed: 2 * time.Second}
	m.Poll = PollPolicy{Initial: time.Millisecond, Max: 5 * time.Millisecond, Multiplier: 2, Timeout: 2 * time.Second}
	return m
}

func submission(op contract.Operation, mrn string) *contract.Submission {
	return &contract.Submission{ID: "s-1", Operation: op, Level: contract.LevelHouseConsignment, MRN: mrn, Declaration: []byte(`{}`)}
}

func TestHandle(t *testing.T) {
	tests := []struct {
		name       string
		sub        *contract.Submission
		requestID  string
		declare    func(n int) (string, error)
		status     func(n int) (toll.Validation, error)
		sendingErr error
		sentErr    error
		want       Outcome
		wantClass  failure.Class
		wantEvents []string
	}{
		{
			name:    "create accepted",
			sub:     submission(contract.OpCreate, ""),
			declare: func(int) (string, error) { return "req-1", nil },
			status: func(n int) (toll.Validation, error) {
				if n < 3 {
					return toll.Validation{}, fmt.Errorf("404: %w", toll.ErrNotReady)
				}
				return toll.Validation{Status: toll.ValidationSuccess, RequestID: "req-1", MRN: "25NO4TU2HUD59UCBT8", IncompleteDocumentation: []string{"no house"}}, nil
			},
			want:       Outcome{Status: contract.StatusAccepted, MRN: "25NO4TU2HUD59UCBT8", RequestID: "req-1", IncompleteDocumentation: []string{"no house"}},
			wantEvents: []string{"sending", "declare create house-consignment ", "sent req-1", "status req-1", "status req-1", "status req-1"},
		},
		{
			name:       "update uses the submission's MRN",
			sub:        submission(contract.OpUpdate, "25NO4TU2HUD59UCBT8"),
			declare:    func(int) (string, error) { return "req-1", nil },
			status:     func(int) (toll.Validation, error) { return toll.Validation{Status: toll.ValidationSuccess}, nil },
			want:       Outcome{Status: contract.StatusAccepted, MRN: "25NO4TU2HUD59UCBT8", RequestID: "req-1"},
			wantEvents: []string{"sending", "declare update house-consignment 25NO4TU2HUD59UCBT8", "sent req-1", "status req-1"},
		},
		{
			name:       "known requestId is followed, not resubmitted",
			sub:        submission(contract.OpCreate, ""),
			requestID:  "req-1",
			status:     success,
			want:       Outcome{Status: contract.StatusAccepted, MRN: "25NO4TU2HUD59UCBT8", RequestID: "req-1"},
			wantEvents: []string{"status req-1"},
		},
		{
			name:      "delete without an MRN is poison",
			sub:       submission(contract.OpDelete, ""),
			wantClass: failure.Poison,
		},
		{
			name: "400 is a rejected outcome",
			sub:  submission(contract.OpCreate, ""),
			declare: func(int) (string, error) {
				return "", &toll.RejectedError{Status: 400, Errors: []contract.FieldError{{Path: "documentIssueDate", Message: "invalid"}}}
			},
			want:       Outcome{Status: contract.StatusRejected, Errors: []contract.FieldError{{Path: "documentIssueDate", Message: "invalid"}}},
			wantEvents: []string{"sending", "declare create house-consignment "},
		},
		{
			name:    "FAILURE is a rejected outcome with the requestId",
			sub:     submission(contract.OpCreate, ""),
			declare: func(int) (string, error) { return "req-1", nil },
			status: func(int) (toll.Validation, error) {
				return toll.Validation{Status: toll.ValidationFailure, Errors: []contract.FieldError{{Path: "p", Message: "already in use"}}}, nil
			},
			want:       Outcome{Status: contract.StatusRejected, RequestID: "req-1", Errors: []contract.FieldError{{Path: "p", Message: "already in use"}}},
			wantEvents: []string{"sending", "declare create house-consignment ", "sent req-1", "status req-1"},
		},
		{
			name: "transient failures are retried, each attempt journaled",
			sub:  submission(contract.OpCreate, ""),
			declare: func(n int) (string, error) {
				switch n {
				case 1:
					return "", errUnavailable
				case 2:
					return "", errAmbiguous
				}
				return "req-1", nil
			},
			status: success,
			want:   Outcome{Status: contract.StatusAccepted, MRN: "25NO4TU2HUD59UCBT8", RequestID: "req-1"},
			wantEvents: []string{"sending", "declare create house-consignment ", "sending", "declare create house-consignment ",
				"sending", "declare create house-consignment ", "sent req-1", "status req-1"},
		},
		{
			name:       "config failure stops at once",
			sub:        submission(contract.OpCreate, ""),
			declare:    func(int) (string, error) { return "", fmt.Errorf("HTTP 403: %w", failure.ErrConfig) },
			wantClass:  failure.Config,
			wantEvents: []string{"sending", "declare create house-consignment "},
		},
		{
			name:       "permanent failure stops at once",
			sub:        submission(contract.OpCreate, ""),
			declare:    func(int) (string, error) { return "", fmt.Errorf("HTTP 418: %w", failure.ErrPermanent) },
			wantClass:  failure.Permanent,
			wantEvents: []string{"sending", "declare create house-consignment "},
		},
		{
			name:       "journal failure before sending aborts the call",
			sub:        submission(contract.OpCreate, ""),
			sendingErr: errors.New("kv unavailable"),
			wantClass:  failure.Transient,
			wantEvents: []string{"sending"},
		},
		{
			name:       "journal failure after sending is transient and stops before polling",
			sub:        submission(contract.OpCreate, ""),
			declare:    func(int) (string, error) { return "req-1", nil },
			sentErr:    errors.New("kv unavailable"),
			wantClass:  failure.Transient,
			wantEvents: []string{"sending", "declare create house-consignment ", "sent req-1"},
		},
		{
			name:      "transient polling errors count as not ready",
			sub:       submission(contract.OpCreate, ""),
			requestID: "req-1",
			status: func(n int) (toll.Validation, error) {
				if n < 3 {
					return toll.Validation{}, errUnavailable
				}
				return success(n)
			},
			want:       Outcome{Status: contract.StatusAccepted, MRN: "25NO4TU2HUD59UCBT8", RequestID: "req-1"},
			wantEvents: []string{"status req-1", "status req-1", "status req-1"},
		},
		{
			name:      "config error while polling ends it",
			sub:       submission(contract.OpCreate, ""),
			requestID: "req-1",
			status: func(int) (toll.Validation, error) {
				return toll.Validation{}, fmt.Errorf("HTTP 403: %w", failure.ErrConfig)
			},
			wantClass:  failure.Config,
			wantEvents: []string{"status req-1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{}
			api := &fakeAPI{rec: rec, declare: tt.declare, status: tt.status}
			m := fastPolicies(&Movement{API: toll.RoadV2(), Toll: api})
			req := Request{Tenant: "default", Kind: contract.KindRoad, Submission: tt.sub, RequestID: tt.requestID,
				Journal: &fakeJournal{rec: rec, sendingErr: tt.sendingErr, sentErr: tt.sentErr}}
			got, err := m.Handle(t.Context(), req)
			if tt.wantClass != 0 {
				if c := failure.Classify(err); c != tt.wantClass {
					t.Errorf("error %v has class %v, want %v", err, c, tt.wantClass)
				}
			} else if err != nil {
				t.Fatalf("unexpected error: %v", err)
			} else if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", tt.want) {
				t.Errorf("outcome\n got %+v\nwant %+v", got, tt.want)
			}
			if ev := rec.list(); strings.Join(ev, "|") != strings.Join(tt.wantEvents, "|") {
				t.Errorf("calls\n got %q\nwant %q", ev, tt.wantEvents)
			}
		})
	}
}

func TestHandleErrorsCarryContext(t *testing.T) {
	rec := &recorder{}
	api := &fakeAPI{rec: rec, status: func(int) (toll.Validation, error) {
		return toll.Validation{}, fmt.Errorf("HTTP 403: %w", failure.ErrConfig)
	}}
	m := fastPolicies(&Movement{API: toll.RoadV2(), Toll: api})
	_, err := m.Handle(t.Context(), Request{Submission: submission(contract.OpUpdate, "25NO4TU2HUD59UCBT8"), RequestID: "req-7"})
	for _, want := range []string{"road", "update", "house-consignment", "req-7", "HTTP 403"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
}

func TestHandleWarnsOnAmbiguousRetry(t *testing.T) {
	var logs bytes.Buffer
	rec := &recorder{}
	api := &fakeAPI{rec: rec, status: success, declare: func(n int) (string, error) {
		if n == 1 {
			return "", errAmbiguous
		}
		return "req-1", nil
	}}
	// The verdict's line is at debug: the worker's line about the result
	// is the one at info.
	m := fastPolicies(&Movement{API: toll.RoadV2(), Toll: api, Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if _, err := m.Handle(t.Context(), Request{Submission: submission(contract.OpCreate, "")}); err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	if !strings.Contains(out, "level=WARN") || !strings.Contains(out, "Toll may have received") || !strings.Contains(out, "id=s-1") {
		t.Errorf("want a warning about the ambiguous attempt, got:\n%s", out)
	}
	if !strings.Contains(out, `msg="toll accepted the declaration"`) || !strings.Contains(out, "mrn=25NO4TU2HUD59UCBT8") {
		t.Errorf("want the verdict's line with the MRN, got:\n%s", out)
	}
}

func TestHandleRetryBudgetSpent(t *testing.T) {
	rec := &recorder{}
	api := &fakeAPI{rec: rec, declare: func(int) (string, error) { return "", errUnavailable }}
	m := &Movement{API: toll.RoadV2(), Toll: api,
		Retry: RetryPolicy{Initial: time.Millisecond, Max: 2 * time.Millisecond, MaxElapsed: 30 * time.Millisecond}}
	_, err := m.Handle(t.Context(), Request{Submission: submission(contract.OpCreate, "")})
	if !errors.Is(err, errUnavailable) || failure.Classify(err) != failure.Transient {
		t.Errorf("err = %v, want the last transient error", err)
	}
	if n := rec.count("declare"); n < 2 {
		t.Errorf("%d attempts, want retries", n)
	}
}

func TestHandlePollTimeout(t *testing.T) {
	rec := &recorder{}
	api := &fakeAPI{rec: rec, status: func(int) (toll.Validation, error) {
		return toll.Validation{}, fmt.Errorf("404: %w", toll.ErrNotReady)
	}}
	m := &Movement{API: toll.RoadV2(), Toll: api,
		Poll: PollPolicy{Initial: time.Millisecond, Max: 5 * time.Millisecond, Timeout: 50 * time.Millisecond}}
	_, err := m.Handle(t.Context(), Request{Submission: submission(contract.OpCreate, ""), RequestID: "req-1"})
	if !errors.Is(err, ErrPending) || failure.Classify(err) != failure.Transient || !strings.Contains(err.Error(), "req-1") {
		t.Errorf("err = %v, want transient ErrPending naming req-1", err)
	}
	if n := rec.count("status"); n < 2 {
		t.Errorf("%d polls, want several", n)
	}
}

// TestHandleStopsOnCancel cancels the context while the handler waits for
// Toll and while it pauses between polls: it must return soon after.
func TestHandleStopsOnCancel(t *testing.T) {
	for _, name := range []string{"during a call", "during a pause"} {
		t.Run(name, func(t *testing.T) {
			rec := &recorder{}
			api := &fakeAPI{rec: rec}
			m := &Movement{API: toll.RoadV2(), Toll: api, Poll: PollPolicy{Initial: time.Millisecond, Timeout: time.Hour}}
			if name == "during a pause" {
				api.status = func(int) (toll.Validation, error) { return toll.Validation{}, toll.ErrNotReady }
				m.Poll = PollPolicy{Initial: time.Hour, Timeout: time.Hour}
			}
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan error, 1)
			go func() {
				_, err := m.Handle(ctx, Request{Submission: submission(contract.OpCreate, ""), RequestID: "req-1"})
				done <- err
			}()
			if name == "during a call" {
				waitFor(t, func() bool { return rec.count("status") == 1 })
			}
			cancel()
			select {
			case err := <-done:
				if !errors.Is(err, ErrPending) || !errors.Is(err, context.Canceled) {
					t.Errorf("err = %v, want ErrPending after cancellation", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Handle did not return after cancellation")
			}
		})
	}
}

func TestRetryPolicyHonoursRetryAfter(t *testing.T) {
	tests := []struct {
		name      string
		err       error
		budget    time.Duration
		wantCalls int
		wantPause time.Duration
	}{
		{"Retry-After raises the pause", retryAfterErr{40 * time.Millisecond}, 5 * time.Second, 2, 40 * time.Millisecond},
		{"Retry-After beyond the budget returns at once", retryAfterErr{time.Minute}, 5 * time.Second, 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := RetryPolicy{Initial: time.Millisecond, Max: 2 * time.Millisecond, MaxElapsed: tt.budget}
			calls := 0
			var pauses []time.Duration
			err := p.run(t.Context(), func() error {
				calls++
				if calls == 1 {
					return tt.err
				}
				return nil
			}, func(_ error, d time.Duration) { pauses = append(pauses, d) })
			if calls != tt.wantCalls {
				t.Errorf("%d calls, want %d", calls, tt.wantCalls)
			}
			if tt.wantPause == 0 {
				if len(pauses) != 0 || !errors.Is(err, tt.err) {
					t.Errorf("pauses %v, err %v; want no pause and the error", pauses, err)
				}
				if d, ok := failure.RetryAfter(err); !ok || d != time.Minute {
					t.Errorf("returned error lost its Retry-After: %v", d)
				}
				return
			}
			if err != nil || len(pauses) != 1 || pauses[0] != tt.wantPause {
				t.Errorf("err %v pauses %v, want nil and [%v]", err, pauses, tt.wantPause)
			}
		})
	}
}

func TestPollPolicy(t *testing.T) {
	p := PollPolicy{Initial: 100 * time.Millisecond, Max: 400 * time.Millisecond, Multiplier: 2}.withDefaults()
	var got []time.Duration
	for d := p.Initial; len(got) < 5; d = p.next(d) {
		got = append(got, d)
	}
	if want := "[100ms 200ms 400ms 400ms 400ms]"; fmt.Sprint(got) != want {
		t.Errorf("pauses %v, want %s", got, want)
	}
	d := PollPolicy{}.withDefaults()
	if d.Initial != 250*time.Millisecond || d.Max != 2*time.Second || d.Multiplier != 1.2 || d.Timeout != 10*time.Minute {
		t.Errorf("defaults %+v", d)
	}
	r := RetryPolicy{}.withDefaults()
	if r.Initial != 500*time.Millisecond || r.Max != 10*time.Second || r.MaxElapsed != 15*time.Second {
		t.Errorf("retry defaults %+v", r)
	}
}

// waitFor polls cond until it holds or a deadline passes.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			t.Fatal("condition not met before the deadline")
		case <-tick.C:
		}
	}
}
