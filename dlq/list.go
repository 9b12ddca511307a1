package dlq

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/digitoll/digitoll-worker/contract"
)

// idleCheck is how long List waits for the next entry before it asks the
// server whether any is still on its way. Entries normally follow each
// other at once; the wait only matters when entries that were pending
// when List began are removed (replayed, purged) before they are sent.
const idleCheck = 2 * time.Second

// maxResets bounds how often List recreates its ordered consumer in one
// recovery (after a lost connection or missed heartbeats): about 25 s of
// backoff in all.
const maxResets = 5

// List calls each for the dead letters f selects, oldest first, until each
// returns false. It reads without consuming and stops at the entries that
// were in the stream when it began, so it ends even while the worker keeps
// dead-lettering.
func List(ctx context.Context, js JetStream, f Filter, each func(Entry) bool) error {
	s, err := dlqStream(ctx, js)
	if err != nil {
		return err
	}
	return browse(ctx, s, f, false, each)
}

// Get returns the dead letter with stream sequence seq, or an error
// wrapping ErrNotFound.
func Get(ctx context.Context, js JetStream, seq uint64) (Entry, error) {
	s, err := dlqStream(ctx, js)
	if err != nil {
		return Entry{}, err
	}
	return get(ctx, s, seq)
}

func get(ctx context.Context, s jetstream.Stream, seq uint64) (Entry, error) {
	if seq == 0 {
		return Entry{}, fmt.Errorf("%w: sequence 0", ErrNotFound)
	}
	m, err := s.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return Entry{}, fmt.Errorf("%w: no entry %d in %s", ErrNotFound, seq, contract.StreamDLQ)
	}
	if err != nil {
		return Entry{}, fmt.Errorf("read dead letter %d: %w", seq, err)
	}
	return newEntry(m.Sequence, m.Subject, m.Header, m.Data, m.Time), nil
}

// browse reads the entries of s that f selects with an ordered consumer
// (no server-side state to clean up, nothing acknowledged, nothing
// removed). It ends at the last entry stored when s was looked up (or
// f.UpTo): the consumer's pending count at creation says whether there
// is anything to read at all, and each message's pending count and
// sequence say whether it is the last one to read.
func browse(ctx context.Context, s jetstream.Stream, f Filter, headersOnly bool, each func(Entry) bool) error {
	subject, err := f.subject()
	if err != nil {
		return err
	}
	info := s.CachedInfo()
	if info == nil || info.State.Msgs == 0 {
		return nil
	}
	last := info.State.LastSeq
	if f.UpTo != 0 && f.UpTo < last {
		last = f.UpTo
	}
	cfg := jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{subject},
		DeliverPolicy:  jetstream.DeliverAllPolicy,
		HeadersOnly:    headersOnly,
		// A one-off read gives up when the server stays away, rather
		// than recreating its consumer forever as a follower would.
		MaxResetAttempts: maxResets,
	}
	if !f.Since.IsZero() {
		since := f.Since
		cfg.DeliverPolicy = jetstream.DeliverByStartTimePolicy
		cfg.OptStartTime = &since
	}
	cons, err := s.OrderedConsumer(ctx, cfg)
	if err != nil {
		return fmt.Errorf("read %s: %w", subject, err)
	}
	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("read %s: %w", subject, err)
	}
	defer it.Stop()
	// Creating the consumer is what Messages did; its info from then
	// counts what matches.
	if ci := cons.CachedInfo(); ci != nil && ci.NumPending == 0 {
		return nil
	}
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		msg, err := it.Next(jetstream.NextMaxWait(idleCheck))
		if errors.Is(err, nats.ErrTimeout) {
			ci, ierr := cons.Info(ctx)
			if ierr != nil {
				return fmt.Errorf("read %s: %w", subject, ierr)
			}
			if ci.NumPending == 0 {
				return nil
			}
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("read %s: %w", subject, err)
		}
		meta, err := msg.Metadata()
		if err != nil {
			return fmt.Errorf("read %s: %w", subject, err)
		}
		seq := meta.Sequence.Stream
		if seq > last {
			return nil
		}
		e := newEntry(seq, msg.Subject(), msg.Headers(), msg.Data(), meta.Timestamp)
		if (f.Reason == "" || e.Reason == f.Reason) && !each(e) {
			return nil
		}
		if seq == last || meta.NumPending == 0 {
			return nil
		}
	}
}
