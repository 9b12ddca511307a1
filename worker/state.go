package worker

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/failure"
)

// Phases of a submission's state record.
const (
	// phaseSending: a non-idempotent Toll call is about to be made or is
	// under way; Toll's answer is not recorded yet.
	phaseSending = "sending"
	// phaseSent: Toll answered with RequestID; a redelivery follows that
	// request and never sends again.
	phaseSent = "sent"
	// phaseIdle: no Toll call is in flight and no requestId is known. A
	// call that certainly did not reach Toll (refused before processing:
	// 429, 503, connection refused, rate-limit wait, token failure; see
	// toll.NotProcessed) or that ended without an answer writes it, so
	// that the next delivery goes on at once instead of waiting out the
	// send lease that protects a call still under way. MaybeSent keeps
	// what an unanswered call leaves: Toll may hold the declaration.
	phaseIdle = "idle"
	// phaseDone: Result is final and was (or is about to be) published.
	phaseDone = "done"
	// phaseDeadLettered: the message with stream sequence Seq went to the
	// DLQ. It is not "done": a replay of the same submission from the DLQ
	// (a new stream sequence) must be processed, resuming RequestID if
	// Toll had one, rather than answered with the dead-lettered result.
	phaseDeadLettered = "dead-lettered"
)

// state is the JSON record of one submission in StateBucket.
type state struct {
	Phase     string `json:"phase"`
	RequestID string `json:"requestId,omitempty"`
	// MaybeSent: an earlier attempt of the submission may have reached
	// Toll without its answer being recorded (its answer was lost, or a
	// delivery died during the call), so a later attempt must read a
	// duplicate FAILURE as possibly its own (handlers.Request.Unresolved).
	MaybeSent bool             `json:"maybeSent,omitempty"`
	Result    *contract.Result `json:"result,omitempty"`
	// UpdatedAt, Seq and Delivery are left out of a done record (see
	// write); nothing reads them once the result is recorded.
	UpdatedAt time.Time `json:"updatedAt,omitzero"`
	// Seq and Delivery identify the delivery that wrote the record, so
	// that a delivery which finds a record written by a later delivery of
	// the same message knows it is stale (see stateAction).
	Seq      uint64 `json:"seq,omitempty"`
	Delivery int    `json:"delivery,omitempty"`
	// Digest identifies the submission that owns the id (see
	// submissionDigest): a later message with the same id and another
	// digest is another submission, not a repeat. Empty in records of
	// unreadable messages and of versions before it.
	Digest string `json:"digest,omitempty"`
}

// stateKey is the KV key of a submission: "<tenant>.<kind>.<id>", the id
// in unpadded base64url because ids may contain ':' which KV keys may not.
func stateKey(tenant string, kind contract.Kind, id string) string {
	return tenant + "." + string(kind) + "." + base64.RawURLEncoding.EncodeToString([]byte(id))
}

// loadState returns the record of key and its revision; revision 0 and a
// nil record mean there is none.
func loadState(ctx context.Context, kv jetstream.KeyValue, key string) (*state, uint64, error) {
	e, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("read state %s: %w", key, err)
	}
	var st state
	if err := json.Unmarshal(e.Value(), &st); err != nil {
		// A record the worker cannot read must not make it forget a
		// requestId silently; retrying will not help either, but the
		// deadline ends it and the error says where to look.
		return nil, 0, fmt.Errorf("state %s is not a state record: %w", key, err)
	}
	if st.RequestID == "" && st.Result != nil {
		// A done record keeps its requestId in the result only.
		st.RequestID = st.Result.RequestID
	}
	return &st, e.Revision(), nil
}

// errSuperseded means another delivery of the same message wrote the state
// record between this delivery's read and write: that delivery owns the
// submission now. It is transient so that handlers treat it as "stop, no
// outcome"; the worker recognises it and leaves the message to the owner.
var errSuperseded = failure.Mark(errors.New("another worker took over this submission"), failure.Transient)

// journal implements handlers.Journal over the state bucket. Every write is
// a compare-and-set on the revision this delivery last read or wrote, so
// two deliveries racing on one submission cannot both claim it.
type journal struct {
	kv       jetstream.KeyValue
	key      string
	seq      uint64
	delivery int
	now      func() time.Time
	// digest is the submission's, stored with every write.
	digest string

	// unread: the delivery started without reading the record (see
	// openState); the first write creates it, and finding it there
	// means a record this delivery never read (found).
	unread bool

	mu         sync.Mutex
	rev        uint64
	requestID  string
	superseded bool
	found      bool
	// maybeSent: an attempt of this submission, in this delivery or an
	// earlier one, may have reached Toll unanswered (state.MaybeSent).
	maybeSent bool
	// sentRefusals counts failed attempts of Sent; lastRefusal is the
	// last one's error.
	sentRefusals int
	lastRefusal  error
}

