package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/samples"
)

// resultTimeout bounds the wait for a scenario's results; the full
// latency scenario needs about a minute.
const resultTimeout = 5 * time.Minute

// endGrace is how long results may take to reach the watch once the run
// that published them has stopped.
const endGrace = 5 * time.Second

// message is one submission to publish.
type message struct {
	kind contract.Kind
	id   string
	body []byte
}

// variants makes n submissions of kind from the sample file name, each with
// the id <prefix>-<n> and that id written at the declaration's docPath
// (dot-separated), the field by which Toll refuses a repeated declaration,
// so that Toll accepts every one. edit, if not nil, changes each further.
func variants(kind contract.Kind, name, prefix string, n int, docPath string, edit func(i int, sub map[string]any)) ([]message, error) {
	all, err := samples.Load(kind)
	if err != nil {
		return nil, err
	}
	var body []byte
	for _, s := range all {
		if s.Name == name {
			body = s.Body
		}
	}
	if body == nil {
		return nil, fmt.Errorf("sample %s/%s is missing", kind, name)
	}
	out := make([]message, n)
	for i := range n {
		var sub map[string]any
		if err := json.Unmarshal(body, &sub); err != nil {
			return nil, fmt.Errorf("sample %s/%s: %w", kind, name, err)
		}
		id := fmt.Sprintf("%s-%05d", prefix, i)
		sub["id"] = id
		delete(sub, "after")
		if docPath != "" {
			if err := setPath(sub, "declaration."+docPath, strings.ToUpper(id)); err != nil {
				return nil, fmt.Errorf("sample %s/%s: %w", kind, name, err)
			}
		}
		if edit != nil {
			edit(i, sub)
		}
		b, err := json.Marshal(sub)
		if err != nil {
			return nil, err
		}
		out[i] = message{kind: kind, id: id, body: b}
	}
	return out, nil
}

// setPath sets the string at a dot-separated path of objects.
func setPath(v map[string]any, path, value string) error {
	keys := strings.Split(path, ".")
	for _, k := range keys[:len(keys)-1] {
		next, ok := v[k].(map[string]any)
		if !ok {
			return fmt.Errorf("no object at %q of %s", k, path)
		}
		v = next
	}
	v[keys[len(keys)-1]] = value
	return nil
}

// Declaration paths that make a sample unique to Toll.
const (
	houseDocPath     = "consignmentHouseLevel.transportDocumentHouseLevel.documentNumber"
	transportDocPath = "activeBorderTransportMeans.identificationNumber"
)

// houses makes n road house consignments.
func houses(prefix string, n int) ([]message, error) {
	return variants(contract.KindRoad, "03-house.json", prefix, n, houseDocPath, nil)
}

// publishBatch bounds the asynchronous publishes awaited at once.
const publishBatch = 500

