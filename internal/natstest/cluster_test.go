package natstest

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/digitoll/digitoll-worker/embednats"
)

func TestClusterSurvivesLosingTheStreamLeader(t *testing.T) {
	servers, urls := Cluster(t, 3)
	nc, err := nats.Connect(strings.Join(urls, ","), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "R3", Subjects: []string{"r3.>"}, Replicas: 3}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "r3.a", []byte("before")); err != nil {
		t.Fatal(err)
	}
	stream, err := js.Stream(ctx, "R3")
	if err != nil {
		t.Fatal(err)
	}
	var leader *embednats.Server
	if c := stream.CachedInfo().Cluster; c != nil {
		for _, s := range servers {
			if s.Name() == c.Leader {
				leader = s
			}
		}
	}
	if leader == nil {
		t.Fatal("no stream leader for R3")
	}
	leader.Shutdown()

	// A new stream leader is elected among the two left; publish until it is.
	var lastErr error
	published := false
	for !published && ctx.Err() == nil {
		pctx, pcancel := context.WithTimeout(ctx, time.Second)
		_, lastErr = js.Publish(pctx, "r3.b", []byte("after"))
		pcancel()
		published = lastErr == nil
	}
	if !published {
		t.Fatalf("no publish succeeded after losing the stream leader: %v", lastErr)
	}
	info, err := js.Stream(ctx, "R3")
	if err != nil {
		t.Fatal(err)
	}
	if got := info.CachedInfo().State.Msgs; got != 2 {
		t.Fatalf("stream holds %d messages, want 2", got)
	}
	m, err := info.GetLastMsgForSubject(ctx, "r3.a")
	if err != nil || string(m.Data) != "before" {
		t.Fatalf("message published before the loss: %v %v", m, err)
	}
}

func TestStartClusterNeedsThreeNodes(t *testing.T) {
	_, err := StartCluster(2, t.TempDir(), nil)
	if err == nil {
		t.Fatal("StartCluster(2) succeeded")
	}
	if errors.Is(err, embednats.ErrNotReady) {
		t.Fatalf("want a validation error, got %v", err)
	}
}
