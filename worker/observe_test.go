package worker

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/digitoll/digitoll-worker/auth"
	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/failure"
	"github.com/digitoll/digitoll-worker/handlers"
	"github.com/digitoll/digitoll-worker/samples"
	"github.com/digitoll/digitoll-worker/simulator"
	"github.com/digitoll/digitoll-worker/telemetry"
	"github.com/digitoll/digitoll-worker/toll"
)

// fakeObserver records what the worker reports, one line per call.
type fakeObserver struct {
	mu       sync.Mutex
	inFlight int
	events   []string
}

func (o *fakeObserver) MessageStarted(contract.Kind, string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.inFlight++
}

func (o *fakeObserver) MessageDone(kind contract.Kind, tenant string, op contract.Operation, outcome string, d time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.inFlight--
	o.events = append(o.events, fmt.Sprintf("done %s/%s %s %s", kind, tenant, op, outcome))
}

func (o *fakeObserver) Retried(kind contract.Kind, tenant, cause string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.events = append(o.events, fmt.Sprintf("retried %s/%s %s", kind, tenant, cause))
}

func (o *fakeObserver) DeadLettered(kind contract.Kind, tenant, reason string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.events = append(o.events, fmt.Sprintf("dead-lettered %s/%s %s", kind, tenant, reason))
}

func (o *fakeObserver) snapshot() (int, []string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := slices.Clone(o.events)
	slices.Sort(out)
	return o.inFlight, out
}

// Every delivery is reported once, with how it ended; hand-backs and dead
// letters with their cause and reason.
func TestObserverHearsHowEachDeliveryEnds(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var flaky atomic.Int32
	h := &fakeHandler{behaviour: func(ctx context.Context, req handlers.Request) (handlers.Outcome, error) {
		switch req.Submission.ID {
		case "rejected":
			return handlers.Outcome{Status: contract.StatusRejected, Errors: []contract.FieldError{{Path: "p", Message: "m"}}}, nil
		case "refused":
			return handlers.Outcome{}, fmt.Errorf("toll answered 422: %w", failure.ErrPermanent)
		case "flaky":
			if flaky.Add(1) == 1 {
				return handlers.Outcome{}, fmt.Errorf("toll answered 503: %w", failure.ErrTransient)
			}
		}
		return accept(ctx, req)
	}}
	obs := &fakeObserver{}
	startWorker(t, e.js, Config{
		Handlers:   map[contract.Kind]Handler{contract.KindRoad: h},
		RetryDelay: func(int) time.Duration { return 10 * time.Millisecond },
		Observer:   obs,
	})
	for _, id := range []string{"accepted", "rejected", "refused", "flaky"} {
		submit(t, e.js, roadSubject, "", roadBody(id), nil)
	}
	submit(t, e.js, roadSubject, "", []byte("{not json"), nil)
	collect(t, e.js, contract.StreamResults, roadResults, 4, 20*time.Second)
	want := []string{
		"dead-lettered road/default malformed",
		"dead-lettered road/default permanent-http",
		"done road/default  dead-lettered",
		"done road/default create accepted",
		"done road/default create accepted",
		"done road/default create dead-lettered",
		"done road/default create rejected",
		"done road/default create retried",
		"retried road/default transient",
	}
	eventually(t, 10*time.Second, "every delivery to be reported", func() bool {
		n, got := obs.snapshot()
		return n == 0 && slices.Equal(got, want)
	})
}