func newJournal(kv jetstream.KeyValue, key string, st *state, rev, seq uint64, delivery int, now func() time.Time) *journal {
	j := &journal{kv: kv, key: key, seq: seq, delivery: delivery, now: now, rev: rev}
	if st != nil {
		j.requestID = st.RequestID
		// A sending record that a delivery finds is an earlier call
		// whose answer was never recorded.
		j.maybeSent = st.MaybeSent || st.Phase == phaseSending
	}
	return j
}

// Sending records that a non-idempotent Toll call is about to be made.
func (j *journal) Sending(ctx context.Context) error {
	return j.write(ctx, state{Phase: phaseSending})
}

// Release records that the call Sending announced is over without a
// requestId: refused before Toll processed it, or (maybeSent) without an
// answer although Toll may have acted. Nothing is in flight any more, so
// a redelivery starts at once rather than waiting out the send lease;
// maybeSent is kept in the record for every later attempt.
func (j *journal) Release(ctx context.Context, maybeSent bool) error {
	j.mu.Lock()
	j.maybeSent = j.maybeSent || maybeSent
	j.mu.Unlock()
	return j.write(ctx, state{Phase: phaseIdle})
}

// MaybeSent reports whether an attempt of the submission may have reached
// Toll without its answer being recorded.
func (j *journal) MaybeSent() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.maybeSent
}

// Sent records the requestId Toll answered with. It is the one record that
// must not be lost: Toll holds the request, and a delivery that does not
// find its requestId sends the declaration again. So Sent retries until
// the record is stored, another delivery owns the submission, or ctx
// ends; a retry after a write whose answer was lost recognises its own
// record instead of mistaking it for another delivery's.
func (j *journal) Sent(ctx context.Context, requestID string) error {
	if requestID == "" {
		return failure.Mark(errors.New("journal: Sent without a requestId"), failure.Permanent)
	}
	want := state{Phase: phaseSent, RequestID: requestID}
	delay := sentRetryMin
	for {
		err := j.write(ctx, want)
		if err == nil {
			return nil
		}
		if errors.Is(err, errSuperseded) {
			own, rerr := j.ownRecord(ctx, requestID)
			switch {
			case own:
				return nil
			case rerr == nil:
				return err // another delivery's record
			}
			// The record could not be read: try again, as after any
			// failed write.
			err = rerr
		}
		j.noteRefusal(err)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (gave up: %w)", err, ctx.Err())
		case <-t.C:
		}
		delay = min(2*delay, sentRetryMax)
	}
}

// Pauses between attempts of Sent.
const (
	sentRetryMin = 100 * time.Millisecond
	sentRetryMax = 2 * time.Second
)

// ownRecord reports whether the stored record is this delivery's Sent
// with requestID, written by an attempt whose answer was lost; if so the
// journal takes its revision and is no longer superseded.
func (j *journal) ownRecord(ctx context.Context, requestID string) (bool, error) {
	rctx, cancel := context.WithTimeout(ctx, journalOpTimeout)
	defer cancel()
	st, rev, err := loadState(rctx, j.kv, j.key)
	if err != nil {
		return false, err
	}
	if st == nil || st.Phase != phaseSent || st.RequestID != requestID || st.Seq != j.seq || st.Delivery != j.delivery {
		return false, nil
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	j.rev, j.requestID, j.superseded = rev, requestID, false
	return true, nil
}

// journalOpTimeout bounds one read or write of the state record.
const journalOpTimeout = 5 * time.Second

// noteRefusal remembers a failed attempt of Sent, for the log line of the
// delivery (the journal has no logger of its own).
func (j *journal) noteRefusal(err error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.sentRefusals++
	j.lastRefusal = err
}

// SentRefusals is how many attempts of Sent failed before it stored the
// requestId (or gave up), and the last failure.
func (j *journal) SentRefusals() (int, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.sentRefusals, j.lastRefusal
}

// done records the final result.
func (j *journal) done(ctx context.Context, r contract.Result) error {
	return j.write(ctx, state{Phase: phaseDone, RequestID: r.RequestID, Result: &r})
}

// deadLettered records that this message went to the DLQ, keeping the
// requestId for a replay to resume.
func (j *journal) deadLettered(ctx context.Context) error {
	return j.write(ctx, state{Phase: phaseDeadLettered})
}

// RequestID is the last requestId recorded for the submission.
func (j *journal) RequestID() string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.requestID
}

// Found reports whether the first write of a delivery that did not read
// the record found one there (see openState). Superseded is then true as
// well; Found is the one to look at first.
func (j *journal) Found() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.found
}

// unverified reports whether the delivery neither read nor wrote the
// record: one may exist that it knows nothing of.
func (j *journal) unverified() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.unread && j.rev == 0
}

