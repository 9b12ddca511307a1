package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/failure"
	"github.com/digitoll/digitoll-worker/handlers"
)

// configRemedy is the warning logged when a handler reports a fault of the
// worker's own configuration.
const configRemedy = "the worker's configuration is refused (scope not granted to the integration, key or certificate unknown to Maskinporten, clock skew): fix the tenant's Maskinporten integration or keys; the message is kept and retried"

// minHeartbeat guards the heartbeats against a consumer AckWait set absurdly
// low by another process.
const minHeartbeat = 10 * time.Millisecond

// taken is a message as its lane took it, with the metadata of its reply
// subject read once for the heartbeat and the job.
type taken struct {
	msg jetstream.Msg
	// meta is nil, and metaErr says why, for a message that did not come
	// from a consumer.
	meta    *jetstream.MsgMetadata
	metaErr error
}

// take reads msg's metadata.
func take(msg jetstream.Msg) taken {
	meta, err := msg.Metadata()
	return taken{msg: msg, meta: meta, metaErr: err}
}

// storedAt is when the message was stored in its stream, zero when its
// metadata does not say.
func (t taken) storedAt() time.Time {
	if t.meta == nil {
		return time.Time{}
	}
	return t.meta.Timestamp
}

// job is one delivery of one message, from Next to its ack, nak or hand-over.
type job struct {
	w *Worker
	r *run
	// lane is the consumer the message came from.
	lane lane
	// tenant is the subject's last token, for the Observer.
	tenant string
	// taken is the message with its metadata (j.msg, j.meta, j.metaErr).
	taken
	hb *heartbeat
	// ctx carries the delivery's span; it ends with the handlers (see
	// run.handlerCtx).
	ctx  context.Context
	span trace.Span
	// log writes the delivery's lines with logAttrs' attributes.
	log      *slog.Logger
	logAttrs *jobLog
	d        delivered
	// deadline is the message deadline, set once decode read when the
	// message was stored.
	deadline time.Time
	// op, until opDeadline, is the context opCtx shares.
	op         context.Context
	opCancel   context.CancelFunc
	opDeadline time.Time
	// outcome is how the delivery ended, one of the Outcome* constants.
	outcome string
	journal *journal // nil until the submission parsed
	// noResult: the dead letter gets no dead-lettered result, because the
	// id's one result belongs to another submission (see idReused).
	noResult bool
	// loggedRequestID and loggedMRN are the requestId and MRN already
	// among log's attributes.
	loggedRequestID string
	loggedMRN       string
}

// withRequestID adds a requestId to the job's log and span attributes
// once.
func (j *job) withRequestID(id string) {
	if id != "" && id != j.loggedRequestID {
		j.logAttrs.add(slog.String("requestId", id))
		if j.span.IsRecording() {
			j.span.SetAttributes(attribute.String("digitoll.request_id", id))
		}
		j.loggedRequestID = id
	}
}

// withMRN adds the MRN the message acts on or obtained to the job's log
// and span attributes, unless one is there already: an MRN taken from
// `after` is the one the result names too.
func (j *job) withMRN(mrn string) {
	if mrn != "" && j.loggedMRN == "" {
		j.logAttrs.add(slog.String("mrn", mrn))
		if j.span.IsRecording() {
			j.span.SetAttributes(attribute.String("digitoll.mrn", mrn))
		}
		j.loggedMRN = mrn
	}
}

// process carries one delivery through. Every path ends in exactly one of
// ack, nak or leaving the message to another delivery, with the heartbeat
// stopped first.
func (w *Worker) process(r *run, l lane, t taken, hb *heartbeat) {
	kind, msg := l.kind, t.msg
	// The subject's tenant, for metrics from the start; the lane's is
	// the same, or "" when one consumer serves every tenant.
	tenant := subjectTenant(msg.Subject())
	start := time.Now()
	w.obs.MessageStarted(kind, tenant)
	j := &job{w: w, r: r, lane: l, tenant: tenant, taken: t, hb: hb, d: delivered{kind: kind, tenant: contract.InvalidTenant, subject: msg.Subject()}}
	j.logAttrs, j.log = newJobLog(w.log, slog.String("kind", string(kind)))
	j.ctx, j.span = w.startSpan(r.handlerCtx, kind, msg)
	if sc := j.span.SpanContext(); sc.IsValid() {
		j.logAttrs.add(slog.String(logTraceID, sc.TraceID().String()), slog.String(logSpanID, sc.SpanID().String()))
	}
	defer func() {
		if n, err := j.hb.stop(); n > 0 {
			j.log.Debug("heartbeats failed; the message may have been redelivered meanwhile", "failures", n, "error", err)
		}
		var op contract.Operation
		if j.d.sub != nil {
			op = j.d.sub.Operation
		}
		if j.span.IsRecording() {
			j.span.SetAttributes(attribute.String("digitoll.outcome", j.outcome))
		}
		j.span.End()
		j.endOps()
		w.obs.MessageDone(kind, tenant, op, j.outcome, time.Since(start))
	}()
	j.run()
}

