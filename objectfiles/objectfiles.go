// Package objectfiles reads the files of document submissions from the
// JetStream Object Store, a chunk at a time and checked against their
// digest, for the document handler to upload to Toll.
package objectfiles

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/failure"
	"github.com/digitoll/digitoll-worker/handlers"
)

// The documents bucket's stream and chunk subjects, as the Object Store
// lays them out (ADR-20): object chunks are messages on
// $O.<bucket>.C.<object nuid> in the stream OBJ_<bucket>.
const (
	objectStream       = "OBJ_" + contract.BucketDocuments
	objectChunkSubject = "$O." + contract.BucketDocuments + ".C."
)

// Read-ahead of an object: about this many bytes of chunks wait in the
// client (at least two chunks, if the object's chunks are larger).
// The library's own ObjectStore.Get reads through a push consumer whose
// flow-control window grows to 32 MiB, so a reader slower than NATS (an
// upload to Toll is) has the whole file buffered in memory; a pull
// consumer that asks for a few chunks at a time keeps memory flat
// whatever the file's size.
const (
	objectReadAhead   = 1 << 20
	defaultChunkBytes = 128 << 10
	// consumerCleanupTimeout bounds deleting a reader's consumer on
	// Close; a consumer left behind expires by its inactive threshold.
	consumerCleanupTimeout = 5 * time.Second
	consumerInactive       = time.Minute
)

// reasonMalformed is the dead-letter reason of an object whose bytes do
// not match its digest, the worker's for a submission it cannot use.
const reasonMalformed = "malformed"

// Source reads document files from the Object Store bucket
// contract.BucketDocuments, where producers put files too large to travel
// inside a submission. It is the handlers.FileSource of the document
// handler. The bucket is looked up on first use (the worker's
// EnsureStreams creates it), so a worker can be built before the bucket
// exists.
type Source struct {
	js jetstream.JetStream

	mu    sync.Mutex
	store jetstream.ObjectStore
}

// New returns the file source for js's documents bucket.
func New(js jetstream.JetStream) *Source {
	return &Source{js: js}
}

var _ handlers.FileSource = (*Source)(nil)

// Open starts reading the object called name and returns it as a stream
// of its chunks, read ahead by at most about a MiB, with its size. An
// object that does not exist (or was deleted) gives an error wrapping
// handlers.ErrFileMissing; a bucket that does not exist is a
// configuration failure. The reader checks the object's SHA-256 digest
// at its end and fails the read on a mismatch. Reads end with ctx;
// closing the reader stops a read in progress.
func (f *Source) Open(ctx context.Context, name string) (io.ReadCloser, int64, error) {
	store, err := f.bucket(ctx)
	if err != nil {
		return nil, 0, err
	}
	info, err := store.GetInfo(ctx, name)
	switch {
	case errors.Is(err, jetstream.ErrObjectNotFound):
		return nil, 0, fmt.Errorf("object %q in bucket %s: %w", name, contract.BucketDocuments, handlers.ErrFileMissing)
	case err != nil:
		return nil, 0, fmt.Errorf("object %q in bucket %s: %w", name, contract.BucketDocuments, err)
	case info.Opts != nil && info.Opts.Link != nil:
		return nil, 0, fmt.Errorf("object %q in bucket %s is a link; store the file itself: %w", name, contract.BucketDocuments, failure.ErrPermanent)
	}
	digest, err := jetstream.DecodeObjectDigest(info.Digest)
	if err != nil {
		return nil, 0, fmt.Errorf("object %q in bucket %s: digest %q: %w: %w", name, contract.BucketDocuments, info.Digest, err, failure.ErrPermanent)
	}
	r := &objectReader{ctx: ctx, js: f.js, name: name, size: info.Size, digest: digest, hash: sha256.New()}
	if info.Size == 0 {
		return r, 0, nil
	}
	chunk := defaultChunkBytes
	if info.Opts != nil && info.Opts.ChunkSize > 0 {
		chunk = int(info.Opts.ChunkSize)
	}
	cons, err := f.js.OrderedConsumer(ctx, objectStream, jetstream.OrderedConsumerConfig{
		FilterSubjects:    []string{objectChunkSubject + info.NUID},
		InactiveThreshold: consumerInactive,
	})
	if err != nil {
		return nil, 0, fmt.Errorf("object %q in bucket %s: reading its chunks: %w", name, contract.BucketDocuments, err)
	}
	r.cons = cons
	// Bounded in messages, not bytes: with PullMaxBytes the library
	// allocates a channel for a million messages (8 MiB) per reader.
	r.msgs, err = cons.Messages(jetstream.PullMaxMessages(max(objectReadAhead/chunk, 2)))
	if err != nil {
		r.Close()
		return nil, 0, fmt.Errorf("object %q in bucket %s: reading its chunks: %w", name, contract.BucketDocuments, err)
	}
	return r, int64(info.Size), nil
}

