package bench

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/handlers"
)

// plainConsumer is the durable consumer of the plain JetStream worker.
const plainConsumer = "bench-plain"

// plainWorker is the baseline the worker's cost is judged by: the least a
// correct but naive JetStream worker does for a declaration. A pull
// consumer feeds a bounded pool; each message is parsed, handed to the
// same handler (and so the same Toll client: one write, validation polled
// to the verdict), its result published and awaited, and the message
// acked. It keeps no journal or state records, has no lanes, no tracing,
// no heartbeats and no dead letters: a failure ends the run, since in the
// benchmark every declaration must be accepted.
//
// With a journal it also makes the three KV writes the worker's journal
// makes per message (records sending, sent and done, see journalWrites),
// and nothing else of the journal: the baseline that tells the worker's
// own CPU from the price of those writes.
type plainWorker struct {
	js          jetstream.JetStream
	handler     handlers.Handler
	kind        contract.Kind
	concurrency int
	// journal, when not nil, is the worker's state bucket
	// (worker.StateBucket), which receives the three writes.
	journal jetstream.KeyValue
}

// run consumes until ctx ends, or until the first message that fails,
// which it returns. It leaves its consumer behind; see clearConsumers.
func (p plainWorker) run(ctx context.Context) error {
	cons, err := p.js.CreateOrUpdateConsumer(ctx, contract.StreamSubmit, jetstream.ConsumerConfig{
		Durable:       plainConsumer,
		FilterSubject: contract.SubmitFilter(p.kind),
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       time.Minute,
		MaxAckPending: max(1000, p.concurrency),
	})
	if err != nil {
		return fmt.Errorf("plain worker: %w", err)
	}
	iter, err := cons.Messages(jetstream.PullMaxMessages(p.concurrency))
	if err != nil {
		return fmt.Errorf("plain worker: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		errOnce sync.Once
		first   error
		wg      sync.WaitGroup
	)
	fail := func(err error) { errOnce.Do(func() { first = err; cancel() }) }
	// The iterator's Next blocks until a message or Stop.
	wg.Go(func() {
		<-ctx.Done()
		iter.Stop()
	})
	jobs := make(chan jetstream.Msg)
	for range p.concurrency {
		wg.Go(func() {
			for m := range jobs {
				if err := p.handle(ctx, m); err != nil {
					fail(err)
				}
			}
		})
	}
	for {
		m, err := iter.Next()
		if errors.Is(err, jetstream.ErrNoHeartbeat) {
			// The iterator pulls again by itself; on a loaded machine a
			// heartbeat can come late without anything being wrong.
			continue
		}
		if err != nil {
			if !errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				fail(fmt.Errorf("plain worker: %w", err))
			}
			break
		}
		select {
		case jobs <- m:
		case <-ctx.Done():
		}
	}
	close(jobs)
	cancel()
	wg.Wait()
	if first != nil {
		return first
	}
	return nil
}

// handle carries out one message: parse, Toll, result, ack.
func (p plainWorker) handle(ctx context.Context, m jetstream.Msg) error {
	received := time.Now()
	kind, tenant, err := contract.ParseSubmitSubject(m.Subject())
	if err != nil {
		return err
	}
	sub, err := contract.ParseSubmission(kind, m.Data())
	if err != nil {
		return err
	}
	var jw *journalWrites
	if p.journal != nil {
		if jw, err = startJournal(ctx, p.journal, m, tenant, kind, sub.ID); err != nil {
			return err
		}
	}
	out, err := p.handler.Handle(ctx, handlers.Request{Tenant: tenant, Kind: kind, Submission: sub, ReceivedAt: received, Delivery: 1})
	if err != nil {
		return fmt.Errorf("%s: %w", sub.ID, err)
	}
	if jw != nil {
		if err := jw.sent(ctx, out.RequestID); err != nil {
			return err
		}
	}
	data, err := json.Marshal(contract.Result{
		ID: sub.ID, Tenant: tenant, Kind: kind, Operation: sub.Operation, Level: sub.Level,
		Status: out.Status, MRN: out.MRN, RequestID: out.RequestID,
		Errors: out.Errors, IncompleteDocumentation: out.IncompleteDocumentation, Note: out.Note,
		Attempts: 1, ReceivedAt: received, CompletedAt: time.Now(),
	})
	if err != nil {
		return err
	}
	if jw != nil {
		if err := jw.done(ctx, data); err != nil {
			return err
		}
	}
	h := nats.Header{}
	h.Set(contract.HeaderResultSubmissionID, sub.ID)
	// Toll has answered: the result is published and the message acked
	// even when the run is stopping, which it does as soon as the last
	// result is seen, often before that result's publish ack is back.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if _, err := p.js.PublishMsg(ctx, &nats.Msg{Subject: contract.ResultSubject(kind, tenant), Header: h, Data: data}); err != nil {
		return fmt.Errorf("%s: publish result: %w", sub.ID, err)
	}
	return m.Ack()
}