// run carries the delivery through its stages, in order. Each stage that
// cannot go on ends the delivery itself (ack, nak, dead letter or leaving
// it to another delivery) and reports false; the next stage starts only
// from a delivery still in hand.
func (j *job) run() {
	sub, ok := j.decode()
	if !ok {
		return
	}
	req, ok := j.claim(sub)
	if !ok {
		return
	}
	if !j.ready(&req) {
		return
	}
	out, ok := j.call(req)
	if !ok {
		return
	}
	j.complete(out)
}

// decode reads the delivery's metadata, subject and body into j.d, the
// log and the span. Nothing is known about the message before it, so a
// message that cannot be read is dead-lettered "malformed" here, with a
// result when an id can still be dug out of it, before any record of it
// is looked at.
func (j *job) decode() (*contract.Submission, bool) {
	meta := j.meta
	if meta == nil {
		// Only a message that did not come from a consumer lacks
		// metadata; there is nothing to decide about it.
		j.log.Error("message without JetStream metadata; returning it", "error", j.metaErr)
		j.nak(shutdownNakDelay, CauseTransient)
		return nil, false
	}
	j.d.seq = meta.Sequence.Stream
	j.d.delivery = int(meta.NumDelivered)
	j.d.receivedAt = meta.Timestamp
	j.deadline = j.d.receivedAt.Add(j.w.cfg.MessageDeadline)
	j.logAttrs.add(slog.Uint64("streamSeq", j.d.seq), slog.Int("delivery", j.d.delivery))
	// A span that does not record (no exporter, or not sampled) is
	// given no attributes: building them costs allocations per message.
	recording := j.span.IsRecording()
	if recording {
		j.span.SetAttributes(attribute.Int64("digitoll.stream_seq", int64(j.d.seq)), attribute.Int("digitoll.delivery", j.d.delivery))
	}

	subjKind, tenant, err := contract.ParseSubmitSubject(j.d.subject)
	if err == nil && subjKind != j.d.kind {
		err = fmt.Errorf("subject %q reached the %s consumer", j.d.subject, j.d.kind)
	}
	if err != nil {
		j.deadLetter(reasonMalformed, err)
		return nil, false
	}
	j.d.tenant = tenant
	j.logAttrs.add(slog.String("tenant", tenant))
	if recording {
		j.span.SetAttributes(attribute.String("digitoll.tenant", tenant))
	}

	sub, err := contract.ParseSubmission(j.d.kind, j.msg.Data())
	if err != nil {
		j.d.id = lenientID(j.msg.Data())
		if j.d.id != "" {
			j.logAttrs.add(slog.String("id", j.d.id))
			if recording {
				j.span.SetAttributes(attribute.String("digitoll.id", j.d.id))
			}
			j.recordMalformed(tenant)
		}
		j.deadLetter(reasonMalformed, err)
		return nil, false
	}
	j.d.sub, j.d.id = sub, sub.ID
	j.logAttrs.add(submissionAttrs(sub)...)
	if recording {
		j.span.SetAttributes(submissionSpanAttrs(sub)...)
	}
	j.loggedMRN = sub.MRN
	return sub, true
}

