package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
type plainWorker struct {
	js          jetstream.JetStream
	handler     handlers.Handler
	kind        contract.Kind
	concurrency int
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
	out, err := p.handler.Handle(ctx, handlers.Request{Tenant: tenant, Kind: kind, Submission: sub, ReceivedAt: received, Delivery: 1})
	if err != nil {
		return fmt.Errorf("%s: %w", sub.ID, err)
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
