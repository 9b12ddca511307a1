package worker

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"time"

	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/digitoll/digitoll-worker/contract"
)

// Defaults of Config.
const (
	DefaultConcurrency      = 64
	DefaultAckWait          = 60 * time.Second
	DefaultMaxAckPending    = 1000
	DefaultMessageDeadline  = 24 * time.Hour
	DefaultConfigRetryDelay = time.Minute
	DefaultShutdownGrace    = 30 * time.Second
	DefaultRetryMin         = 5 * time.Second
	DefaultRetryMax         = 5 * time.Minute
	DefaultProbeInterval    = 15 * time.Second
	DefaultPauseFor         = time.Minute
	DefaultOutageThreshold  = 10
	DefaultSendLease        = time.Minute
	DefaultLaneSync         = 3 * time.Second

	// minAckWait keeps the heartbeat (every AckWait/3) well above the
	// round trip of an InProgress on a loaded server.
	minAckWait = time.Second
)

// ErrInvalidConfig is wrapped by every error New returns for a bad Config.
var ErrInvalidConfig = errors.New("invalid worker config")

// Config configures a Worker. Zero values take the documented defaults.
type Config struct {
	// Handlers carries out each kind; the worker consumes only the kinds
	// present here. At least one is required.
	Handlers map[contract.Kind]Handler
	// Concurrency is how many messages this process works on at once,
	// across all kinds; default 64.
	Concurrency int
	// KindConcurrency caps the messages of one kind in progress at once,
	// within Concurrency, so that one kind (large document uploads, a
	// burst of road declarations) cannot take every slot. Kinds not named
	// share the whole pool; caps of kinds without a handler are ignored.
	KindConcurrency map[contract.Kind]int
	// Tenants are the tenants the worker serves, one or many; required.
	// Each tenant's submissions of each kind come through a consumer of
	// their own (a lane), tenants waiting for a slot are served in turn,
	// each has a cap of messages in progress, and a tenant whose
	// configuration is refused is paused alone. See lanes.go.
	Tenants TenantSource
	// TenantConcurrency caps the messages in progress of each tenant
	// without a cap of its own; default three quarters of Concurrency (at
	// least 1), so that one tenant's flood leaves a quarter of the slots
	// free for the others the moment they publish, and a lone busy tenant
	// still has most of them.
	TenantConcurrency int
	// LaneSync is how often the lanes are matched again with Tenants and
	// with the subjects holding messages; default 3 s.
	LaneSync time.Duration
	// AckWait is how long the server waits for an ack or heartbeat
	// before redelivering; default 60 s, at least 1 s. The worker sends a
	// heartbeat every AckWait/3 while a message is in progress, so it
	// bounds how quickly a crashed worker's messages move on, not how long
	// a message may take.
	AckWait time.Duration
	// MaxAckPending caps unacknowledged messages per kind across every
	// process sharing the consumer; default 1000, at least Concurrency.
	MaxAckPending int
	// MessageDeadline is how long after it was published a message may
	// still be retried; a transient failure past it is dead-lettered with
	// reason "deadline". Default 24 h.
	MessageDeadline time.Duration
	// MaxAttempts, when above 0, dead-letters a message with reason
	// "retries-exhausted" after that many deliveries end in a transient
	// failure. Default 0: deliveries are no reason to give up (an outage
	// burns them quickly), the deadline is.
	MaxAttempts int
	// RetryDelay is how long to wait before redelivering after a
	// transient failure on the given delivery (1-based); default
	// Backoff(5 s, 5 min). A server's Retry-After wins when longer.
	RetryDelay func(delivery int) time.Duration
	// ConfigRetryDelay is the redelivery delay after a configuration
	// failure (a scope not granted, an unknown key); default 1 min.
	ConfigRetryDelay time.Duration
	// ProbeInterval is how often a paused lane is probed (see
	// Handler.ProbeTenant); default 15 s.
	ProbeInterval time.Duration
	// PauseFor is how long a pause of a lane's consumer lasts on the
	// server unless a probe extends or ends it; default 1 min. It bounds
	// how long a lane stays paused if the process that paused it dies.
	PauseFor time.Duration
	// OutageThreshold is how many transient failures in a row, with no
	// success between them, make the worker treat a kind's dependency as
	// down and pause the kind; default 10, -1 never.
	OutageThreshold int
	// SendLease is how long a Toll call begun by one delivery is presumed
	// alive: a later delivery that finds it unanswered within the lease
	// waits instead of sending again. It must cover an HTTP call and
	// recording its answer; default 1 min. Past it, the delivery that
	// began the call is presumed dead and the call is made again.
	SendLease time.Duration
	// ShutdownGrace is how long in-flight messages may finish after Run's
	// context is done before their handlers are cancelled; default 30 s.
	ShutdownGrace time.Duration
	// Logger receives the worker's logs; nil discards them.
	Logger *slog.Logger
	// Observer is told how each delivery goes, for metrics; nil: nobody.
	Observer Observer
	// TracerProvider makes a span for each delivery, a child of the
	// submission's traceparent; the result carries the span's context.
	// Nil makes no spans: the result then carries the submission's trace
	// context on unchanged.
	TracerProvider trace.TracerProvider
	// Now tells the time; default time.Now. Tests set it.
	Now func() time.Time
}