// claim reads the submission's record and opens its journal: the record,
// not the delivery count, says what earlier deliveries did (a result to
// publish again, a Toll call to follow or to wait for, another
// submission owning the id), so it is read before anything is sent. A
// first delivery skips the read: its journal creates the record at its
// first write, and a record found then hands the message back. It
// returns the handler's request when this delivery is the one to carry
// the submission on.
func (j *job) claim(sub *contract.Submission) (handlers.Request, bool) {
	key := stateKey(j.d.tenant, j.d.kind, sub.ID)
	st, rev, unread, err := j.openState(key)
	if err != nil {
		j.fail(err, j.deadline)
		return handlers.Request{}, false
	}
	digest := submissionDigest(j.msg.Data())
	if st != nil && st.Digest != "" && st.Digest != digest {
		j.idReused(st, digest)
		return handlers.Request{}, false
	}
	j.journal = newJournal(j.r.kv, key, st, rev, j.d.seq, j.d.delivery, j.w.cfg.Now)
	j.journal.digest = digest
	j.journal.unread = unread
	req := handlers.Request{
		Tenant:     j.d.tenant,
		Kind:       j.d.kind,
		Submission: sub,
		ReceivedAt: j.d.receivedAt,
		Delivery:   j.d.delivery,
		Journal:    j.journal,
	}
	switch act := decideState(st, j.d.seq, j.d.delivery); act {
	case republishResult:
		res := *st.Result
		// The key names the submission; the record cannot move it.
		res.ID, res.Tenant, res.Kind = sub.ID, j.d.tenant, j.d.kind
		j.log.Info("result already recorded; publishing it again", "status", res.Status)
		j.publishAndAck(res, OutcomeDuplicate)
		return req, false
	case ackOnly:
		j.log.Info("message already dead-lettered; acknowledging it")
		j.ack()
		j.outcome = OutcomeDuplicate
		return req, false
	case leaveToOwner:
		j.leave()
		return req, false
	case startAfterCrash:
		// The record says a Toll call was started and not answered. The
		// delivery making it may still be alive, only cut off from NATS
		// (its heartbeats lost, so the message came to us) or started
		// late from a buffer: within the send lease, wait for it rather
		// than send a second time.
		if age := j.w.cfg.Now().Sub(st.UpdatedAt); age < j.w.cfg.SendLease {
			wait := j.w.cfg.SendLease - age
			j.log.Info("an earlier delivery began a Toll call moments ago and may still be making it; waiting for its lease",
				"stateDelivery", st.Delivery, "stateUpdatedAt", st.UpdatedAt, "retryIn", wait)
			j.nak(wait, CauseLease)
			return req, false
		}
		// Past the lease the worker making it died. Whether Toll
		// received it is unknown; this delivery submits again.
		j.log.Warn("an earlier delivery died during its Toll call; submitting again",
			"stateDelivery", st.Delivery, "stateUpdatedAt", st.UpdatedAt)
		req.Unresolved = true
	case resumeRequest:
		req.RequestID = st.RequestID
		// The requestId may be a repeat's, sent after an attempt whose
		// answer was lost: its FAILURE may be Toll meeting the first
		// attempt as a duplicate, to be found out, not reported.
		req.Unresolved = st.MaybeSent
		j.withRequestID(st.RequestID)
		j.log.Debug("resuming the recorded Toll request")
	case startFresh:
		if st != nil && st.MaybeSent {
			// An earlier attempt ended without an answer and released
			// the record: nothing is in flight, but Toll may hold it.
			j.log.Info("an earlier attempt may have reached Toll without its answer; submitting again and finding out")
			req.Unresolved = true
		}
	}
	return req, true
}

// ready decides whether req may go to Toll now: not past the message
// deadline, the tenant admitted by the handler, and the submission named
// in after answered. These come after claim because a recorded result is
// published again whatever they would say, and before the handler
// because nothing that fails them may reach Toll. It may answer the
// message itself (a rejection when after cannot be followed), and fills
// in from after's result what the handler needs.
func (j *job) ready(req *handlers.Request) bool {
	if now := j.w.cfg.Now(); !now.Before(j.deadline) {
		j.deadLetter(reasonDeadline, fmt.Errorf("message deadline %s passed before attempt %d", j.deadline.UTC().Format(time.RFC3339), j.d.delivery))
		return false
	}
	if err := j.admit(); err != nil {
		j.refuseTenant(err)
		return false
	}
	if req.RequestID != "" || req.Submission.After == "" {
		// Ordering is only checked before anything reached Toll: once a
		// requestId is recorded, the call it follows was already allowed.
		return true
	}
	resolved, prev, out, wait := j.awaitAfter(req.Submission)
	switch {
	case wait:
		return false
	case out != nil:
		j.complete(*out)
		return false
	}
	req.Submission = resolved
	if resolved.Operation == contract.OpCreate && prev.Kind == j.d.kind {
		// The parent a master or house may have been declared
		// under, for a lookup after a lost answer: a declaration
		// of the same API.
		req.AfterMRN = prev.MRN
	}
	return true
}

