package natstest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/digitoll/digitoll-worker/contract"
)

// PutObject stores size pseudo-random bytes (seeded) under name in the
// documents bucket, streamed, and returns their SHA-256 (hex).
func PutObject(t testing.TB, js jetstream.JetStream, name string, seed byte, size int64) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	store, err := js.ObjectStore(ctx, contract.BucketDocuments)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	src := io.TeeReader(io.LimitReader(rand.NewChaCha8([32]byte{seed}), size), h)
	if _, err := store.Put(ctx, jetstream.ObjectMeta{Name: name}, src); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}