// journalWrites are the plain worker's stand-ins for the three records
// the worker's journal writes per message (worker/state.go): a Create of
// the record "sending" before the Toll call, an Update to "sent" with the
// requestId once Toll has answered, and an Update to "done" with the
// result before it is published, each a compare-and-set on the revision
// before and each awaiting JetStream's ack, under the worker's key of
// the submission. The records have the shape and about the size of the
// worker's (sending about 145 bytes, sent 190, done the result's JSON
// and 75 more: 440 for an accepted house consignment); building them
// costs next to nothing beside the writes.
type journalWrites struct {
	kv  jetstream.KeyValue
	key string
	// seq and digest are the message's stream sequence and a stand-in
	// for the submission's digest, which every record carries.
	seq    uint64
	digest string
	rev    uint64
}

// startJournal writes the record "sending" of message m, submission id.
func startJournal(ctx context.Context, kv jetstream.KeyValue, m jetstream.Msg, tenant string, kind contract.Kind, id string) (*journalWrites, error) {
	md, err := m.Metadata()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", id, err)
	}
	sum := sha256.Sum256([]byte(id))
	j := &journalWrites{
		kv:     kv,
		key:    tenant + "." + string(kind) + "." + base64.RawURLEncoding.EncodeToString([]byte(id)),
		seq:    md.Sequence.Stream,
		digest: base64.RawURLEncoding.EncodeToString(sum[:]),
	}
	if j.rev, err = kv.Create(ctx, j.key, j.record("sending", "")); err != nil {
		return nil, fmt.Errorf("%s: journal sending: %w", id, err)
	}
	return j, nil
}

// sent writes the record "sent" with Toll's requestId.
func (j *journalWrites) sent(ctx context.Context, requestID string) error {
	return j.update(ctx, "sent", j.record("sent", requestID))
}

// done writes the record "done" holding result, the result message's
// JSON.
func (j *journalWrites) done(ctx context.Context, result []byte) error {
	return j.update(ctx, "done", j.doneRecord(result))
}

func (j *journalWrites) update(ctx context.Context, phase string, data []byte) error {
	rev, err := j.kv.Update(ctx, j.key, data, j.rev)
	if err != nil {
		return fmt.Errorf("%s: journal %s: %w", j.key, phase, err)
	}
	j.rev = rev
	return nil
}

// doneRecord is the record "done" holding result, as the worker's
// journal writes it: the result and the digest, nothing else.
func (j *journalWrites) doneRecord(result []byte) []byte {
	b := make([]byte, 0, len(result)+96)
	b = append(b, `{"phase":"done","result":`...)
	b = append(b, result...)
	b = append(b, `,"digest":"`...)
	b = append(b, j.digest...)
	return append(b, `"}`...)
}

// record is a record short of the result, as the worker's journal writes
// it.
func (j *journalWrites) record(phase, requestID string) []byte {
	b := make([]byte, 0, 256)
	b = append(b, `{"phase":"`...)
	b = append(b, phase...)
	b = append(b, '"')
	if requestID != "" {
		b = append(b, `,"requestId":`...)
		b = strconv.AppendQuote(b, requestID)
	}
	b = append(b, `,"updatedAt":"`...)
	b = time.Now().UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","seq":`...)
	b = strconv.AppendUint(b, j.seq, 10)
	b = append(b, `,"delivery":1,"digest":"`...)
	b = append(b, j.digest...)
	return append(b, `"}`...)
}

// clearConsumers deletes every consumer of the submit stream. The stream
// is a work queue, on which two consumers may not filter the same
// subjects: the worker and the plain worker each create theirs when they
// start, after the other's is gone.
func (s *stage) clearConsumers(ctx context.Context) error {
	st, err := s.js.Stream(ctx, contract.StreamSubmit)
	if err != nil {
		return err
	}
	names := st.ConsumerNames(ctx)
	var all []string
	for n := range names.Name() {
		all = append(all, n)
	}
	if err := names.Err(); err != nil {
		return err
	}
	for _, n := range all {
		if err := st.DeleteConsumer(ctx, n); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return err
		}
	}
	return nil
}