// bucket returns the documents bucket, looking it up once.
func (f *Source) bucket(ctx context.Context) (jetstream.ObjectStore, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.store != nil {
		return f.store, nil
	}
	store, err := f.js.ObjectStore(ctx, contract.BucketDocuments)
	switch {
	case errors.Is(err, jetstream.ErrBucketNotFound):
		return nil, fmt.Errorf("object store bucket %s does not exist (the worker creates it on start unless told not to): %w", contract.BucketDocuments, failure.ErrConfig)
	case err != nil:
		return nil, fmt.Errorf("object store bucket %s: %w", contract.BucketDocuments, err)
	}
	f.store = store
	return store, nil
}

// objectReader reads one object's chunks in order from an ordered pull
// consumer. Read is called from one goroutine at a time; Close may be
// called from another.
type objectReader struct {
	ctx    context.Context
	js     jetstream.JetStream
	name   string
	size   uint64
	digest []byte
	cons   jetstream.Consumer        // nil for an empty object
	msgs   jetstream.MessagesContext // nil for an empty object

	hash     hash.Hash
	chunk    []byte // the unread rest of the current chunk
	received uint64 // bytes of the chunks received
	err      error  // sticky, io.EOF at the end

	closeOnce sync.Once
}

// Read hands out the object's bytes, fetching the next chunk when one is
// used up. After the last byte it checks the digest: io.EOF means the
// object arrived whole and unchanged.
func (r *objectReader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	for len(r.chunk) == 0 {
		if r.received == r.size {
			r.err = io.EOF
			if !bytes.Equal(r.hash.Sum(nil), r.digest) {
				r.err = corrupt(fmt.Errorf("object %q: %w", r.name, jetstream.ErrDigestMismatch))
			}
			return 0, r.err
		}
		msg, err := r.msgs.Next(jetstream.NextContext(r.ctx))
		if err != nil {
			r.err = fmt.Errorf("object %q: reading chunk after %d of %d bytes: %w", r.name, r.received, r.size, err)
			return 0, r.err
		}
		data := msg.Data()
		if r.received+uint64(len(data)) > r.size {
			r.err = corrupt(fmt.Errorf("object %q: chunks hold more than its %d bytes: %w", r.name, r.size, jetstream.ErrDigestMismatch))
			return 0, r.err
		}
		r.received += uint64(len(data))
		r.hash.Write(data)
		r.chunk = data
	}
	n := copy(p, r.chunk)
	r.chunk = r.chunk[n:]
	return n, nil
}

// corrupt marks an object whose bytes do not match its digest: reading
// it again gives the same bytes, so the submission is dead-lettered.
func corrupt(err error) error {
	return failure.WithReason(err, failure.Permanent, reasonMalformed)
}

// Close stops reading (a Read waiting for a chunk returns) and deletes
// the consumer on the server.
func (r *objectReader) Close() error {
	r.closeOnce.Do(func() {
		if r.msgs != nil {
			r.msgs.Stop()
		}
		if r.cons == nil {
			return
		}
		info := r.cons.CachedInfo()
		if info == nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.ctx), consumerCleanupTimeout)
		defer cancel()
		// Best effort: a consumer that cannot be deleted now expires
		// after consumerInactive.
		_ = r.js.DeleteConsumer(ctx, objectStream, info.Name)
	})
	return nil
}
