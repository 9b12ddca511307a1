package bench

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/toll"
)

// documentsLimit is the bound on the heap growth: 64 MB.
const documentsLimit = 64_000_000

// documents uploads Documents files of DocumentBytes at once, each read
// from the Object Store by the worker and streamed to Toll, and reports
// the peak growth of the heap in use over the idle worker's. NATS runs
// in a process of its own, because its caches of the stored files would
// otherwise be counted; the simulator stays in this process, so its
// buffers count against the worker.
func documents(ctx context.Context, r *runner) ([]Figure, error) {
	if r.cfg.NATSCommand == nil {
		return []Figure{{Scenario: "documents", Metric: "peak heap growth", Measured: "—", Verdict: Skipped,
			Note: "documents: needs NATS in a process of its own (Config.NATSCommand), so that the server's heap is not counted as the worker's."}}, nil
	}
	n, size := r.cfg.Sizes.Documents, r.cfg.Sizes.DocumentBytes
	st, err := r.newStage(ctx, stageOptions{kinds: []contract.Kind{contract.KindDocument}, concurrency: max(64, n), natsProcess: true})
	if err != nil {
		return nil, err
	}
	defer st.close()
	store, err := st.js.ObjectStore(ctx, contract.BucketDocuments)
	if err != nil {
		return nil, err
	}
	msgs := make([]message, n)
	digests := map[string]string{}
	for i := range n {
		name := fmt.Sprintf("bench-%02d.pdf", i)
		h := sha256.New()
		if _, err := store.Put(ctx, jetstream.ObjectMeta{Name: contract.DefaultTenant + "/" + name},
			io.TeeReader(io.LimitReader(pattern(uint64(i)), size), h)); err != nil {
			return nil, fmt.Errorf("put %s: %w", name, err)
		}
		digests[name] = hex.EncodeToString(h.Sum(nil))
		id := fmt.Sprintf("documents-%02d", i)
		body, err := json.Marshal(contract.Submission{ID: id, Operation: contract.OpUpload, Document: &contract.Document{
			DeclarationID: "123456789-15012025-1", DocumentType: "faktura", Filename: name,
			ContentType: "application/pdf", Object: contract.DefaultTenant + "/" + name,
		}})
		if err != nil {
			return nil, err
		}
		msgs[i] = message{kind: contract.KindDocument, id: id, body: body}
	}

	svc, err := st.services(ctx, r)
	if err != nil {
		return nil, err
	}
	ts, err := tenantServices(svc)
	if err != nil {
		return nil, err
	}
	if _, err := ts.Toll.Tokens.Token(ctx, toll.Scope(false, toll.DocumentV2().ScopeBase)); err != nil {
		return nil, err
	}
	watch, err := st.watchResults(n)
	if err != nil {
		return nil, err
	}
	defer watch.stop()
	run := start(ctx, svc.Run)
	if err := st.waitPulling(ctx, contract.KindDocument, 1, nil); err != nil {
		_ = run.stop()
		return nil, err
	}
	// The idle worker, with the files stored and their garbage
	// collected, is the baseline.
	base := heapInUse()
	sampler := startHeapSampler()
	err = st.publish(ctx, msgs)
	if err == nil {
		_, err = watch.wait(ctx, run)
	}
	peak := sampler.stop()
	if stopErr := run.stop(); err == nil {
		err = stopErr
	}
	if err != nil {
		return nil, fmt.Errorf("worker: %w", err)
	}
	if err := st.verify(ctx, msgs); err != nil {
		return nil, fmt.Errorf("worker: %w", err)
	}
	docs := st.sim.Documents()
	if len(docs) != n {
		return nil, fmt.Errorf("the simulated Toll received %d documents for %d uploads", len(docs), n)
	}
	for _, d := range docs {
		if d.Size != size || d.SHA256 != digests[d.Filename] {
			return nil, fmt.Errorf("%s reached Toll with %d bytes, sha256 %s; want %d bytes, %s", d.Filename, d.Size, d.SHA256, size, digests[d.Filename])
		}
	}

	growth := uint64(0)
	if peak > base {
		growth = peak - base
	}
	total := uint64(n) * uint64(size)
	capNote := ""
	def, err := st.defaultConfig()
	if err != nil {
		return nil, err
	}
	if c := def.Limits.KindConcurrency[contract.KindDocument]; c > 0 && c < n {
		capNote = fmt.Sprintf(" With DIGITOLL_KIND_CONCURRENCY at its default, only %d documents upload at once and the heap grows less.", c)
	}
	verdict := Pass
	if growth >= documentsLimit {
		verdict = Below
	}
	return []Figure{{
		Scenario: "documents", Metric: "peak heap growth",
		Measured: megabytes(growth), Value: float64(growth) / 1e6,
		Baseline: megabytes(total) + " uploaded", Ratio: float64(growth) / float64(total),
		Target: "< 64 MB", Verdict: verdict,
		Note: fmt.Sprintf("documents: %d files of %s uploaded at once from the Object Store; peak of the heap in use (sampled every %s) over the idle worker's %s. "+
			"NATS runs in a process of its own; the simulator, which hashes each upload as it arrives, runs in this one and counts.",
			n, megabytes(uint64(size)), heapSampleEvery, megabytes(base)) + capNote,
	}}, nil
}

// pattern is an endless stream of pseudo-random bytes, the same for the
// same seed, standing in for a file without holding one in memory.
func pattern(seed uint64) io.Reader {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	return rand.NewChaCha8(key)
}

func megabytes(b uint64) string { return fmt.Sprintf("%.1f MB", float64(b)/1e6) }
