package worker

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/digitoll/digitoll-worker/contract"
)

// Reader is a durable consumer from which one tenant's upstream system
// reads its own results, routing signals or dead letters. Under the NATS
// permissions of deploy/nats-tenants.conf a tenant may pull from these and
// may create none: a consumer name is a wildcard token in a permission,
// so a tenant allowed to create consumers could re-filter another's.
type Reader struct {
	// Stream holds the messages.
	Stream string
	// Name is the durable consumer: results-<tenant>, routing-<tenant> or
	// dlq-<tenant>.
	Name string
	// Filter selects the tenant's subjects of every kind or feed.
	Filter string
}

// TenantReaders are tenant's three reader consumers.
func TenantReaders(tenant string) []Reader {
	return []Reader{
		{Stream: contract.StreamResults, Name: "results-" + tenant, Filter: "digitoll.result.*." + tenant},
		{Stream: contract.StreamRouting, Name: "routing-" + tenant, Filter: "digitoll.routing.*." + tenant},
		{Stream: contract.StreamDLQ, Name: "dlq-" + tenant, Filter: "digitoll.dlq.*." + tenant},
	}
}

// EnsureTenantReaders creates tenant's reader consumers, or sets them back
// to their filters; what a tenant already acknowledged stays acknowledged.
// They deliver from the start of each stream, so a tenant connecting the
// first time reads what is already there.
func EnsureTenantReaders(ctx context.Context, js jetstream.JetStream, tenant string) ([]Reader, error) {
	if !contract.ValidTenant(tenant) {
		return nil, fmt.Errorf("%q is not a tenant name (1 to 63 of a-z, 0-9 and '-')", tenant)
	}
	readers := TenantReaders(tenant)
	for _, r := range readers {
		if _, err := js.CreateOrUpdateConsumer(ctx, r.Stream, jetstream.ConsumerConfig{
			Durable:       r.Name,
			Description:   "digitoll-worker: tenant " + tenant + "'s reader",
			FilterSubject: r.Filter,
			AckPolicy:     jetstream.AckExplicitPolicy,
			DeliverPolicy: jetstream.DeliverAllPolicy,
		}); err != nil {
			return nil, fmt.Errorf("consumer %s on %s: %w", r.Name, r.Stream, err)
		}
	}
	return readers, nil
}