// A submission's traceparent is continued: the delivery's span is its
// child, the Toll and Maskinporten calls and the validation polling are
// spans under the delivery's, and the result carries the delivery's span
// context with the producer's tracestate.
func TestTracingFollowsASubmissionThroughToll(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })

	key, err := simulator.WriteDemoKey(t.TempDir(), "trace-test")
	if err != nil {
		t.Fatal(err)
	}
	sim, err := simulator.Start(simulator.Config{
		ValidationDelay: 50 * time.Millisecond,
		Clients:         []simulator.Client{key.Client(toll.Scope(false, toll.RoadV2().ScopeBase))},
	}, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	signer, err := auth.NewKeySigner(key.Key, key.KeyID)
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: telemetry.Transport(nil, nil)}
	tokens := auth.NewCache(auth.CacheConfig{
		Maskinporten: &auth.Maskinporten{TokenURL: sim.TokenURL(), Issuer: sim.Issuer(), ClientID: key.ClientID, Signer: signer, HTTP: hc},
		Exchanger:    &auth.Exchanger{URL: sim.TollBaseURL() + "/access/external/oauth/token", HTTP: hc},
	})
	t.Cleanup(tokens.Close)
	movement := &handlers.Movement{
		API:  toll.RoadV2(),
		Toll: &toll.Client{BaseURL: sim.TollBaseURL(), HTTP: hc, Tokens: tokens},
		Poll: handlers.PollPolicy{Initial: 20 * time.Millisecond, Max: 50 * time.Millisecond},
	}
	startWorker(t, e.js, Config{Handlers: map[contract.Kind]Handler{contract.KindRoad: probedBy(movement)}, TracerProvider: tp})

	const (
		traceID  = "0af7651916cd43dd8448eb211c80319c"
		parentID = "b7ad6b7169203331"
	)
	submit(t, e.js, roadSubject, "", sampleHouse(t), nats.Header{
		"traceparent": {"00-" + traceID + "-" + parentID + "-01"},
		"tracestate":  {"vendor=x"},
	})
	m := collect(t, e.js, contract.StreamResults, roadResults, 1, 30*time.Second)[0]
	if r := decodeResult(t, m); r.Status != contract.StatusAccepted {
		t.Fatalf("result %+v, want accepted", r)
	}

	var spans tracetest.SpanStubs
	var process tracetest.SpanStub
	eventually(t, 10*time.Second, "the delivery's span to end", func() bool {
		spans = exp.GetSpans()
		for _, s := range spans {
			if s.Name == "process road" {
				process = s
				return true
			}
		}
		return false
	})
	if process.Parent.TraceID().String() != traceID || process.Parent.SpanID().String() != parentID || !process.Parent.IsRemote() {
		t.Fatalf("delivery span's parent %v, want the producer's span", process.Parent)
	}
	sc := process.SpanContext
	if got := m.Headers().Get("traceparent"); got != "00-"+traceID+"-"+sc.SpanID().String()+"-01" {
		t.Errorf("result traceparent %q, want the delivery's span %s in trace %s", got, sc.SpanID(), traceID)
	}
	if got := m.Headers().Get("tracestate"); got != "vendor=x" {
		t.Errorf("result tracestate %q, want the producer's", got)
	}

	byID := map[trace.SpanID]tracetest.SpanStub{}
	for _, s := range spans {
		byID[s.SpanContext.SpanID()] = s
		if s.SpanContext.TraceID().String() != traceID {
			t.Errorf("span %q is in trace %s, want %s", s.Name, s.SpanContext.TraceID(), traceID)
		}
	}
	parentName := func(s tracetest.SpanStub) string { return byID[s.Parent.SpanID()].Name }
	var declare, polls, tokenCalls int
	for _, s := range spans {
		switch {
		case s.Name == "validation road":
			if parentName(s) != "process road" {
				t.Errorf("polling span under %q", parentName(s))
			}
		case strings.HasPrefix(s.Name, "POST ") && strings.HasSuffix(s.Name, "/movement/road/v2/house-consignment"):
			declare++
			if parentName(s) != "process road" {
				t.Errorf("declaration span under %q", parentName(s))
			}
		case strings.HasPrefix(s.Name, "GET ") && strings.HasSuffix(s.Name, "/validation-status/{id}"):
			polls++
			if parentName(s) != "validation road" {
				t.Errorf("validation-status span under %q", parentName(s))
			}
		case strings.HasSuffix(s.Name, "/token"):
			tokenCalls++
		}
	}
	if declare != 1 || polls == 0 || tokenCalls != 2 {
		t.Errorf("%d declaration, %d validation-status and %d token spans; want 1, at least 1, and 2 (grant and exchange)\n%v",
			declare, polls, tokenCalls, spanNames(spans))
	}
}

func spanNames(spans tracetest.SpanStubs) []string {
	out := make([]string, len(spans))
	for i, s := range spans {
		out[i] = s.Name
	}
	return out
}

// sampleHouse is the road sample house consignment.
func sampleHouse(t *testing.T) []byte {
	t.Helper()
	all, err := samples.Load(contract.KindRoad)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range all {
		if s.Name == "03-house.json" {
			return s.Body
		}
	}
	t.Fatal("sample 03-house.json is missing")
	return nil
}

// Without tracing the result carries the producer's trace context on,
// however the producer spelt the header; an invalid traceparent is not
// carried.
func TestTraceContextPassesOnWithoutTracing(t *testing.T) {
	const tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	res := contract.Result{ID: "x", Tenant: "acme", Kind: contract.KindRoad, Status: contract.StatusAccepted}
	for name, tc := range map[string]struct {
		in     nats.Header
		parent string
	}{
		"lower case":       {nats.Header{"traceparent": {tp}, "tracestate": {"vendor=x"}}, tp},
		"capitalised":      {nats.Header{"Traceparent": {tp}, "Tracestate": {"vendor=x"}}, tp},
		"invalid":          {nats.Header{"traceparent": {"00-aa-bb-01"}}, ""},
		"no trace context": {nats.Header{"Digitoll-Shipper": {"acme"}}, ""},
	} {
		t.Run(name, func(t *testing.T) {
			ctx := propagation.TraceContext{}.Extract(context.Background(), headerCarrier(tc.in))
			ctx, span := noop.NewTracerProvider().Tracer("test").Start(ctx, "process road")
			defer span.End()
			m, err := resultMsg(ctx, res, tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if got := m.Header.Get("traceparent"); got != tc.parent {
				t.Errorf("traceparent %q, want %q", got, tc.parent)
			}
			wantState := ""
			if tc.parent != "" {
				wantState = "vendor=x"
			}
			if got := m.Header.Get("tracestate"); got != wantState {
				t.Errorf("tracestate %q, want %q", got, wantState)
			}
			for _, k := range []string{"Traceparent", "Tracestate"} {
				if _, ok := m.Header[k]; ok {
					t.Errorf("the producer's %s header was copied as well", k)
				}
			}
		})
	}
}
