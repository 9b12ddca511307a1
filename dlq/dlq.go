// Package dlq is the operators' side of the dead-letter stream: it lists,
// shows, replays and purges the submissions the worker could not process
// (stream DIGITOLL_DLQ, subjects digitoll.dlq.<kind>.<tenant>, see
// docs/contract.md). Reading never removes anything: the stream has Limits
// retention, and entries leave it only when they are replayed (after the
// replay is stored) or purged.
package dlq

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/digitoll/digitoll-worker/contract"
)

// Errors that callers tell apart with errors.Is.
var (
	// ErrNotFound: no dead letter has that stream sequence (never had, or
	// it was replayed or purged meanwhile).
	ErrNotFound = errors.New("dead letter not found")
	// ErrNotReplayable: the entry has no valid original subject to be
	// published to again. It stays in the stream.
	ErrNotReplayable = errors.New("dead letter cannot be replayed")
	// ErrNotRemoved: the replay was published and stored, but the dead
	// letter could not be removed afterwards.
	ErrNotRemoved = errors.New("replayed dead letter not removed")
	// ErrInvalidFilter: a Filter field cannot match any dead letter
	// subject (an unknown kind, a tenant that is no subject token).
	ErrInvalidFilter = errors.New("invalid dead-letter filter")
)

// JetStream is the part of jetstream.JetStream this package uses.
type JetStream interface {
	Stream(ctx context.Context, name string) (jetstream.Stream, error)
	PublishMsg(ctx context.Context, msg *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error)
}

// Entry is one dead letter as stored in DIGITOLL_DLQ.
type Entry struct {
	// Seq is the entry's sequence in DIGITOLL_DLQ; it names the entry in
	// Get, Replay and the CLI.
	Seq uint64
	// Subject is digitoll.dlq.<kind>.<tenant>; Kind and Tenant are its
	// last two tokens (Tenant is contract.InvalidTenant for unparsable subjects).
	Subject, Kind, Tenant string
	// ID is the submission id read from the body when the body is a JSON
	// object with a string "id"; empty otherwise. It is a best effort for
	// display: a malformed body may carry any string here.
	ID string
	// Reason is the short code of Digitoll-Dlq-Reason (malformed,
	// unsupported, too-large, retries-exhausted, deadline,
	// permanent-http); Error is the one line of Digitoll-Dlq-Error.
	Reason, Error string
	// OriginalSubject is where the submission was published
	// (Digitoll-Original-Subject) and where Replay sends it back.
	OriginalSubject string
	// OriginalSeq is the submission's sequence in DIGITOLL_SUBMIT
	// (Digitoll-Original-Stream-Seq), 0 when absent.
	OriginalSeq uint64
	// Attempts is how many deliveries the worker made (Digitoll-Attempts).
	Attempts int
	// FailedAt is when the worker gave up (Digitoll-Failed-At), or the
	// time the entry was stored when that header is missing or unreadable.
	FailedAt time.Time
	// Header holds every header of the entry: the producer's, byte for
	// byte, the worker's Digitoll-Dlq-*, Digitoll-Original-* and the
	// like, and the Nats-* ones of the dead letter's own publish.
	Header nats.Header
	// Data is the submission body, unchanged. Empty in the entries that
	// ReplayAll and Purge read for their snapshot (headers only).
	Data []byte
}

// Filter selects dead letters. The zero Filter selects all of them.
type Filter struct {
	// Kind and Tenant narrow to digitoll.dlq.<Kind>.<Tenant>; empty means
	// any. Tenant may be contract.InvalidTenant.
	Kind, Tenant string
	// Reason, when set, keeps only entries with that Digitoll-Dlq-Reason.
	Reason string
	// Since, when set, keeps only entries stored in the stream at or
	// after it (the server's clock, which is also when the worker
	// dead-lettered them).
	Since time.Time
	// UpTo, when not 0, keeps only entries with a stream sequence at or
	// below it. It lets a caller act on exactly the entries it showed or
	// counted, not on entries dead-lettered in the meantime.
	UpTo uint64
}

// subject is the DLQ subject filter of f.
func (f Filter) subject() (string, error) {
	kind, tenant := "*", "*"
	if f.Kind != "" {
		k, err := contract.ParseKind(f.Kind)
		if err != nil {
			return "", fmt.Errorf("%w: %w", ErrInvalidFilter, err)
		}
		kind = string(k)
	}
	if f.Tenant != "" {
		if !contract.ValidTenant(f.Tenant) && f.Tenant != contract.InvalidTenant {
			return "", fmt.Errorf("%w: tenant %q is not 1-63 characters of a-z, 0-9 and '-' (or %s)", ErrInvalidFilter, f.Tenant, contract.InvalidTenant)
		}
		tenant = f.Tenant
	}
	// The wildcards stand in for the tokens; DLQSubject only joins them.
	return contract.DLQSubject(contract.Kind(kind), tenant), nil
}

// narrowsBySubject reports whether f selects by subject only, so that a
// subject purge removes exactly what it selects.
func (f Filter) narrowsBySubject() bool { return f.Reason == "" && f.Since.IsZero() }

// newEntry reads an entry from a stored message. stored is the time the
// stream stored it.
func newEntry(seq uint64, subject string, h nats.Header, data []byte, stored time.Time) Entry {
	e := Entry{
		Seq:             seq,
		Subject:         subject,
		Reason:          h.Get(contract.HeaderDLQReason),
		Error:           h.Get(contract.HeaderDLQError),
		OriginalSubject: h.Get(contract.HeaderOriginalSubject),
		Header:          h,
		Data:            data,
		ID:              bodyID(data),
	}
	if parts := strings.Split(subject, "."); len(parts) == 4 {
		e.Kind, e.Tenant = parts[2], parts[3]
	}
	e.Attempts, _ = strconv.Atoi(h.Get(contract.HeaderAttempts))
	e.OriginalSeq, _ = strconv.ParseUint(h.Get(contract.HeaderOriginalStreamSeq), 10, 64)
	if t, err := time.Parse(time.RFC3339, h.Get(contract.HeaderFailedAt)); err == nil {
		e.FailedAt = t
	} else {
		e.FailedAt = stored.UTC()
	}
	return e
}

// bodyID is the string "id" of a JSON object body, or "".
func bodyID(data []byte) string {
	var v struct {
		ID any `json:"id"`
	}
	if len(data) == 0 || json.Unmarshal(data, &v) != nil {
		return ""
	}
	id, _ := v.ID.(string)
	return id
}

// dlqStream looks up DIGITOLL_DLQ; its cached info is the state at that
// moment, which List uses as the end of what it reads.
func dlqStream(ctx context.Context, js JetStream) (jetstream.Stream, error) {
	s, err := js.Stream(ctx, contract.StreamDLQ)
	if err != nil {
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return nil, fmt.Errorf("stream %s does not exist (the worker creates it on start): %w", contract.StreamDLQ, err)
		}
		return nil, fmt.Errorf("stream %s: %w", contract.StreamDLQ, err)
	}
	return s, nil
}
