package handlers

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/toll"
)

// fakeObserver records what a handler reports.
type fakeObserver struct {
	mu       sync.Mutex
	retries  []contract.Kind
	verdicts []string
}

func (o *fakeObserver) CallRetried(kind contract.Kind) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.retries = append(o.retries, kind)
}

func (o *fakeObserver) ValidationWaited(kind contract.Kind, verdict string, d time.Duration, polls int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.verdicts = append(o.verdicts, string(kind)+" "+verdict)
}

// The observer hears of each in-process retry and of how each delivery's
// polling ended.
func TestMovementReportsRetriesAndVerdicts(t *testing.T) {
	failure := func(int) (toll.Validation, error) {
		return toll.Validation{Status: toll.ValidationFailure, RequestID: "req-1"}, nil
	}
	tests := []struct {
		name         string
		declare      func(n int) (string, error)
		status       func(n int) (toll.Validation, error)
		wantRetries  int
		wantVerdicts []string
	}{
		{"accepted at once", func(int) (string, error) { return "req-1", nil }, success, 0, []string{"road success"}},
		{"accepted after two retries", func(n int) (string, error) {
			if n < 3 {
				return "", errUnavailable
			}
			return "req-1", nil
		}, success, 2, []string{"road success"}},
		{"refused", func(int) (string, error) { return "req-1", nil }, failure, 0, []string{"road failure"}},
		{"still pending", func(int) (string, error) { return "req-1", nil }, nil, 0, []string{"road pending"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			obs := &fakeObserver{}
			m := fastPolicies(&Movement{API: toll.RoadV2(), Toll: &fakeAPI{rec: &recorder{}, declare: tc.declare, status: tc.status}, Observer: obs})
			m.Poll.Timeout = 50 * time.Millisecond
			_, _ = m.Handle(t.Context(), Request{Submission: submission(contract.OpCreate, "")})
			if len(obs.retries) != tc.wantRetries || !slices.Equal(obs.verdicts, tc.wantVerdicts) {
				t.Errorf("retries %v, verdicts %v; want %d retries, verdicts %v", obs.retries, obs.verdicts, tc.wantRetries, tc.wantVerdicts)
			}
		})
	}
}

// Polling is one span, a child of the message's span, that says how many
// polls it took and the verdict; without a span in the context nothing is
// recorded.
func TestPollingIsASpanOfTheMessage(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })

	m := fastPolicies(&Movement{API: toll.RoadV2(), Toll: &fakeAPI{rec: &recorder{}, declare: func(int) (string, error) { return "req-1", nil }, status: success}})
	if _, err := m.Handle(t.Context(), Request{Submission: submission(contract.OpCreate, "")}); err != nil {
		t.Fatal(err)
	}
	if n := len(exp.GetSpans()); n != 0 {
		t.Fatalf("%d spans recorded without a span in the context", n)
	}

	ctx, parent := tp.Tracer("test").Start(t.Context(), "process road")
	if _, err := m.Handle(ctx, Request{Submission: submission(contract.OpCreate, "")}); err != nil {
		t.Fatal(err)
	}
	parent.End()
	spans := exp.GetSpans()
	if len(spans) != 2 {
		t.Fatalf("%d spans, want the message's and the polling's", len(spans))
	}
	poll := spans[0]
	if poll.Name != "validation road" || poll.Parent.SpanID() != parent.SpanContext().SpanID() {
		t.Fatalf("span %q with parent %s, want %q under %s", poll.Name, poll.Parent.SpanID(), "validation road", parent.SpanContext().SpanID())
	}
	attrs := map[string]string{}
	for _, a := range poll.Attributes {
		attrs[string(a.Key)] = a.Value.String()
	}
	if attrs["digitoll.request_id"] != "req-1" || attrs["digitoll.verdict"] != VerdictSuccess || attrs["digitoll.polls"] != "1" {
		t.Errorf("polling span attributes %v", attrs)
	}
}
