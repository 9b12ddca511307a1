package worker

import (
	"time"

	"github.com/digitoll/digitoll-worker/failure"
)

// Dead-letter reasons of docs/contract.md that the worker uses.
const (
	reasonMalformed        = "malformed"
	reasonPermanentHTTP    = "permanent-http"
	reasonDeadline         = "deadline"
	reasonRetriesExhausted = "retries-exhausted"
	// reasonPanic: the handler panicked on the message; the stack is in
	// the worker's log.
	reasonPanic = "panic"
)

// shutdownNakDelay is the redelivery delay of a message whose handler was
// cancelled by shutdown: short, so another process picks it up soon, but
// not zero, so that this process does not get it straight back while it
// is still draining.
const shutdownNakDelay = time.Second

// verb is what happens to a message after a failed attempt.
type verb int

const (
	// nak: redeliver after delay.
	nak verb = iota + 1
	// deadLetter: publish to the DLQ with reason, then ack.
	deadLetter
)

// action is the decision about a failed attempt.
type action struct {
	verb   verb
	delay  time.Duration // nak
	reason string        // deadLetter
	// configFault marks a nak caused by the worker's own configuration,
	// which the worker logs as a warning with the remedy.
	configFault bool
	// shutdown marks a nak caused by this process shutting down, which
	// is not worth more than a debug line.
	shutdown bool
}

// attempt is what decideFailure needs to know about a failed attempt.
type attempt struct {
	err         error
	delivery    int
	now         time.Time
	deadline    time.Time
	maxAttempts int
	// shuttingDown: this process cancelled the handler.
	shuttingDown bool
}

// policy is the part of Config that shapes decisions.
type policy struct {
	retryDelay       func(delivery int) time.Duration
	configRetryDelay time.Duration
}

// decideFailure maps a failed attempt to what the worker does with the
// message. The order matters: a message that cannot be read or that Toll
// refuses for good is dead-lettered even during shutdown; a transient
// failure caused by our own shutdown costs no attempt and no deadline.
func (p policy) decideFailure(a attempt) action {
	switch failure.Classify(a.err) {
	case failure.Poison:
		return action{verb: deadLetter, reason: reasonOr(a.err, reasonMalformed)}
	case failure.Permanent:
		return action{verb: deadLetter, reason: reasonOr(a.err, reasonPermanentHTTP)}
	case failure.Config:
		// Retrying cannot fix configuration; the delay only keeps the
		// message from spinning until an operator does.
		return action{verb: nak, delay: p.configRetryDelay, configFault: true}
	}
	// Transient, including unmarked errors.
	switch {
	case a.shuttingDown:
		return action{verb: nak, delay: shutdownNakDelay, shutdown: true}
	case !a.now.Before(a.deadline):
		return action{verb: deadLetter, reason: reasonDeadline}
	case a.maxAttempts > 0 && a.delivery >= a.maxAttempts:
		return action{verb: deadLetter, reason: reasonRetriesExhausted}
	}
	delay := p.retryDelay(a.delivery)
	if ra, ok := failure.RetryAfter(a.err); ok && ra > delay {
		delay = ra
	}
	// Waiting past the deadline would only postpone the dead letter; come
	// back at the deadline instead, so it is decided on time.
	if until := a.deadline.Sub(a.now); delay > until {
		delay = until
	}
	return action{verb: nak, delay: delay}
}

// reasonOr is the dead-letter reason err carries (too-large, unsupported,
// …), or def.
func reasonOr(err error, def string) string {
	if r, ok := failure.Reason(err); ok && r != "" {
		return r
	}
	return def
}
