package failure_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/digitoll/digitoll-worker/failure"
)

type retryAfterError struct{ d time.Duration }

func (e retryAfterError) Error() string             { return "slow down" }
func (e retryAfterError) RetryAfter() time.Duration { return e.d }
func (e retryAfterError) Unwrap() error             { return failure.ErrTransient }

func TestClassify(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want failure.Class
	}{
		{"nil", nil, 0},
		{"unmarked is transient", errors.New("boom"), failure.Transient},
		{"deadline", fmt.Errorf("call: %w", context.DeadlineExceeded), failure.Transient},
		{"config", fmt.Errorf("scope: %w", failure.ErrConfig), failure.Config},
		{"permanent", fmt.Errorf("418: %w", failure.ErrPermanent), failure.Permanent},
		{"poison", failure.Mark(errors.New("bad json"), failure.Poison), failure.Poison},
		{"poison wins over transient", fmt.Errorf("%w: %w", failure.ErrTransient, failure.ErrPoison), failure.Poison},
		{"config wins over transient", fmt.Errorf("%w: %w", failure.ErrTransient, failure.ErrConfig), failure.Config},
		{"marked keeps text", failure.Mark(errors.New("x"), failure.Permanent), failure.Permanent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := failure.Classify(tt.err); got != tt.want {
				t.Errorf("Classify(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

func TestMarkKeepsChainAndText(t *testing.T) {
	base := errors.New("base")
	err := failure.Mark(fmt.Errorf("wrapped: %w", base), failure.Config)
	if !errors.Is(err, base) || err.Error() != "wrapped: base" {
		t.Errorf("Mark lost chain or text: %v", err)
	}
	if failure.Mark(nil, failure.Config) != nil {
		t.Error("Mark(nil) != nil")
	}
}

func TestRetryAfter(t *testing.T) {
	d, ok := failure.RetryAfter(fmt.Errorf("toll: %w", retryAfterError{3 * time.Second}))
	if !ok || d != 3*time.Second {
		t.Errorf("RetryAfter = %v %v", d, ok)
	}
	if _, ok := failure.RetryAfter(errors.New("x")); ok {
		t.Error("RetryAfter on plain error")
	}
}

func TestWithReason(t *testing.T) {
	err := fmt.Errorf("document: %w", failure.WithReason(errors.New("11 MB is over the 10 MB limit"), failure.Poison, "too-large"))
	if failure.Classify(err) != failure.Poison {
		t.Errorf("class %v", failure.Classify(err))
	}
	if r, ok := failure.Reason(err); !ok || r != "too-large" {
		t.Errorf("Reason = %q %v", r, ok)
	}
	if _, ok := failure.Reason(errors.New("x")); ok {
		t.Error("plain error has a reason")
	}
	if err.Error() != "document: 11 MB is over the 10 MB limit" {
		t.Errorf("text %q", err)
	}
}
