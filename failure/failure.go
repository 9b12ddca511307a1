// Package failure classifies errors once, in one place, into what the
// worker does about them. Packages that talk to the outside world (auth,
// toll, handlers) mark their errors with the sentinels below, using %w or
// an Is method; the worker asks Classify and never inspects HTTP statuses
// or OAuth codes itself.
package failure

import (
	"errors"
	"time"
)

// Class is what the worker does with a failed message.
type Class int

// The classes, from the worker's point of view.
const (
	// Transient failures may clear by themselves: network errors,
	// timeouts, 5xx, 429, an identity provider that is down. Retry later;
	// never dead-letter while the message's deadline has not passed.
	Transient Class = iota + 1
	// Config failures are the worker's own configuration: a scope not
	// granted, a key Toll does not know, a token refused right after it
	// was issued, clock skew. Retrying the message cannot help; the kind
	// must pause until an operator fixes it. Messages are kept.
	Config
	// Permanent failures are answers that will not change for this
	// message (an undocumented 4xx from Toll). Dead-letter it.
	Permanent
	// Poison is a message that cannot even be read. Dead-letter it at once.
	Poison
)

func (c Class) String() string {
	switch c {
	case Transient:
		return "transient"
	case Config:
		return "config"
	case Permanent:
		return "permanent"
	case Poison:
		return "poison"
	default:
		return "unknown"
	}
}

// Sentinels that errors wrap to state their class.
var (
	ErrTransient = errors.New("transient failure")
	ErrConfig    = errors.New("configuration failure")
	ErrPermanent = errors.New("permanent failure")
	ErrPoison    = errors.New("unprocessable message")
)

// Classify maps err to a class. Errors that carry no mark are treated as
// transient: an unknown error must not destroy a message, and the
// message's deadline bounds how long it is retried.
func Classify(err error) Class {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, ErrPoison):
		return Poison
	case errors.Is(err, ErrConfig):
		return Config
	case errors.Is(err, ErrPermanent):
		return Permanent
	case errors.Is(err, ErrTransient):
		return Transient
	default:
		// Network errors, timeouts and cancellations land here too.
		return Transient
	}
}

// RetryAfter returns the delay a server asked for (HTTP Retry-After), if
// any error in err's chain carries one.
func RetryAfter(err error) (time.Duration, bool) {
	var ra interface{ RetryAfter() time.Duration }
	if errors.As(err, &ra) {
		if d := ra.RetryAfter(); d > 0 {
			return d, true
		}
	}
	return 0, false
}

// Mark wraps err so that it classifies as class while keeping its text
// and chain.
func Mark(err error, class Class) error {
	if err == nil {
		return nil
	}
	var s error
	switch class {
	case Transient:
		s = ErrTransient
	case Config:
		s = ErrConfig
	case Permanent:
		s = ErrPermanent
	case Poison:
		s = ErrPoison
	default:
		return err
	}
	return &marked{err: err, class: s}
}

type marked struct {
	err   error
	class error
}

func (m *marked) Error() string   { return m.err.Error() }
func (m *marked) Unwrap() []error { return []error{m.err, m.class} }

// WithReason marks err with class and a short dead-letter reason code
// (docs/contract.md: malformed, unsupported, too-large, …) for a message that
// must not be retried, so the DLQ entry says why in the operator's terms.
func WithReason(err error, class Class, reason string) error {
	if err == nil {
		return nil
	}
	return &reasoned{error: Mark(err, class), reason: reason}
}

// Reason returns the dead-letter reason code carried by err, if any.
func Reason(err error) (string, bool) {
	var r *reasoned
	if errors.As(err, &r) {
		return r.reason, true
	}
	return "", false
}

type reasoned struct {
	error
	reason string
}

func (r *reasoned) Unwrap() error { return r.error }
