package worker

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/internal/natstest"
)

func TestEnsureStreamsOnAThreeNodeCluster(t *testing.T) {
	t.Parallel()
	_, urls := natstest.Cluster(t, 3)
	nc, err := nats.Connect(strings.Join(urls, ","))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for range 2 {
		if err := EnsureStreams(ctx, js, StreamOptions{Replicas: 3}); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{contract.StreamSubmit, contract.StreamResults, contract.StreamDLQ, contract.StreamRouting, "KV_" + StateBucket, "OBJ_" + contract.BucketDocuments} {
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if r := s.CachedInfo().Config.Replicas; r != 3 {
			t.Fatalf("%s has %d replicas, want 3", name, r)
		}
	}
}
