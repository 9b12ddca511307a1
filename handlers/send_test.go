package handlers

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/failure"
	"github.com/digitoll/digitoll-worker/toll"
)

// errTokenFailed is a call that ended before its request could leave.
var errTokenFailed = fmt.Errorf("token: %w: %w", failure.ErrTransient, toll.ErrNotSent)

// Every handler's Toll call goes through sendCall, so the protocol is
// held here once: the token (or anything else that fails before the
// request can leave) leaves no record; Sending comes right before the
// bytes and its record is released at once when the attempt ends without
// an answer, saying whether Toll may have acted; the id is recorded with
// Sent; after an attempt that may have reached Toll the next one looks
// first; a refused Sending stops the call before it is made.
func TestSendCallKeepsTheProtocol(t *testing.T) {
	notWritten := &toll.NetworkError{Method: "POST", Path: "x", Err: errors.New("connection reset before the body was written")}
	rejection := &toll.RejectedError{Status: 400, Errors: []contract.FieldError{{Path: "x", Message: "bad"}}}
	for _, tc := range []struct {
		name string
		// answers are the attempts' outcomes in order; "" is success.
		answers    []error
		sendingErr error
		found      bool // beforeRepeat finds what was sent
		want       string
		wantErr    bool
		wantResult sendResult
	}{
		{name: "answered", answers: []error{nil},
			want: "sending call sent id-1", wantResult: sendResult{id: "id-1", attempts: 1}},
		{name: "token failed, then answered", answers: []error{errTokenFailed, nil},
			want: "sending call sent id-2", wantResult: sendResult{id: "id-2", attempts: 2}},
		{name: "not written in full, then answered", answers: []error{notWritten, nil},
			want: "sending call release(maybeSent=false) sending call sent id-2", wantResult: sendResult{id: "id-2", attempts: 2}},
		{name: "answer lost, then answered", answers: []error{errAmbiguous, nil},
			want: "sending call release(maybeSent=true) look sending call sent id-2", wantResult: sendResult{id: "id-2", attempts: 2, maybeSent: true}},
		{name: "answer lost, then found", answers: []error{errAmbiguous, nil}, found: true,
			want: "sending call release(maybeSent=true) look", wantResult: sendResult{found: true, attempts: 1, maybeSent: true}},
		{name: "rejected", answers: []error{rejection},
			want: "sending call release(maybeSent=false)", wantResult: sendResult{rejected: rejection, attempts: 1}},
		{name: "sending refused", answers: []error{nil}, sendingErr: errors.New("kv down"),
			want: "sending refused", wantErr: true, wantResult: sendResult{attempts: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := &releasingJournal{sendingErr: tc.sendingErr}
			n := 0
			res, err := sendCall{
				kind:    contract.KindRoad,
				retry:   RetryPolicy{Initial: time.Millisecond, Max: time.Millisecond, MaxElapsed: 2 * time.Second},
				journal: j,
				attempt: func(ctx context.Context) (string, error) {
					n++
					if errors.Is(tc.answers[n-1], toll.ErrNotSent) {
						return "", tc.answers[n-1]
					}
					// Where a real client's request would leave.
					if err := toll.RunBeforeSend(ctx); err != nil {
						return "", fmt.Errorf("%w: %w", toll.ErrNotSent, err)
					}
					j.add("call")
					return fmt.Sprintf("id-%d", n), tc.answers[n-1]
				},
				beforeRepeat: func() bool { j.add("look"); return tc.found },
			}.run(t.Context())
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if got := j.list(); got != tc.want {
				t.Errorf("journal and calls: %q, want %q", got, tc.want)
			}
			if res != tc.wantResult {
				t.Errorf("result %+v, want %+v", res, tc.wantResult)
			}
		})
	}
}

// recordID decides the id that is recorded and reported.
func TestSendCallRecordsTheIDItIsGiven(t *testing.T) {
	j := &releasingJournal{}
	res, err := sendCall{
		journal: j,
		attempt: func(ctx context.Context) (string, error) { return "", toll.RunBeforeSend(ctx) },
		recordID: func(id string) string {
			if id == "" {
				return "upload-abc"
			}
			return id
		},
	}.run(t.Context())
	if err != nil || res.id != "upload-abc" || j.list() != "sending sent upload-abc" {
		t.Errorf("%+v, %v, journal %q; want upload-abc recorded", res, err, j.list())
	}
}