// Superseded reports whether a write lost the race to another delivery.
func (j *journal) Superseded() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.superseded
}

func (j *journal) write(ctx context.Context, st state) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.superseded {
		return errSuperseded
	}
	// One attempt waits at most journalOpTimeout: the caller's context
	// may be the message's (a day), and a request lost to a broken
	// connection would otherwise hold the message that long.
	ctx, cancel := context.WithTimeout(ctx, journalOpTimeout)
	defer cancel()
	if st.RequestID == "" {
		st.RequestID = j.requestID
	}
	if st.Phase != phaseDone {
		// Every record short of the result keeps it: a delivery that
		// follows a recorded requestId, or a replay from the DLQ, must
		// know that an earlier attempt may have reached Toll, or it
		// would read Toll's duplicate FAILURE as a rejection.
		st.MaybeSent = j.maybeSent
	}
	st.Digest = j.digest
	data, err := encodeRecord(recordOf(st, j.now().UTC(), j.seq, j.delivery))
	if err != nil {
		return fmt.Errorf("encode state %s: %w", j.key, err)
	}
	var rev uint64
	if j.rev == 0 {
		rev, err = j.kv.Create(ctx, j.key, data)
	} else {
		rev, err = j.kv.Update(ctx, j.key, data, j.rev)
	}
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		// Superseded either way: nothing more is written. When the
		// delivery never read the record, found tells the job to hand
		// the message back to be decided with it.
		j.superseded = true
		j.found = j.unread && j.rev == 0
		return errSuperseded
	}
	if err != nil {
		// Unmarked: an unreachable KV is transient, and the handler must
		// not make the Toll call it was about to journal.
		return fmt.Errorf("write state %s (%s): %w", j.key, st.Phase, err)
	}
	j.rev = rev
	j.requestID = st.RequestID
	return nil
}

// encodeRecord is st as json.Marshal encodes it, byte for byte, without
// reflection: every message writes three records. A time json.Marshal
// would encode otherwise than AppendFormat (not in UTC, or a year
// outside 0–9999) is left to json.Marshal, error included.
func encodeRecord(st state) ([]byte, error) {
	if !st.UpdatedAt.IsZero() && (st.UpdatedAt.Location() != time.UTC || st.UpdatedAt.Year() < 0 || st.UpdatedAt.Year() > 9999) {
		return json.Marshal(st)
	}
	size := stateSizeHint
	if st.Result != nil {
		size = doneSizeHint
	}
	b := make([]byte, 0, size)
	b = append(b, `{"phase":`...)
	b = contract.AppendJSONString(b, st.Phase)
	if st.RequestID != "" {
		b = append(b, `,"requestId":`...)
		b = contract.AppendJSONString(b, st.RequestID)
	}
	if st.MaybeSent {
		b = append(b, `,"maybeSent":true`...)
	}
	if st.Result != nil {
		b = append(b, `,"result":`...)
		var err error
		if b, err = st.Result.AppendJSON(b); err != nil {
			return nil, err
		}
	}
	if !st.UpdatedAt.IsZero() {
		b = append(b, `,"updatedAt":"`...)
		b = st.UpdatedAt.AppendFormat(b, time.RFC3339Nano)
		b = append(b, '"')
	}
	if st.Seq != 0 {
		b = append(b, `,"seq":`...)
		b = strconv.AppendUint(b, st.Seq, 10)
	}
	if st.Delivery != 0 {
		b = append(b, `,"delivery":`...)
		b = strconv.AppendInt(b, int64(st.Delivery), 10)
	}
	if st.Digest != "" {
		b = append(b, `,"digest":`...)
		b = contract.AppendJSONString(b, st.Digest)
	}
	return append(b, '}'), nil
}

// The capacities encodeRecord starts with: enough for a record short of
// the result (160–210 bytes), and for a done record whose result has
// no errors.
const (
	stateSizeHint = 256
	doneSizeHint  = 512
)

// recordOf is st as stored, written at now by delivery of the message
// with stream sequence seq. The done record is what the journal keeps of
// nearly every submission for the bucket's TTL, so it holds only what a
// later delivery reads of it: the result (which holds the requestId) and
// the digest that tells a repeat from an id reused. The rest decides
// between deliveries of a submission still under way; decideState answers
// a done record with its result before looking at any of it, as did the
// versions that stored the rest, so records of either shape read alike.
func recordOf(st state, now time.Time, seq uint64, delivery int) state {
	if st.Phase == phaseDone && st.Result != nil {
		if st.RequestID == st.Result.RequestID {
			st.RequestID = ""
		}
		st.MaybeSent = false
		return st
	}
	st.UpdatedAt, st.Seq, st.Delivery = now, seq, delivery
	return st
}

// stateAction is what a delivery does given the record it found.
type stateAction int

