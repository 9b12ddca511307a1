package routing

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/failure"
)

// MarkerBucket is the KV bucket of the pollers' markers, one key
// "<tenant>.<feed>" per tenant and feed holding the routingResult.id of
// the last signal published.
const MarkerBucket = "digitoll-routing"

// EnsureBucket creates or updates the marker bucket with replicas copies
// (0 means 1). It is idempotent. Markers have no TTL: a lost marker would
// make the poller depend on the stream alone to find its place.
func EnsureBucket(ctx context.Context, js jetstream.JetStream, replicas int) (jetstream.KeyValue, error) {
	if replicas < 0 {
		return nil, fmt.Errorf("routing: marker bucket replicas %d: %w", replicas, ErrInvalidConfig)
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      MarkerBucket,
		Description: "digitoll-worker: position in each tenant's Toll routing feeds",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    max(replicas, 1),
	})
	if err != nil {
		return nil, fmt.Errorf("routing: create or update KV bucket %s: %w", MarkerBucket, err)
	}
	return kv, nil
}

// MarkerKey is the key of tenant's marker for feed in MarkerBucket.
func MarkerKey(tenant string, feed contract.Feed) string { return tenant + "." + string(feed) }

// errMarkerMoved means the marker changed between this poller's read and
// write: another poller runs for the same tenant and feed, or an operator
// moved it. Transient: the poller reads its place again.
var errMarkerMoved = errors.New("the marker was changed by someone else (another poller for the same tenant, or an operator)")

// place is where a feed's poller stands.
type place struct {
	// marker is the id of the last signal published and recorded; empty
	// at the start of the feed.
	marker string
	// rev is the KV revision of the marker key; 0 if there is none.
	rev uint64
}

// published is what the last message on a feed's subject says about
// itself.
type published struct {
	// id is the signal's routingResult.id.
	id string
	// after is the marker its page was fetched after; empty for the
	// first page.
	after string
}

// resumeFrom decides, from the recorded marker and the last message on the
// subject (nil if none), which marker to read on from, and whether it is
// the message's id (signals published whose marker was not saved). See the
// package documentation for why this holds.
func resumeFrom(marker string, last *published) (string, bool) {
	switch {
	case last == nil || last.id == "" || last.id == marker:
		return marker, false
	case marker == "" || last.after == marker:
		return last.id, true
	default:
		return marker, false
	}
}

// readPlace reads the marker from KV and the last message from the
// stream, and returns the place to read on from. When the stream is ahead
// of the marker, it saves the stream's position as the marker first.
func (f *feedPoller) readPlace(ctx context.Context) (*place, error) {
	pl := &place{}
	e, err := f.kv.Get(ctx, f.key)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
	case err != nil:
		return nil, fmt.Errorf("read routing marker %s: %w", f.key, err)
	default:
		pl.marker, pl.rev = string(e.Value()), e.Revision()
	}
	last, err := f.lastPublished(ctx)
	if err != nil {
		return nil, err
	}
	from, ahead := resumeFrom(pl.marker, last)
	if !ahead {
		f.log.DebugContext(ctx, "routing feed: reading on", "marker", pl.marker)
		return pl, nil
	}
	f.log.WarnContext(ctx, "routing feed: signals were published after the saved marker (a crash before it was saved); reading on after the last of them",
		"marker", pl.marker, "last_published", from)
	if err := f.save(ctx, pl, from); err != nil {
		return nil, err
	}
	return pl, nil
}

// lastPublished returns the headers of the last message on the feed's
// subject, or nil if the stream holds none.
func (f *feedPoller) lastPublished(ctx context.Context) (*published, error) {
	stream, err := f.js.Stream(ctx, contract.StreamRouting)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, fmt.Errorf("stream %s does not exist (worker.EnsureStreams creates it): %w", contract.StreamRouting, failure.ErrConfig)
	}
	if err != nil {
		return nil, fmt.Errorf("look up stream %s: %w", contract.StreamRouting, err)
	}
	msg, err := stream.GetLastMsgForSubject(ctx, f.subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the last message on %s: %w", f.subject, err)
	}
	return &published{id: msg.Header.Get(HeaderRoutingID), after: msg.Header.Get(HeaderRoutingAfter)}, nil
}

// save records marker with compare-and-set on the revision last read or
// written, and moves pl to it.
func (f *feedPoller) save(ctx context.Context, pl *place, marker string) error {
	var rev uint64
	var err error
	if pl.rev == 0 {
		rev, err = f.kv.Create(ctx, f.key, []byte(marker))
	} else {
		rev, err = f.kv.Update(ctx, f.key, []byte(marker), pl.rev)
	}
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return fmt.Errorf("save routing marker %s: %w: %w", f.key, errMarkerMoved, failure.ErrTransient)
	}
	if err != nil {
		return fmt.Errorf("save routing marker %s: %w", f.key, err)
	}
	pl.marker, pl.rev = marker, rev
	return nil
}
