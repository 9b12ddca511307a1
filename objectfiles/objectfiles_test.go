package objectfiles

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/failure"
	"github.com/digitoll/digitoll-worker/handlers"
	"github.com/digitoll/digitoll-worker/internal/natstest"
)

// newBucket starts a server with an empty documents bucket, made as the
// worker's EnsureStreams makes it.
func newBucket(t *testing.T) jetstream.JetStream {
	t.Helper()
	_, js := natstest.Start(t, "")
	if _, err := js.CreateObjectStore(testCtx(t), jetstream.ObjectStoreConfig{Bucket: contract.BucketDocuments}); err != nil {
		t.Fatal(err)
	}
	return js
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestOpen(t *testing.T) {
	js := newBucket(t)
	files := New(js)
	ctx := testCtx(t)
	sum := natstest.PutObject(t, js, "default/x/a.pdf", 1, 300<<10+5)

	r, size, err := files.Open(ctx, "default/x/a.pdf")
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	n, err := io.Copy(h, r)
	if err != nil || r.Close() != nil {
		t.Fatalf("read: %v", err)
	}
	if size != 300<<10+5 || n != size || hex.EncodeToString(h.Sum(nil)) != sum {
		t.Errorf("read %d bytes of %d, sha256 %x; want %d bytes, %s", n, size, h.Sum(nil), 300<<10+5, sum)
	}

	if _, _, err := files.Open(ctx, "default/x/never-stored.pdf"); !errors.Is(err, handlers.ErrFileMissing) {
		t.Errorf("missing object: %v, want ErrFileMissing", err)
	}
	store, err := js.ObjectStore(ctx, contract.BucketDocuments)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Delete(ctx, "default/x/a.pdf"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := files.Open(ctx, "default/x/a.pdf"); !errors.Is(err, handlers.ErrFileMissing) {
		t.Errorf("deleted object: %v, want ErrFileMissing", err)
	}
}

func TestOpenWithoutBucket(t *testing.T) {
	_, js := natstest.Start(t, "")
	if _, _, err := New(js).Open(testCtx(t), "a.pdf"); failure.Classify(err) != failure.Config {
		t.Errorf("%v, want a configuration failure", err)
	}
}

func TestReader(t *testing.T) {
	js := newBucket(t)
	files := New(js)
	ctx := testCtx(t)
	store, err := js.ObjectStore(ctx, contract.BucketDocuments)
	if err != nil {
		t.Fatal(err)
	}
	readAll := func(name string) (int64, string, error) {
		r, size, err := files.Open(ctx, name)
		if err != nil {
			return 0, "", err
		}
		defer r.Close()
		h := sha256.New()
		n, err := io.Copy(h, r)
		if err == nil && n != size {
			err = fmt.Errorf("read %d bytes of %d", n, size)
		}
		return n, hex.EncodeToString(h.Sum(nil)), err
	}

	t.Run("chunk sizes", func(t *testing.T) {
		for _, chunk := range []uint32{1 << 10, 256 << 10, 768 << 10} {
			name := fmt.Sprint("chunks-", chunk)
			data := bytes.Repeat([]byte{byte(chunk)}, 3<<20+1)
			if _, err := store.Put(ctx, jetstream.ObjectMeta{Name: name, Opts: &jetstream.ObjectMetaOptions{ChunkSize: chunk}}, bytes.NewReader(data)); err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(data)
			if n, got, err := readAll(name); err != nil || n != int64(len(data)) || got != hex.EncodeToString(sum[:]) {
				t.Errorf("chunk size %d: read %d bytes, sha256 %s, %v; want %d bytes, %x", chunk, n, got, err, len(data), sum)
			}
		}
	})
	t.Run("empty object", func(t *testing.T) {
		if _, err := store.PutBytes(ctx, "empty", nil); err != nil {
			t.Fatal(err)
		}
		if n, _, err := readAll("empty"); err != nil || n != 0 {
			t.Errorf("read %d bytes, %v; want 0, nil", n, err)
		}
	})
	t.Run("close ends a read and removes the consumer", func(t *testing.T) {
		natstest.PutObject(t, js, "closing", 2, 2<<20)
		r, _, err := files.Open(ctx, "closing")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(r, make([]byte, 1000)); err != nil {
			t.Fatal(err)
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, r); err == nil {
			t.Error("read after close succeeded")
		}
		stream, err := js.Stream(ctx, objectStream)
		if err != nil {
			t.Fatal(err)
		}
		info, err := stream.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.State.Consumers != 0 {
			t.Errorf("%d consumers left on %s, want 0", info.State.Consumers, objectStream)
		}
	})
	t.Run("a changed chunk fails the read for good", func(t *testing.T) {
		natstest.PutObject(t, js, "tampered", 4, 300<<10)
		info, err := store.GetInfo(ctx, "tampered")
		if err != nil {
			t.Fatal(err)
		}
		stream, err := js.Stream(ctx, objectStream)
		if err != nil {
			t.Fatal(err)
		}
		last, err := stream.GetLastMsgForSubject(ctx, objectChunkSubject+info.NUID)
		if err != nil {
			t.Fatal(err)
		}
		if err := stream.DeleteMsg(ctx, last.Sequence); err != nil {
			t.Fatal(err)
		}
		if _, err := js.Publish(ctx, last.Subject, bytes.Repeat([]byte{'x'}, len(last.Data))); err != nil {
			t.Fatal(err)
		}
		_, _, err = readAll("tampered")
		if reason, _ := failure.Reason(err); !errors.Is(err, jetstream.ErrDigestMismatch) || failure.Classify(err) != failure.Permanent || reason != "malformed" {
			t.Errorf("%v (reason %q), want a permanent digest mismatch", err, reason)
		}
	})
	t.Run("a link is refused", func(t *testing.T) {
		natstest.PutObject(t, js, "target", 3, 10)
		target, err := store.GetInfo(ctx, "target")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := store.AddLink(ctx, "link", target); err != nil {
			t.Fatal(err)
		}
		if _, _, err := files.Open(ctx, "link"); failure.Classify(err) != failure.Permanent {
			t.Errorf("%v, want a permanent failure", err)
		}
	})
}