func (c Config) withDefaults() Config {
	// A copy: a caller changing its map later must not change a worker.
	c.KindConcurrency = maps.Clone(c.KindConcurrency)
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.AckWait == 0 {
		c.AckWait = DefaultAckWait
	}
	if c.TenantConcurrency == 0 {
		c.TenantConcurrency = max(1, c.Concurrency*3/4)
	}
	if c.LaneSync == 0 {
		c.LaneSync = DefaultLaneSync
	}
	if c.MaxAckPending == 0 {
		c.MaxAckPending = max(DefaultMaxAckPending, c.Concurrency)
	}
	if c.MessageDeadline == 0 {
		c.MessageDeadline = DefaultMessageDeadline
	}
	if c.RetryDelay == nil {
		c.RetryDelay = Backoff(DefaultRetryMin, DefaultRetryMax)
	}
	if c.ConfigRetryDelay == 0 {
		c.ConfigRetryDelay = DefaultConfigRetryDelay
	}
	if c.ShutdownGrace == 0 {
		c.ShutdownGrace = DefaultShutdownGrace
	}
	if c.ProbeInterval == 0 {
		c.ProbeInterval = DefaultProbeInterval
	}
	if c.PauseFor == 0 {
		c.PauseFor = DefaultPauseFor
	}
	if c.OutageThreshold == 0 {
		c.OutageThreshold = DefaultOutageThreshold
	}
	if c.SendLease == 0 {
		c.SendLease = DefaultSendLease
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Observer == nil {
		c.Observer = nopObserver{}
	}
	if c.TracerProvider == nil {
		c.TracerProvider = noop.NewTracerProvider()
	}
	return c
}

func (c Config) validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
	}
	if len(c.Handlers) == 0 {
		return bad("no handlers: the worker would consume nothing")
	}
	if c.Tenants == nil {
		return bad("no Tenants: the worker would serve no tenant")
	}
	for k, h := range c.Handlers {
		if _, err := contract.ParseKind(string(k)); err != nil {
			return bad("handler for %v", err)
		}
		if h == nil {
			return bad("handler for kind %s is nil", k)
		}
	}
	for k, n := range c.KindConcurrency {
		if n < 1 {
			return bad("KindConcurrency of %s is %d, below 1", k, n)
		}
	}
	switch {
	case c.Concurrency < 1:
		return bad("Concurrency %d is below 1", c.Concurrency)
	case c.TenantConcurrency < 0:
		return bad("TenantConcurrency %d is negative", c.TenantConcurrency)
	case c.LaneSync < 0:
		return bad("LaneSync %s is negative", c.LaneSync)
	case c.AckWait < minAckWait:
		return bad("AckWait %s is below %s", c.AckWait, minAckWait)
	case c.MaxAckPending < c.Concurrency:
		return bad("MaxAckPending %d is below Concurrency %d: slots would sit idle", c.MaxAckPending, c.Concurrency)
	case c.MessageDeadline < 0:
		return bad("MessageDeadline %s is negative", c.MessageDeadline)
	case c.MaxAttempts < 0:
		return bad("MaxAttempts %d is negative", c.MaxAttempts)
	case c.ConfigRetryDelay < 0:
		return bad("ConfigRetryDelay %s is negative", c.ConfigRetryDelay)
	case c.ShutdownGrace < 0:
		return bad("ShutdownGrace %s is negative", c.ShutdownGrace)
	case c.SendLease < 0:
		return bad("SendLease %s is negative", c.SendLease)
	case c.ProbeInterval < 0 || c.PauseFor < 0:
		return bad("ProbeInterval %s or PauseFor %s is negative", c.ProbeInterval, c.PauseFor)
	case c.PauseFor > 0 && c.PauseFor < c.ProbeInterval:
		return bad("PauseFor %s is shorter than ProbeInterval %s: the pause would lapse between probes", c.PauseFor, c.ProbeInterval)
	}
	return nil
}

// Backoff returns a retry delay that starts at lo on the first delivery and
// doubles with each further delivery up to hi. It is deterministic, without
// jitter: messages that failed together come back together, but never more
// of them at once than Concurrency allows, and a predictable delay is easier
// to reason about in an incident.
func Backoff(lo, hi time.Duration) func(delivery int) time.Duration {
	return func(delivery int) time.Duration {
		if lo <= 0 {
			return 0
		}
		d := lo
		for i := 1; i < delivery && d < hi; i++ {
			d *= 2
		}
		return min(d, hi)
	}
}
