package dlq

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/digitoll/digitoll-worker/contract"
)

// Replayed describes one replayed dead letter.
type Replayed struct {
	// Entry is the dead letter as it was before the replay.
	Entry Entry
	// Subject is where it was published: its original subject.
	Subject string
	// MsgID is the Nats-Msg-Id of the replay (see Replay).
	MsgID string
	// StreamSeq is the replay's sequence in DIGITOLL_SUBMIT.
	StreamSeq uint64
	// Duplicate: DIGITOLL_SUBMIT already had this replay (an earlier
	// replay of the same entry stored it, then failed to remove the
	// entry), so nothing new was queued.
	Duplicate bool
}

// Replay publishes the dead letter seq again to its original subject, with
// its body and the producer's headers (every header except the
// Digitoll-Dlq-*, Digitoll-Attempts, Digitoll-Failed-At and
// Digitoll-Original-* ones the worker added), waits until DIGITOLL_SUBMIT
// has stored it, and only then removes the entry.
//
// The replay's Nats-Msg-Id is "<tenant>/<id>/replay/<dlq seq>" (without
// "<id>/" when the body has no valid id). It differs from the producer's
// "<tenant>/<id>", which the submit stream may still remember and would
// drop, and it is the same for every replay of one entry, so replaying an
// entry twice within the duplicate window queues it once.
//
// An entry without a valid original subject (the worker dead-letters
// messages of unparsable subjects to digitoll.dlq.<kind>._invalid) is not
// replayed: the error wraps ErrNotReplayable and the entry stays. When the
// replay is stored but the entry cannot be removed, the error wraps
// ErrNotRemoved and the Replayed is filled in.
func Replay(ctx context.Context, js JetStream, seq uint64) (Replayed, error) {
	s, err := dlqStream(ctx, js)
	if err != nil {
		return Replayed{}, err
	}
	e, err := get(ctx, s, seq)
	if err != nil {
		return Replayed{}, err
	}
	return replay(ctx, js, s, e)
}

func replay(ctx context.Context, js JetStream, s jetstream.Stream, e Entry) (Replayed, error) {
	r := Replayed{Entry: e}
	if e.OriginalSubject == "" {
		return r, fmt.Errorf("%w: entry %d has no %s header", ErrNotReplayable, e.Seq, contract.HeaderOriginalSubject)
	}
	_, tenant, err := contract.ParseSubmitSubject(e.OriginalSubject)
	if err != nil {
		return r, fmt.Errorf("%w: entry %d: %w", ErrNotReplayable, e.Seq, err)
	}
	r.Subject = e.OriginalSubject
	r.MsgID = replayMsgID(tenant, e.ID, e.Seq)
	ack, err := js.PublishMsg(ctx, &nats.Msg{Subject: r.Subject, Header: replayHeader(e.Header), Data: e.Data},
		jetstream.WithMsgID(r.MsgID),
		jetstream.WithExpectStream(contract.StreamSubmit))
	if err != nil {
		return r, fmt.Errorf("replay entry %d to %s (the entry is kept): %w", e.Seq, r.Subject, err)
	}
	r.StreamSeq, r.Duplicate = ack.Sequence, ack.Duplicate
	// Not found: a concurrent replay or purge removed it first, which is
	// the state this call is after.
	if err := s.DeleteMsg(ctx, e.Seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		return r, fmt.Errorf("%w: entry %d was replayed to %s (%s sequence %d, Nats-Msg-Id %s) but could not be removed from %s: %w; "+
			"replaying it again within the submit stream's duplicate window is dropped as a duplicate, after it the submission would be queued again",
			ErrNotRemoved, e.Seq, r.Subject, contract.StreamSubmit, r.StreamSeq, r.MsgID, contract.StreamDLQ, err)
	}
	return r, nil
}

// replayMsgID is the Nats-Msg-Id of the replay of entry seq. Submission
// ids never contain '/', so it can equal no producer's "<tenant>/<id>".
func replayMsgID(tenant, id string, seq uint64) string {
	if !contract.ValidID(id) {
		return contract.ReplayMsgID(tenant, seq)
	}
	return contract.ReplayMsgID(contract.MsgID(tenant, id), seq)
}

// replayHeader is the producer's headers of an entry: what the worker
// added when it dead-lettered the message is dropped, and so are Nats-*
// headers, which are instructions to JetStream for one publish (a stray
// Nats-Expected-* would make the replay fail; Nats-Msg-Id is set anew).
// NATS header names are case-sensitive on the wire; producers spell them
// as they like, so the comparison is not.
func replayHeader(h nats.Header) nats.Header {
	out := nats.Header{}
	for k, vs := range h {
		if addedOnDeadLetter(k) || hasPrefixFold(k, "Nats-") {
			continue
		}
		out[k] = append([]string(nil), vs...)
	}
	return out
}

// addedOnDeadLetter reports whether a header is one the worker sets on a
// dead letter.
func addedOnDeadLetter(name string) bool {
	return hasPrefixFold(name, "Digitoll-Dlq-") ||
		hasPrefixFold(name, "Digitoll-Original-") ||
		strings.EqualFold(name, contract.HeaderAttempts) ||
		strings.EqualFold(name, contract.HeaderFailedAt)
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// ReplayAll replays the dead letters f selects, one by one, oldest first,
// and returns how many it replayed. It first takes a snapshot of the
// matching sequences, so entries dead-lettered meanwhile (a replay that
// fails again included) are not picked up in the same run.
//
// each, if not nil, is called after every entry with its Replayed and nil,
// or with the reason it was skipped: ErrNotReplayable (the entry stays)
// or ErrNotFound (someone removed it meanwhile). Any other error (NATS
// unavailable, publish or removal refused) would fail the entries after it
// too: ReplayAll stops and returns it instead.
func ReplayAll(ctx context.Context, js JetStream, f Filter, each func(Replayed, error)) (int, error) {
	s, err := dlqStream(ctx, js)
	if err != nil {
		return 0, err
	}
	seqs, err := snapshot(ctx, s, f)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, seq := range seqs {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		e, err := get(ctx, s, seq)
		var r Replayed
		if err == nil {
			r, err = replay(ctx, js, s, e)
		}
		switch {
		case err == nil:
			n++
		case errors.Is(err, ErrNotReplayable), errors.Is(err, ErrNotFound):
		default:
			return n, fmt.Errorf("replayed %d of %d, then: %w", n, len(seqs), err)
		}
		if each != nil {
			each(r, err)
		}
	}
	return n, nil
}

// snapshot is the sequences of the entries f selects now.
func snapshot(ctx context.Context, s jetstream.Stream, f Filter) ([]uint64, error) {
	var seqs []uint64
	err := browse(ctx, s, f, true, func(e Entry) bool {
		seqs = append(seqs, e.Seq)
		return true
	})
	return seqs, err
}