// call runs the handler under the message deadline and checks what it
// returned. A handler's failure is decided here (nak or dead letter), and
// counted against the kind's lane before that, because only the handler's
// errors tell an outage of Toll or Maskinporten; a journal superseded by
// a later delivery means that delivery owns the outcome.
func (j *job) call(req handlers.Request) (handlers.Outcome, bool) {
	hctx, hcancel := context.WithDeadline(j.ctx, j.deadline)
	out, herr := j.handle(hctx, req)
	if n, last := j.journal.SentRefusals(); n > 0 {
		j.log.Warn("recording Toll's requestId failed and was retried until it was stored or the time ran out",
			"attempts", n+1, "error", last)
	}
	hcancel()

	if j.journal.Found() {
		j.recordFound()
		return out, false
	}
	if j.journal.Superseded() {
		j.leave()
		return out, false
	}
	if herr == nil && out.Status != contract.StatusAccepted && out.Status != contract.StatusRejected && out.Status != contract.StatusUnresolved {
		herr = failure.Mark(fmt.Errorf("handler returned status %q, want accepted, rejected or unresolved", out.Status), failure.Permanent)
	}
	if herr != nil {
		if j.r.handlerCtx.Err() == nil {
			j.w.failed(j.r, j.lane, herr)
		}
		j.fail(herr, j.deadline)
		return out, false
	}
	j.w.succeeded(j.lane)
	return out, true
}

