package main

import (
	"context"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/digitoll/digitoll-worker/contract"
)

// resultConsumer follows the results matching filter.
func resultConsumer(ctx context.Context, js jetstream.JetStream, filter string, policy jetstream.DeliverPolicy) (jetstream.Consumer, error) {
	return streamConsumer(ctx, js, contract.StreamResults, filter, policy)
}

// eachResult calls each for every result cons delivers until each returns
// false or ctx ends.
func eachResult(ctx context.Context, cons jetstream.Consumer, each func(contract.Result, []byte) bool) error {
	return eachMsg(ctx, cons, func(m jetstream.Msg) bool {
		return each(decodeResult(m.Data()), m.Data())
	})
}
