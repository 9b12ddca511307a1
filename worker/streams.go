package worker

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/digitoll/digitoll-worker/contract"
)

// StateBucket is the KV bucket where the worker records each submission's
// progress (see state.go). One key per tenant, kind and id.
const StateBucket = "digitoll-state"

// Defaults of StreamOptions.
const (
	DefaultResultsMaxAge = 14 * 24 * time.Hour
	DefaultStateTTL      = 14 * 24 * time.Hour
	DefaultRoutingMaxAge = 14 * 24 * time.Hour

	// duplicateWindow is how long JetStream remembers a Nats-Msg-Id. Ten
	// minutes covers a producer's retries and the worker's own
	// republishing after a lost ack, which happens within seconds to
	// minutes; a longer window costs memory per message on the server.
	duplicateWindow = 10 * time.Minute
)

// StreamOptions shapes the streams and buckets EnsureStreams creates.
type StreamOptions struct {
	// Replicas is the number of copies in a JetStream cluster; 0 means 1.
	// Use 3 in production clusters.
	Replicas int
	// ResultsMaxAge is how long results stay in DIGITOLL_RESULTS for
	// subscribers that were offline; 0 means 14 days.
	ResultsMaxAge time.Duration
	// StateTTL is how long the worker's progress record of a submission is
	// kept; 0 means 14 days. It must outlast every redelivery and replay
	// of a message (Config.MessageDeadline), or a late redelivery would
	// no longer find the requestId that keeps it from submitting twice.
	StateTTL time.Duration
	// Storage is where the streams keep their data; the zero value is
	// file storage, the only sensible choice for messages that must
	// survive a restart.
	Storage jetstream.StorageType
}

func (o StreamOptions) withDefaults() StreamOptions {
	if o.Replicas == 0 {
		o.Replicas = 1
	}
	if o.ResultsMaxAge == 0 {
		o.ResultsMaxAge = DefaultResultsMaxAge
	}
	if o.StateTTL == 0 {
		o.StateTTL = DefaultStateTTL
	}
	return o
}

// EnsureStreams creates or updates the streams and buckets of docs/contract.md
// and the worker's state bucket. It is idempotent: every worker process
// calls it on start. A change the server cannot apply in place (such as a
// different retention policy on an existing stream) is returned as an error
// rather than forced, since forcing it would mean deleting messages.
//
// The state bucket, the results and the DLQ streams are S2-compressed:
// they keep JSON for days, whose field names and values repeat from one
// record to the next. The server compresses a block of a file-stored
// stream once it is full (4–8 MB) and decompresses it on a read of an
// old message; the state records read back are nearly always the newest,
// still in the open block. An existing stream takes the setting on the
// next start of a worker (the server allows the change in place): blocks
// sealed from then on are compressed, older ones stay as they are until
// their messages age out. The submit stream is left uncompressed: a work
// queue's messages are gone within seconds, their block seldom fills.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, o StreamOptions) error {
	if o.Replicas < 0 || o.ResultsMaxAge < 0 || o.StateTTL < 0 {
		return fmt.Errorf("worker: stream options must not be negative: %+v", o)
	}
	o = o.withDefaults()
	streams := []jetstream.StreamConfig{
		{
			// WorkQueue: a submission is gone once the worker acks it
			// (after its result or dead letter is stored), so the stream
			// holds exactly the work still to do. Only one consumer may
			// match a subject, which the per-kind filters respect.
			Name:        contract.StreamSubmit,
			Description: "Submissions to Toll, consumed by digitoll-worker",
			Subjects:    []string{contract.SubjectsSubmit},
			Retention:   jetstream.WorkQueuePolicy,
			Duplicates:  duplicateWindow,
		},
		{
			// Limits with an age: subscribers may be offline for a while
			// and catch up, but results are not an archive.
			Name:        contract.StreamResults,
			Description: "One result per submission id",
			Subjects:    []string{contract.SubjectsResults},
			Retention:   jetstream.LimitsPolicy,
			MaxAge:      o.ResultsMaxAge,
			Duplicates:  duplicateWindow,
			Compression: jetstream.S2Compression,
		},
		{
			// Limits without an age: operators browse it with the nats
			// CLI (a WorkQueue stream cannot be browsed) and remove an
			// entry only once it is replayed or dismissed. The duplicate
			// window makes re-dead-lettering after a lost ack harmless.
			Name:        contract.StreamDLQ,
			Description: "Submissions the worker could not process",
			Subjects:    []string{contract.SubjectsDLQ},
			Retention:   jetstream.LimitsPolicy,
			Duplicates:  duplicateWindow,
			Compression: jetstream.S2Compression,
		},
		{
			Name:        contract.StreamRouting,
			Description: "Routing signals from Toll's routing feeds",
			Subjects:    []string{contract.SubjectsRouting},
			Retention:   jetstream.LimitsPolicy,
			MaxAge:      DefaultRoutingMaxAge,
			Duplicates:  duplicateWindow,
		},
	}
	for _, cfg := range streams {
		cfg.Storage = o.Storage
		cfg.Replicas = o.Replicas
		if _, err := js.CreateOrUpdateStream(ctx, cfg); err != nil {
			return fmt.Errorf("create or update stream %s: %w", cfg.Name, err)
		}
	}
	// History 1: the worker needs the latest phase of a submission only;
	// compare-and-set on its revision is what keeps two workers apart.
	if _, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      StateBucket,
		Description: "digitoll-worker progress per submission",
		History:     1,
		TTL:         o.StateTTL,
		Storage:     o.Storage,
		Replicas:    o.Replicas,
		Compression: true,
	}); err != nil {
		return fmt.Errorf("create or update KV bucket %s: %w", StateBucket, err)
	}
	if _, err := js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
		Bucket:      contract.BucketDocuments,
		Description: "Files for Toll too large to travel inside a submission",
		Storage:     o.Storage,
		Replicas:    o.Replicas,
	}); err != nil {
		return fmt.Errorf("create or update object store %s: %w", contract.BucketDocuments, err)
	}
	return nil
}
