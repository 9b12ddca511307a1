package toll

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/failure"
)

// NotProcessed is true only for what certainly did not make Toll act: the
// send journal releases its record on it, and everything else keeps
// "Toll may hold it".
func TestNotProcessed(t *testing.T) {
	httpErr := func(status int) error {
		return newHTTPError("POST", "movement/road/v2/transport", status, http.Header{}, nil, time.Now())
	}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"429", httpErr(http.StatusTooManyRequests), true},
		{"503", httpErr(http.StatusServiceUnavailable), true},
		{"400 rejection", &RejectedError{Status: 400}, true},
		{"401 after a fresh token", httpErr(http.StatusUnauthorized), true},
		{"403", httpErr(http.StatusForbidden), true},
		{"413", httpErr(http.StatusRequestEntityTooLarge), true},
		{"500", httpErr(http.StatusInternalServerError), false},
		{"502", httpErr(http.StatusBadGateway), false},
		{"504", httpErr(http.StatusGatewayTimeout), false},
		{"2xx without a requestId", httpErr(http.StatusAccepted), false},
		{"connection refused", &NetworkError{Method: "POST", Err: errors.New("connection refused")}, true},
		{"reset after the request was written", &NetworkError{Method: "POST", Written: true, Err: errors.New("EOF")}, false},
		{"rate-limit wait or token", fmt.Errorf("toll: POST x: %w: %w", ErrNotSent, failure.ErrTransient), true},
		{"wrapped 503", fmt.Errorf("attempt 3: %w", httpErr(http.StatusServiceUnavailable)), true},
		{"unknown error", errors.New("something"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := NotProcessed(tt.err); got != tt.want {
				t.Errorf("NotProcessed(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

func TestSplitEarlierAttempt(t *testing.T) {
	errs := []contract.FieldError{
		{Path: "consignmentHouseLevel.transportDocumentHouseLevel.documentNumber", Message: "Transport document number HWB-1 is already in use"},
		{Message: "One or more transport documents are already submitted"},
		{Path: "mrn", Message: "Declaration 25NO4TU2HUD59UCBT8 is cancelled"},
		{Path: "documentIssueDate", Message: "must not be null"},
	}
	earlier, other := SplitEarlierAttempt(errs)
	if len(earlier) != 3 || len(other) != 1 || other[0].Path != "documentIssueDate" {
		t.Errorf("earlier %v, other %v; want the three duplicate errors apart from the content error", earlier, other)
	}
}

// fakeLimiter records its waits and fails them when told to.
type fakeLimiter struct {
	rec func(string)
	err error
}

func (l *fakeLimiter) Wait(context.Context, *url.URL) error {
	l.rec("wait")
	return l.err
}

// The hook of WithBeforeSend runs after the rate limiter's wait and the
// token, right before the request leaves; when any of them fails the
// call wraps ErrNotSent and nothing reaches Toll.
func TestBeforeSendRunsLastBeforeTheRequest(t *testing.T) {
	var (
		mu     sync.Mutex
		events []string
	)
	rec := func(e string) {
		mu.Lock()
		defer mu.Unlock()
		events = append(events, e)
	}
	tests := []struct {
		name     string
		limitErr error
		tokenErr error
		hookErr  error
		want     string
		sent     int
	}{
		{"all pass", nil, nil, nil, "[wait hook]", 1},
		{"rate-limit wait fails", errors.New("limited"), nil, nil, "[wait]", 0},
		{"token fails", nil, fmt.Errorf("maskinporten down: %w", failure.ErrTransient), nil, "[wait]", 0},
		{"hook fails", nil, nil, errors.New("journal down"), "[wait hook]", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mu.Lock()
			events = nil
			mu.Unlock()
			f, srv := newFakeToll(t, reply{status: http.StatusAccepted, body: `{"requestId":"r-1"}`})
			c := &Client{BaseURL: srv.URL + "/api/", HTTP: srv.Client(), Tokens: &fakeTokens{err: tt.tokenErr}, Timeout: 5 * time.Second}
			c.Limiter = &fakeLimiter{rec: rec, err: tt.limitErr}
			ctx := WithBeforeSend(t.Context(), func(context.Context) error {
				rec("hook")
				return tt.hookErr
			})
			_, err := c.Declare(ctx, RoadV2(), contract.OpCreate, contract.LevelTransport, "", []byte(`{}`))
			mu.Lock()
			got := fmt.Sprint(events)
			mu.Unlock()
			if got != tt.want {
				t.Errorf("events %s, want %s", got, tt.want)
			}
			if n := len(f.seen()); n != tt.sent {
				t.Errorf("%d requests reached Toll, want %d", n, tt.sent)
			}
			if tt.sent == 0 && (!errors.Is(err, ErrNotSent) || !NotProcessed(err)) {
				t.Errorf("err %v, want one wrapping ErrNotSent", err)
			}
			if tt.sent == 1 && err != nil {
				t.Errorf("err %v", err)
			}
		})
	}
}

// A connection refused is not processed, whatever the method.
func TestRefusedConnectionIsNotProcessed(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c := &Client{BaseURL: "http://" + addr, HTTP: &http.Client{}, Tokens: &fakeTokens{}}
	_, err = c.Declare(t.Context(), RoadV2(), contract.OpCreate, contract.LevelTransport, "", []byte(`{}`))
	if !NotProcessed(err) {
		t.Errorf("NotProcessed(%v) = false, want true", err)
	}
}