// publish sends msgs to digitoll.submit.<kind>.default with their
// contract Nats-Msg-Id, and returns once JetStream has stored them all.
func (s *stage) publish(ctx context.Context, msgs []message) error {
	for start := 0; start < len(msgs); start += publishBatch {
		batch := msgs[start:min(start+publishBatch, len(msgs))]
		futures := make([]jetstream.PubAckFuture, 0, len(batch))
		for _, m := range batch {
			f, err := s.js.PublishMsgAsync(&nats.Msg{Subject: contract.SubmitSubject(m.kind, contract.DefaultTenant), Data: m.body},
				jetstream.WithMsgID(contract.MsgID(contract.DefaultTenant, m.id)))
			if err != nil {
				return fmt.Errorf("publish %s: %w", m.id, err)
			}
			futures = append(futures, f)
		}
		for i, f := range futures {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				return fmt.Errorf("publish %s: %w", batch[i].id, err)
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	return nil
}

// resultWatch counts results by submission id as they are published,
// through a plain subscription, and notes when each first came.
type resultWatch struct {
	sub  *nats.Subscription
	want int

	mu   sync.Mutex
	seen map[string]bool
	// times[i] is when the (i+1)th distinct result came.
	times []time.Time
	done  chan struct{}
}

// watchResults starts counting results; call it before the worker starts.
func (s *stage) watchResults(want int) (*resultWatch, error) {
	w := &resultWatch{want: want, seen: map[string]bool{}, done: make(chan struct{})}
	sub, err := s.nc.Subscribe("digitoll.result.>", func(m *nats.Msg) {
		id := m.Header.Get(contract.HeaderResultSubmissionID)
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.seen[id] {
			return
		}
		w.seen[id] = true
		w.times = append(w.times, time.Now())
		if len(w.seen) == w.want {
			close(w.done)
		}
	})
	if err != nil {
		return nil, err
	}
	// Up to every result at once may wait for the callback.
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		_ = sub.Unsubscribe()
		return nil, err
	}
	w.sub = sub
	return w, nil
}

// wait returns when every wanted result has been seen, with the time the
// last one came. It gives up when ctx ends, after resultTimeout, and,
// when run is not nil, as soon as run stops by itself: a worker that
// failed would otherwise leave it waiting for results that cannot come,
// with its error unsaid until the timeout.
func (w *resultWatch) wait(ctx context.Context, run *running) (time.Time, error) {
	t := time.NewTimer(resultTimeout)
	defer t.Stop()
	var ended <-chan struct{}
	if run != nil {
		ended = run.ended
	}
	select {
	case <-w.done:
		return w.at(w.want), nil
	case <-ended:
		// Results it published just before it stopped may still be on
		// their way to the subscription.
		grace := time.NewTimer(endGrace)
		defer grace.Stop()
		select {
		case <-w.done:
			return w.at(w.want), nil
		case <-grace.C:
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		return time.Time{}, fmt.Errorf("stopped by itself after %d of %d results: %v", len(w.seen), w.want, run.err)
	case <-t.C:
	case <-ctx.Done():
		w.mu.Lock()
		defer w.mu.Unlock()
		return time.Time{}, fmt.Errorf("%d of %d results: %w", len(w.seen), w.want, ctx.Err())
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return time.Time{}, fmt.Errorf("%d of %d results after %s", len(w.seen), w.want, resultTimeout)
}

// at is when the kth distinct result came (1-based), once it has.
func (w *resultWatch) at(k int) time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.times[k-1]
}

// stop ends the subscription.
func (w *resultWatch) stop() { _ = w.sub.Unsubscribe() }

// verify checks what the worker left behind: exactly one result in the
// results stream for each id of msgs, each accepted, and every submission
// acknowledged (the work-queue submit stream empty).
func (s *stage) verify(ctx context.Context, msgs []message) error {
	want := make(map[string]bool, len(msgs))
	for _, m := range msgs {
		want[m.id] = true
	}
	st, err := s.js.Stream(ctx, contract.StreamResults)
	if err != nil {
		return err
	}
	info, err := st.Info(ctx)
	if err != nil {
		return err
	}
	stored := int(info.State.Msgs)
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return err
	}
	count := map[string]int{}
	var problems []string
	for read := 0; read < stored; {
		batch, err := cons.Fetch(min(stored-read, 500), jetstream.FetchMaxWait(10*time.Second))
		if err != nil {
			return err
		}
		n := 0
		for m := range batch.Messages() {
			n++
			var r contract.Result
			if err := json.Unmarshal(m.Data(), &r); err != nil {
				return fmt.Errorf("result on %s: %w", m.Subject(), err)
			}
			count[r.ID]++
			if r.Status != contract.StatusAccepted && len(problems) < 3 {
				problems = append(problems, fmt.Sprintf("%s %s: %s %v", r.ID, r.Status, r.Note, r.Errors))
			}
		}
		if err := batch.Error(); err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("read %d of the %d results stored", read, stored)
		}
		read += n
	}
	var missing, repeated, unknown int
	for id := range want {
		switch c := count[id]; {
		case c == 0:
			missing++
		case c > 1:
			repeated++
		}
	}
	for id := range count {
		if !want[id] {
			unknown++
		}
	}
	if missing+repeated+unknown > 0 || len(problems) > 0 {
		return fmt.Errorf("results: %d missing, %d ids with more than one, %d for ids never published, not accepted: %s",
			missing, repeated, unknown, strings.Join(problems, "; "))
	}
	return s.waitAcked(ctx)
}

// waitAcked waits until every submission is acknowledged: the worker acks
// just after it publishes the result.
func (s *stage) waitAcked(ctx context.Context) error {
	deadline := time.Now().Add(settleTimeout)
	for {
		st, err := s.js.Stream(ctx, contract.StreamSubmit)
		if err != nil {
			return err
		}
		info, err := st.Info(ctx)
		if err != nil {
			return err
		}
		if info.State.Msgs == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d submissions still unacknowledged %s after their results", info.State.Msgs, settleTimeout)
		}
		if !sleepCtx(ctx, 20*time.Millisecond) {
			return ctx.Err()
		}
	}
}

// sleepCtx waits d or until ctx is done, reporting whether d passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// errNotAccepted is wrapped when a bare-loop call does not end accepted.
var errNotAccepted = errors.New("not accepted")
