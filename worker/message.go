package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/failure"
	"github.com/digitoll/digitoll-worker/handlers"
)

// configRemedy is the warning logged when a handler reports a fault of the
// worker's own configuration.
const configRemedy = "the worker's configuration is refused (scope not granted to the integration, key or certificate unknown to Maskinporten, clock skew): fix the tenant's Maskinporten integration or keys; the message is kept and retried"

// minHeartbeat guards the ticker against a consumer AckWait set absurdly
// low by another process.
const minHeartbeat = 10 * time.Millisecond

// job is one delivery of one message, from Next to its ack, nak or hand-over.
type job struct {
	w       *Worker
	r       *run
	msg     jetstream.Msg
	hb      *heartbeat
	log     *slog.Logger
	d       delivered
	journal *journal // nil until the submission parsed
	// loggedRequestID is the requestId already among log's attributes.
	loggedRequestID string
}

// withRequestID adds a requestId to the job's log attributes once.
func (j *job) withRequestID(id string) {
	if id != "" && id != j.loggedRequestID {
		j.log = j.log.With("requestId", id)
		j.loggedRequestID = id
	}
}

// process carries one delivery through. Every path ends in exactly one of
// ack, nak or leaving the message to another delivery, with the heartbeat
// stopped first.
func (w *Worker) process(r *run, kind contract.Kind, msg jetstream.Msg, ackWait time.Duration) {
	if ackWait <= 0 {
		ackWait = w.cfg.AckWait
	}
	j := &job{w: w, r: r, msg: msg, log: w.log.With("kind", kind), d: delivered{kind: kind, subject: msg.Subject()}}
	j.hb = startHeartbeat(msg, max(ackWait/3, minHeartbeat), j.log)
	defer j.hb.stop()
	j.run()
}

func (j *job) run() {
	meta, err := j.msg.Metadata()
	if err != nil {
		// Only a message that did not come from a consumer lacks
		// metadata; there is nothing to decide about it.
		j.log.Error("message without JetStream metadata; returning it", "error", err)
		j.nak(shutdownNakDelay)
		return
	}
	j.d.seq = meta.Sequence.Stream
	j.d.delivery = int(meta.NumDelivered)
	j.d.receivedAt = meta.Timestamp
	j.log = j.log.With("streamSeq", j.d.seq, "delivery", j.d.delivery)

	subjKind, tenant, err := contract.ParseSubmitSubject(j.d.subject)
	if err == nil && subjKind != j.d.kind {
		err = fmt.Errorf("subject %q reached the %s consumer", j.d.subject, j.d.kind)
	}
	if err != nil {
		j.deadLetter(reasonMalformed, err)
		return
	}
	j.d.tenant = tenant
	j.log = j.log.With("tenant", tenant)

	sub, err := contract.ParseSubmission(j.d.kind, j.msg.Data())
	if err != nil {
		j.d.id = lenientID(j.msg.Data())
		if j.d.id != "" {
			j.log = j.log.With("id", j.d.id)
		}
		j.deadLetter(reasonMalformed, err)
		return
	}
	j.d.sub, j.d.id = sub, sub.ID
	j.log = j.log.With(submissionAttrs(sub)...)
	deadline := j.d.receivedAt.Add(j.w.cfg.MessageDeadline)

	key := stateKey(tenant, j.d.kind, sub.ID)
	ctx, cancel := j.opCtx()
	st, rev, err := loadState(ctx, j.r.kv, key)
	cancel()
	if err != nil {
		j.fail(err, deadline)
		return
	}
	j.journal = newJournal(j.r.kv, key, st, rev, j.d.seq, j.d.delivery, j.w.cfg.Now)
	req := handlers.Request{
		Tenant:     tenant,
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
		res.ID, res.Tenant, res.Kind = sub.ID, tenant, j.d.kind
		j.log.Info("result already recorded; publishing it again", "status", res.Status)
		j.publishAndAck(res)
		return
	case ackOnly:
		j.log.Info("message already dead-lettered; acknowledging it")
		j.ack()
		return
	case leaveToOwner:
		j.leave()
		return
	case startAfterCrash:
		// The record says a Toll call was started and never answered:
		// the worker making it died. Whether Toll received it is
		// unknown; this delivery submits again.
		j.log.Warn("an earlier delivery died during its Toll call; submitting again",
			"stateDelivery", st.Delivery, "stateUpdatedAt", st.UpdatedAt)
		req.Unresolved = true
	case resumeRequest:
		req.RequestID = st.RequestID
		j.withRequestID(st.RequestID)
		j.log.Debug("resuming the recorded Toll request")
	}

	now := j.w.cfg.Now()
	if !now.Before(deadline) {
		j.deadLetter(reasonDeadline, fmt.Errorf("message deadline %s passed before attempt %d", deadline.UTC().Format(time.RFC3339), j.d.delivery))
		return
	}
	if req.RequestID == "" && sub.After != "" {
		// Ordering is only checked before anything reached Toll: once a
		// requestId is recorded, the call it follows was already allowed.
		resolved, out, wait := j.awaitAfter(sub)
		switch {
		case wait:
			return
		case out != nil:
			j.complete(*out)
			return
		}
		req.Submission = resolved
	}
	hctx, hcancel := context.WithDeadline(j.r.handlerCtx, deadline)
	out, herr := j.w.cfg.Handlers[j.d.kind].Handle(hctx, req)
	hcancel()

	if j.journal.Superseded() {
		j.leave()
		return
	}
	if herr == nil && out.Status != contract.StatusAccepted && out.Status != contract.StatusRejected {
		herr = failure.Mark(fmt.Errorf("handler returned status %q, want accepted or rejected", out.Status), failure.Permanent)
	}
	if herr != nil {
		if j.r.handlerCtx.Err() == nil {
			j.w.failed(j.r, j.d.kind, herr)
		}
		j.fail(herr, deadline)
		return
	}
	j.w.succeeded(j.d.kind)
	j.complete(out)
}

