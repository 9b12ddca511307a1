package handlers

import (
	"context"
	"errors"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/digitoll/digitoll-worker/failure"
	"github.com/digitoll/digitoll-worker/toll"
)

// RetryPolicy bounds the in-process retries of a transient failure of one
// Toll call. The budget is short on purpose: a longer outage is the
// worker's to handle (it naks the message with a delay or pauses the
// kind), not something to sit out while holding the message. Zero fields
// take the defaults.
type RetryPolicy struct {
	// Initial is the first pause (default 500ms); pauses grow by 1.5 with
	// ±50 % jitter.
	Initial time.Duration
	// Max caps one pause (default 10s).
	Max time.Duration
	// MaxElapsed is the whole budget (default 15s); when the next pause
	// would cross it the last error is returned.
	MaxElapsed time.Duration
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.Initial <= 0 {
		p.Initial = 500 * time.Millisecond
	}
	if p.Max <= 0 {
		p.Max = 10 * time.Second
	}
	if p.MaxElapsed <= 0 {
		p.MaxElapsed = 15 * time.Second
	}
	return p
}

// run calls op until it succeeds, returns a *backoff.PermanentError, or the
// budget or ctx runs out, and returns op's last error (unwrapped from
// PermanentError). A Retry-After the server sent raises the next pause to
// at least that; if it does not fit in the budget the error is returned at
// once, still carrying the delay for the worker. notify is called before
// each pause.
func (p RetryPolicy) run(ctx context.Context, op func() error, notify func(err error, pause time.Duration)) error {
	p = p.withDefaults()
	exp := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(p.Initial),
		backoff.WithMaxInterval(p.Max),
		backoff.WithMaxElapsedTime(p.MaxElapsed),
	)
	b := backoff.WithContext(exp, ctx)
	// The loop ends: ExponentialBackOff returns Stop once MaxElapsed
	// (never zero here) has passed, and WithContext once ctx is done.
	for {
		err := op()
		if err == nil {
			return nil
		}
		var perm *backoff.PermanentError
		if errors.As(err, &perm) {
			return perm.Err
		}
		pause := b.NextBackOff()
		if pause == backoff.Stop {
			return err
		}
		if ra, ok := failure.RetryAfter(err); ok && ra > pause {
			if exp.GetElapsedTime()+ra > p.MaxElapsed {
				return err
			}
			pause = ra
		}
		notify(err, pause)
		if sleep(ctx, pause) != nil {
			return err
		}
	}
}

// retryable reports whether a failed call may be repeated in process:
// only transient failures. A rejection is Toll's answer, and config,
// permanent and poison failures will not change by trying again.
func retryable(err error) bool {
	var rej *toll.RejectedError
	if errors.As(err, &rej) {
		return false
	}
	return failure.Classify(err) == failure.Transient
}

// PollPolicy paces the polling of Toll's validation status. Results
// usually come within seconds but have taken up to ~45 s, so pauses grow
// from Initial by Multiplier up to Max until Timeout. Zero fields take the
// defaults.
//
// The defaults (250 ms, growing by 1.2, at most 2 s) find a verdict soon
// after Toll has it: a poll answers up to one pause late, and the
// benchmark measured 0.95 of the ideal throughput with them against 0.79
// with 500 ms × 1.5 up to 10 s, for about twice the status polls. With a
// Pacer, that schedule is where polling starts; the pacer then skips the
// polls that recent verdicts say are futile.
type PollPolicy struct {
	// Initial is the pause before the first poll (default 250ms).
	Initial time.Duration
	// Max caps one pause (default 2s).
	Max time.Duration
	// Multiplier grows the pause after each poll (default 1.2; values
	// below 1 are taken as 1).
	Multiplier float64
	// Timeout bounds the polling of one Handle call (default 10m). The
	// requestId is journaled, so giving up here loses nothing: a
	// redelivery resumes polling.
	Timeout time.Duration
	// Pacer, if set, learns when verdicts come and paces the polls of
	// requests the handler has just sent (see Pacer); handlers of every
	// API and tenant may share it. Nil polls on the schedule above.
	Pacer *Pacer
}

func (p PollPolicy) withDefaults() PollPolicy {
	if p.Initial <= 0 {
		p.Initial = 250 * time.Millisecond
	}
	if p.Max <= 0 {
		p.Max = 2 * time.Second
	}
	if p.Multiplier == 0 {
		p.Multiplier = 1.2
	}
	p.Multiplier = max(p.Multiplier, 1)
	if p.Timeout <= 0 {
		p.Timeout = 10 * time.Minute
	}
	return p
}

// next is the pause after pause.
func (p PollPolicy) next(pause time.Duration) time.Duration {
	return min(time.Duration(float64(pause)*p.Multiplier), p.Max)
}

// sleep waits for d or until ctx is done, whichever comes first, and
// returns ctx's error in the latter case.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