const (
	// startFresh: no record, or one that says nothing is in flight (an
	// idle record may still say MaybeSent).
	startFresh stateAction = iota + 1
	// startAfterCrash: a record in phase sending from an earlier delivery:
	// that worker died during the Toll call itself.
	startAfterCrash
	// resumeRequest: Toll's requestId is known; follow it, never resend.
	resumeRequest
	// republishResult: the result is final; publish it again and ack.
	republishResult
	// ackOnly: this very message was already dead-lettered; only the ack
	// was lost.
	ackOnly
	// leaveToOwner: a later delivery of this message wrote the record, so
	// this delivery is stale (it sat in a buffer past AckWait and was
	// redelivered meanwhile). Neither ack nor nak: the owner decides.
	leaveToOwner
)

func (a stateAction) String() string {
	switch a {
	case startFresh:
		return "start"
	case startAfterCrash:
		return "start-after-crash"
	case resumeRequest:
		return "resume"
	case republishResult:
		return "republish"
	case ackOnly:
		return "ack-only"
	case leaveToOwner:
		return "leave-to-owner"
	default:
		return "unknown"
	}
}

// decideState maps the record found at the start of a delivery to what the
// delivery does.
func decideState(st *state, seq uint64, delivery int) stateAction {
	if st == nil {
		return startFresh
	}
	if st.Phase == phaseDone && st.Result != nil {
		return republishResult
	}
	if st.Seq == seq {
		if st.Delivery > delivery {
			return leaveToOwner
		}
		if st.Phase == phaseDeadLettered {
			return ackOnly
		}
	}
	// A different sequence is the same submission published again (a
	// replay from the DLQ, or a producer's repeat outside the duplicate
	// window): what Toll already has still counts.
	switch {
	case st.RequestID != "":
		return resumeRequest
	case st.Phase == phaseSending:
		return startAfterCrash
	default:
		return startFresh
	}
}

// openState returns the record a delivery starts from and its revision.
// A first delivery does not read it (unread): nearly always there is
// none, and the journal's first write, a create, finds out at no extra
// cost; a read would add a round trip to every submission. The record is
// there when a producer repeats the submission after the duplicate
// window, an id is reused, or a later delivery of this message got ahead
// of this one; the first write then fails without
// changing anything, and recordFound hands the message back to be decided
// with the record, as a redelivery reads it first. Until the first write,
// the delivery does nothing that cannot be taken back: a Toll call waits
// for Sending, a result for done, and a dead letter reads the record
// first (unseenRecord). A replay from the DLQ (contract.IsReplay) is read
// first like a redelivery: its record is there, the dead letter's. Should
// the read find none (the replay came before the dead-lettering delivery
// wrote it), the replay goes on as any first delivery: a record its first
// write finds is handed back at once.
func (j *job) openState(key string) (st *state, rev uint64, unread bool, err error) {
	first := j.d.delivery <= 1
	if first && !contract.IsReplay(j.msg.Headers().Get(contract.HeaderMsgID)) {
		return nil, 0, true, nil
	}
	ctx, cancel := j.opCtx()
	defer cancel()
	st, rev, err = loadState(ctx, j.r.kv, key)
	return st, rev, first && err == nil && st == nil, err
}

// recordFound ends a delivery whose first write found a record it had not
// read: a later delivery of this message that owns it is left to;
// otherwise the message is handed back at once, and its next delivery
// reads the record and does what it says (republish the result, follow
// the requestId, refuse an id reused...). Nothing was sent or published.
func (j *job) recordFound() {
	ctx, cancel := j.opCtx()
	st, _, err := loadState(ctx, j.r.kv, j.journal.key)
	cancel()
	if err == nil && st != nil && st.Seq == j.d.seq && st.Delivery > j.d.delivery {
		j.leave()
		return
	}
	j.log.Debug("the submission already has a state record; handing the message back to follow it")
	j.nak(0, CauseRecorded)
}

// unseenRecord is for a delivery about to dead-letter its message: a dead
// letter publishes a result, and a recorded result or requestId of the
// submission must win over it. It reports whether the delivery was ended
// instead because it had not read the record and finds one (or cannot
// tell); false means dead-lettering goes on.
func (j *job) unseenRecord() bool {
	if j.journal == nil || !j.journal.unverified() {
		return false
	}
	ctx, cancel := j.opCtx()
	st, _, err := loadState(ctx, j.r.kv, j.journal.key)
	cancel()
	switch {
	case err != nil:
		delay := j.w.policy.retryDelay(j.d.delivery)
		j.log.Warn("reading the state record before dead-lettering failed; the message is retried", "error", err, "retryIn", delay)
		j.nak(delay, CauseTransient)
		return true
	case st != nil:
		j.recordFound()
		return true
	}
	return false
}
