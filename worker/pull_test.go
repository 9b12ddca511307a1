package worker

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/handlers"
)

// scriptedIter is a message iterator that answers Next from its script,
// then says it is closed.
type scriptedIter struct {
	script []func() (jetstream.Msg, error)
}

func (s *scriptedIter) Next(...jetstream.NextOpt) (jetstream.Msg, error) {
	if len(s.script) == 0 {
		return nil, jetstream.ErrMsgIteratorClosed
	}
	next := s.script[0]
	s.script = s.script[1:]
	return next()
}

func (*scriptedIter) Stop()  {}
func (*scriptedIter) Drain() {}

// metadataLessMsg is a delivery without JetStream metadata, which process
// hands back at once.
type metadataLessMsg struct {
	jetstream.Msg
	naks atomic.Int32
}

func (*metadataLessMsg) Metadata() (*jetstream.MsgMetadata, error) {
	return nil, errors.New("no metadata")
}
func (*metadataLessMsg) Subject() string      { return roadSubject }
func (*metadataLessMsg) Headers() nats.Header { return nil }
func (*metadataLessMsg) InProgress() error    { return nil }
func (m *metadataLessMsg) NakWithDelay(time.Duration) error {
	m.naks.Add(1)
	return nil
}

// An iterator that misses its heartbeats after messages came has lost its
// pull in the client library (see pullHeartbeat): consume asks for a
// fresh iterator on the same consumer. One that never brought a message
// may have lost its consumer: consume returns the error, and the pull
// loop makes the consumer again.
func TestConsumeTellsALostPullFromALostConsumer(t *testing.T) {
	t.Parallel()
	w, err := New(struct{ jetstream.JetStream }{}, Config{
		Handlers: map[contract.Kind]handlers.Handler{contract.KindRoad: &fakeHandler{behaviour: accept}},
	})
	if err != nil {
		t.Fatal(err)
	}
	silent := func() (jetstream.Msg, error) { return nil, jetstream.ErrNoHeartbeat }
	for _, tc := range []struct {
		name     string
		messages int
		want     error
	}{
		{"silent from the start", 0, jetstream.ErrNoHeartbeat},
		{"silent after a message", 1, errPullLost},
		{"silent after messages", 3, errPullLost},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg := &metadataLessMsg{}
			it := &scriptedIter{}
			for range tc.messages {
				it.script = append(it.script, func() (jetstream.Msg, error) { return msg, nil })
			}
			it.script = append(it.script, silent)
			r := &run{slots: w.newSlots(), handlerCtx: context.Background()}
			err := w.consume(testCtx(t), r, lane{kind: contract.KindRoad}, it, time.Minute)
			r.inflight.Wait()
			if !errors.Is(err, tc.want) {
				t.Errorf("consume returned %v, want %v", err, tc.want)
			}
			if got := int(msg.naks.Load()); got != tc.messages {
				t.Errorf("%d messages handed back, want %d", got, tc.messages)
			}
		})
	}
}