// handle runs the kind's handler on req. A handler that panics has met a
// message it cannot cope with, and every redelivery of that message would
// crash the worker that takes it, one after another: the panic becomes a
// poison error instead, so the message is dead-lettered with reason
// "panic" and the stack, which the DLQ entry should not carry, is logged.
func (j *job) handle(ctx context.Context, req handlers.Request) (out handlers.Outcome, err error) {
	defer func() {
		if v := recover(); v != nil {
			j.log.Error("the handler panicked; the message is dead-lettered", "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			out, err = handlers.Outcome{}, failure.WithReason(fmt.Errorf("the %s handler panicked: %v", j.d.kind, v), failure.Poison, reasonPanic)
		}
	}()
	return j.w.cfg.Handlers[j.d.kind].Handle(ctx, req)
}

// complete records, publishes and acks the result of an outcome.
func (j *job) complete(out handlers.Outcome) {
	res := outcomeResult(j.d, out, j.journal.RequestID(), j.w.cfg.Now())
	j.withRequestID(res.RequestID)
	j.withMRN(res.MRN)
	ctx, cancel := j.opCtx()
	err := j.journal.done(ctx, res)
	cancel()
	if j.journal.Found() {
		j.recordFound()
		return
	}
	if errors.Is(err, errSuperseded) {
		// Another delivery wrote meanwhile. If it recorded a result,
		// publishing that one (deduplicated) is what it does too.
		ctx, cancel := j.opCtx()
		st, _, lerr := loadState(ctx, j.r.kv, j.journal.key)
		cancel()
		if lerr == nil && st != nil && st.Phase == phaseDone && st.Result != nil {
			j.publishAndAck(*st.Result, OutcomeDuplicate)
			return
		}
		j.leave()
		return
	}
	if err != nil {
		// The outcome is lost with this attempt; the state still
		// holds the requestId, so the next one follows it.
		j.fail(err, j.deadline)
		return
	}
	j.publishAndAck(res, string(res.Status))
}

// publishAndAck publishes a final result and acks the message; outcome is
// how the delivery ended if that works. The state record says done before
// this runs, so a failed publish or lost ack leads to a redelivery that
// publishes the same result again, which the results stream drops as a
// duplicate.
func (j *job) publishAndAck(res contract.Result, outcome string) {
	m, err := resultMsg(j.ctx, res, j.msg.Headers())
	if err == nil {
		ctx, cancel := j.opCtx()
		_, err = j.w.js.PublishMsg(ctx, m,
			jetstream.WithMsgID(contract.MsgID(res.Tenant, res.ID)),
			jetstream.WithExpectStream(contract.StreamResults))
		cancel()
	}
	if err != nil {
		delay := j.w.policy.retryDelay(j.d.delivery)
		j.log.Warn("publishing the result failed; the message is retried", "error", err, "retryIn", delay)
		j.nak(delay, CauseTransient)
		return
	}
	if j.log.Enabled(context.Background(), slog.LevelInfo) {
		// The one line at info about a result: the handler's own line
		// about Toll's verdict is at debug, so its counts are here.
		attrs := []slog.Attr{slog.String("status", string(res.Status)), slog.Int("attempts", res.Attempts)}
		if len(res.Errors) > 0 {
			attrs = append(attrs, slog.Int("errors", len(res.Errors)))
		}
		if len(res.IncompleteDocumentation) > 0 {
			attrs = append(attrs, slog.Int("incompleteDocumentation", len(res.IncompleteDocumentation)))
		}
		j.log.LogAttrs(context.Background(), slog.LevelInfo, "result published", attrs...)
	}
	j.ack()
	j.outcome = outcome
}

// fail decides what a failed attempt leads to and does it.
func (j *job) fail(err error, deadline time.Time) {
	if j.journal != nil {
		j.withRequestID(j.journal.RequestID())
	}
	a := j.w.policy.decideFailure(attempt{
		err:          err,
		delivery:     j.d.delivery,
		now:          j.w.cfg.Now(),
		deadline:     deadline,
		maxAttempts:  j.w.cfg.MaxAttempts,
		shuttingDown: j.r.handlerCtx.Err() != nil,
	})
	switch a.verb {
	case deadLetter:
		j.deadLetter(a.reason, err)
	case nak:
		cause := CauseTransient
		switch {
		case a.shutdown:
			cause = CauseShutdown
			j.log.Debug("cancelled by shutdown; returning the message", "retryIn", a.delay)
		case a.configFault:
			cause = CauseConfiguration
			// The remedy is logged once, when the kind is paused.
			j.log.Info("configuration fault; the message is kept and retried", "error", err, "retryIn", a.delay)
		case errors.Is(err, handlers.ErrFileMissing):
			cause = CauseMissingObject
			j.log.Info("the submission names a file that is not stored (yet); retrying until its grace passes", "error", err, "retryIn", a.delay)
		default:
			j.log.Info("transient failure; retrying later", "error", err, "retryIn", a.delay)
		}
		if !a.shutdown {
			// Errors never carry secrets (a house rule of every package).
			j.span.RecordError(err)
		}
		j.nak(a.delay, cause)
	}
}

// deadLetter publishes the message to the DLQ and, when it has a tenant
// and id, a dead-lettered result; then acks it. Each publish has its own
// Nats-Msg-Id, so doing this again after a lost ack adds nothing.
func (j *job) deadLetter(reason string, cause error) {
	if j.unseenRecord() {
		return
	}
	errText := errorHeader(cause)
	now := j.w.cfg.Now()
	dm := deadLetterMsg(j.d, j.msg.Data(), j.msg.Headers(), reason, errText, now)
	ctx, cancel := j.opCtx()
	_, err := j.w.js.PublishMsg(ctx, dm,
		jetstream.WithMsgID(dlqMsgID(j.d)),
		jetstream.WithExpectStream(contract.StreamDLQ))
	cancel()
	requestID := ""
	if j.journal != nil {
		requestID = j.journal.RequestID()
	}
	j.withRequestID(requestID)
	if err == nil && j.d.id != "" && !j.noResult {
		var rm *nats.Msg
		rm, err = resultMsg(j.ctx, deadLetterResult(j.d, reason, errText, requestID, now), j.msg.Headers())
		if err == nil {
			ctx, cancel := j.opCtx()
			_, err = j.w.js.PublishMsg(ctx, rm,
				jetstream.WithMsgID(dlqMsgID(j.d)),
				jetstream.WithExpectStream(contract.StreamResults))
			cancel()
		}
	}
	if err != nil {
		delay := j.w.policy.retryDelay(j.d.delivery)
		j.log.Warn("dead-lettering failed; the message is retried", "reason", reason, "error", err, "retryIn", delay)
		j.nak(delay, CauseTransient)
		return
	}
	if j.journal != nil {
		ctx, cancel := j.opCtx()
		if err := j.journal.deadLettered(ctx); err != nil {
			// The dead letter and its result are stored; without the
			// record a lost ack only repeats deduplicated publishes.
			j.log.Debug("recording the dead letter in the state failed", "error", err)
		}
		cancel()
	}
	j.log.Warn("dead-lettered", "reason", reason, "error", errText)
	j.span.SetStatus(codes.Error, "dead-lettered: "+reason+": "+errText)
	j.w.obs.DeadLettered(j.d.kind, j.tenant, reason)
	j.ack()
	j.outcome = OutcomeDeadLettered
}

// ack acknowledges without waiting for the server's confirmation. Every
// ack follows a record that makes a redelivery harmless: the done record
// (its result published and stored) or the dead letter (stored, with a
// dead-lettered record or, failing that, publishes that a repeat only
// deduplicates). A lost ack means a redelivery, which the record turns
// into a republish of the same result under the same Nats-Msg-Id, within
// the duplicate window (10 minutes against an AckWait of a minute); an
// ack confirmed (DoubleAck) would change nothing but cost a round trip,
// since an unconfirmed one could only be logged. Pending acks are
// flushed when the connection is drained at shutdown.
func (j *job) ack() {
	j.hb.stop()
	if err := j.msg.Ack(); err != nil {
		j.log.Warn("ack failed; a redelivery will publish the same outcome again", "error", err)
	}
}

// nak returns the message for redelivery after delay; cause is one of the
// Cause* constants.
func (j *job) nak(delay time.Duration, cause string) {
	j.hb.stop()
	if err := j.msg.NakWithDelay(delay); err != nil {
		j.log.Warn("nak failed; the message is redelivered after AckWait", "error", err)
	}
	j.outcome = OutcomeRetried
	j.w.obs.Retried(j.d.kind, j.tenant, cause)
}

// leave stops working on a message that a later delivery owns, without
// ack or nak: an ack would end the owner's message under it and a nak
// would make the server deliver it a third time while the owner works.
func (j *job) leave() {
	j.hb.stop()
	j.log.Info("a later delivery of this message owns the submission; leaving it to that one")
	j.outcome = OutcomeSuperseded
}

// subjectTenant is the last token of a submission subject, the tenant for
// metrics; "" when the subject has no tenant token. The Observer bounds
// the label values it makes of it.
func subjectTenant(subject string) string {
	if i := strings.LastIndexByte(subject, '.'); i >= 0 && strings.Count(subject, ".") == 3 {
		return subject[i+1:]
	}
	return ""
}

// opCtx bounds one NATS operation of the delivery (state read and writes,
// publishes) by at least finishTimeout; it keeps the span but not the
// cancellation of shutdown. The operations, one after another on the
// delivery's goroutine, share a context of twice that, made anew when
// less than finishTimeout remains: a context with a timer for each cost
// about 2 µs and 6 allocations, three or four times per message. The
// shared one is cancelled when the delivery ends; the CancelFunc returned
// does nothing.
func (j *job) opCtx() (context.Context, context.CancelFunc) {
	now := time.Now()
	if j.op == nil || j.opDeadline.Sub(now) < finishTimeout {
		j.endOps()
		j.opDeadline = now.Add(2 * finishTimeout)
		j.op, j.opCancel = context.WithDeadline(context.WithoutCancel(j.ctx), j.opDeadline)
	}
	return j.op, func() {}
}

// endOps cancels the context opCtx shares, if any.
func (j *job) endOps() {
	if j.opCancel != nil {
		j.opCancel()
	}
}

// submissionAttrs are the log attributes of a parsed submission.
func submissionAttrs(s *contract.Submission) []slog.Attr {
	attrs := []slog.Attr{slog.String("id", s.ID), slog.String("operation", string(s.Operation))}
	if s.Level != "" {
		// Not "level": that is the log level's key.
		attrs = append(attrs, slog.String("declarationLevel", string(s.Level)))
	}
	if s.MRN != "" {
		attrs = append(attrs, slog.String("mrn", s.MRN))
	}
	return attrs
}

// submissionSpanAttrs are the span attributes of a parsed submission.
func submissionSpanAttrs(s *contract.Submission) []attribute.KeyValue {
	attrs := []attribute.KeyValue{attribute.String("digitoll.id", s.ID), attribute.String("digitoll.operation", string(s.Operation))}
	if s.Level != "" {
		attrs = append(attrs, attribute.String("digitoll.level", string(s.Level)))
	}
	if s.MRN != "" {
		attrs = append(attrs, attribute.String("digitoll.mrn", s.MRN))
	}
	return attrs
}