// complete records, publishes and acks the result of an outcome.
func (j *job) complete(out handlers.Outcome) {
	res := outcomeResult(j.d, out, j.journal.RequestID(), j.w.cfg.Now())
	j.withRequestID(res.RequestID)
	if res.MRN != "" && (j.d.sub == nil || j.d.sub.MRN == "") {
		j.log = j.log.With("mrn", res.MRN)
	}
	ctx, cancel := j.opCtx()
	err := j.journal.done(ctx, res)
	cancel()
	if errors.Is(err, errSuperseded) {
		// Another delivery wrote meanwhile. If it recorded a result,
		// publishing that one (deduplicated) is what it does too.
		ctx, cancel := j.opCtx()
		st, _, lerr := loadState(ctx, j.r.kv, j.journal.key)
		cancel()
		if lerr == nil && st != nil && st.Phase == phaseDone && st.Result != nil {
			j.publishAndAck(*st.Result)
			return
		}
		j.leave()
		return
	}
	if err != nil {
		// The outcome is lost with this attempt; the state still
		// holds the requestId, so the next one follows it.
		j.fail(err, j.d.receivedAt.Add(j.w.cfg.MessageDeadline))
		return
	}
	j.publishAndAck(res)
}

// publishAndAck publishes a final result and acks the message. The state
// record says done before this runs, so a failed publish or lost ack
// leads to a redelivery that publishes the same result again, which the
// results stream drops as a duplicate.
func (j *job) publishAndAck(res contract.Result) {
	m, err := resultMsg(res, j.msg.Headers())
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
		j.nak(delay)
		return
	}
	j.log.Info("result published", "status", res.Status, "attempts", res.Attempts)
	j.ack()
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
		switch {
		case a.shutdown:
			j.log.Debug("cancelled by shutdown; returning the message", "retryIn", a.delay)
		case a.configFault:
			// The remedy is logged once, when the kind is paused.
			j.log.Info("configuration fault; the message is kept and retried", "error", err, "retryIn", a.delay)
		default:
			j.log.Info("transient failure; retrying later", "error", err, "retryIn", a.delay)
		}
		j.nak(a.delay)
	}
}

// deadLetter publishes the message to the DLQ and, when it has a tenant
// and id, a dead-lettered result; then acks it. Each publish has its own
// Nats-Msg-Id, so doing this again after a lost ack adds nothing.
func (j *job) deadLetter(reason string, cause error) {
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
	if err == nil && j.d.tenant != "" && j.d.id != "" {
		var rm *nats.Msg
		rm, err = resultMsg(deadLetterResult(j.d, reason, errText, requestID, now), j.msg.Headers())
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
		j.nak(delay)
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
	j.ack()
}

// ack acknowledges and waits for the server's confirmation: a lost ack
// means a redelivery, which the state record turns into a republish.
func (j *job) ack() {
	j.hb.stop()
	ctx, cancel := j.opCtx()
	defer cancel()
	if err := j.msg.DoubleAck(ctx); err != nil {
		j.log.Warn("ack not confirmed; a redelivery will publish the same outcome again", "error", err)
	}
}

// nak returns the message for redelivery after delay.
func (j *job) nak(delay time.Duration) {
	j.hb.stop()
	if err := j.msg.NakWithDelay(delay); err != nil {
		j.log.Warn("nak failed; the message is redelivered after AckWait", "error", err)
	}
}

// leave stops working on a message that a later delivery owns, without
// ack or nak: an ack would end the owner's message under it and a nak
// would make the server deliver it a third time while the owner works.
func (j *job) leave() {
	j.hb.stop()
	j.log.Info("a later delivery of this message owns the submission; leaving it to that one")
}

func (j *job) opCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(j.r.handlerCtx), finishTimeout)
}

// submissionAttrs are the log attributes of a parsed submission.
func submissionAttrs(s *contract.Submission) []any {
	attrs := []any{"id", s.ID, "operation", s.Operation}
	if s.Level != "" {
		attrs = append(attrs, "level", s.Level)
	}
	if s.MRN != "" {
		attrs = append(attrs, "mrn", s.MRN)
	}
	return attrs
}

// heartbeat tells the server, every interval from the start of processing,
// that the message is still being worked on, so that a Toll call longer
// than AckWait is not redelivered to another worker meanwhile.
type heartbeat struct {
	once sync.Once
	quit chan struct{}
	done chan struct{}
}

func startHeartbeat(msg jetstream.Msg, every time.Duration, log *slog.Logger) *heartbeat {
	hb := &heartbeat{quit: make(chan struct{}), done: make(chan struct{})}
	// At once as well: the message may have waited in the client's
	// buffer for part of its AckWait.
	if err := msg.InProgress(); err != nil {
		log.Debug("heartbeat failed", "error", err)
	}
	go func() {
		defer close(hb.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-hb.quit:
				return
			case <-t.C:
				if err := msg.InProgress(); err != nil {
					log.Debug("heartbeat failed", "error", err)
				}
			}
		}
	}()
	return hb
}

// stop ends the heartbeat and waits for it; it may be called many times.
func (hb *heartbeat) stop() {
	hb.once.Do(func() { close(hb.quit) })
	<-hb.done
}
