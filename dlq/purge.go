package dlq

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/digitoll/digitoll-worker/contract"
)

// Purge removes the dead letters f selects for good and returns how many
// it removed. It removes only entries that were in the stream when it
// began (and at or below f.UpTo): a filter of kind and tenant alone is one
// purge of the stream (by subject when narrowed), bounded by sequence; a
// filter by reason or time removes the matching entries one by one.
func Purge(ctx context.Context, js JetStream, f Filter) (int, error) {
	s, err := dlqStream(ctx, js)
	if err != nil {
		return 0, err
	}
	seqs, err := snapshot(ctx, s, f)
	if err != nil || len(seqs) == 0 {
		return 0, err
	}
	if f.narrowsBySubject() {
		subject, err := f.subject()
		if err != nil {
			return 0, err
		}
		// The sequence bound is exclusive: everything up to the last
		// matching entry goes, nothing stored after the snapshot.
		opts := []jetstream.StreamPurgeOpt{jetstream.WithPurgeSequence(seqs[len(seqs)-1] + 1)}
		if f.Kind != "" || f.Tenant != "" {
			opts = append(opts, jetstream.WithPurgeSubject(subject))
		}
		if err := s.Purge(ctx, opts...); err != nil {
			return 0, fmt.Errorf("purge %s from %s: %w", subject, contract.StreamDLQ, err)
		}
		return len(seqs), nil
	}
	n := 0
	for _, seq := range seqs {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		err := s.DeleteMsg(ctx, seq)
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound):
			// Replayed or purged by someone else meanwhile.
		case err != nil:
			return n, fmt.Errorf("remove entry %d from %s after %d removed: %w", seq, contract.StreamDLQ, n, err)
		default:
			n++
		}
	}
	return n, nil
}
