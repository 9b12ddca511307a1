package bench

import (
	"context"
	"fmt"
	"io/fs"
	"path/filepath"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/worker"
)

// storage publishes house consignments through the worker and reports what
// JetStream keeps of each once its result is out: the journal (the state
// bucket's stream, one record per declaration for the bucket's TTL) and the
// results stream, as the bytes the streams count and as the bytes of their
// files on disk (where compression shows, in the blocks already sealed), and
// the memory that stays taken. These are the numbers of the sizing rule in
// docs/operating.md.
func storage(ctx context.Context, r *runner) ([]Figure, error) {
	n := r.cfg.Sizes.StorageDeclarations
	// The NATS server in a process of its own, when there is one, so that
	// its memory is told apart from the worker's and the simulator's (which
	// keeps every declaration).
	st, err := r.newStage(ctx, stageOptions{
		kinds: []contract.Kind{contract.KindRoad}, concurrency: 64, natsProcess: r.cfg.NATSCommand != nil,
	})
	if err != nil {
		return nil, err
	}
	defer st.close()
	svc, err := st.services(ctx, r)
	if err != nil {
		return nil, err
	}
	var heapBefore, heapAfter uint64
	if st.natsHeap != nil {
		if heapBefore, err = st.natsHeap(ctx); err != nil {
			return nil, err
		}
	}
	if _, err := st.throughput(ctx, svc, "storage", n); err != nil {
		return nil, err
	}
	if st.natsHeap != nil {
		// The server keeps a block it wrote to in memory until it has
		// been idle for 10 s; what stays after that is what each
		// declaration costs for as long as it is stored.
		if !sleepCtx(ctx, r.cfg.Sizes.StorageSettle) {
			return nil, ctx.Err()
		}
		if heapAfter, err = st.natsHeap(ctx); err != nil {
			return nil, err
		}
	}

	var figs []Figure
	for _, s := range []struct{ stream, what string }{
		{"KV_" + worker.StateBucket, "journal"},
		{contract.StreamResults, "results"},
	} {
		stream, err := st.js.Stream(ctx, s.stream)
		if err != nil {
			return figs, err
		}
		info, err := stream.Info(ctx)
		if err != nil {
			return figs, err
		}
		if info.State.Msgs != uint64(n) {
			return figs, fmt.Errorf("%s holds %d messages after %d declarations, want one each", s.stream, info.State.Msgs, n)
		}
		disk, err := dirBytes(filepath.Join(st.natsDir, "jetstream", "$G", "streams", s.stream))
		if err != nil {
			return figs, err
		}
		compression := "uncompressed"
		if info.Config.Compression != jetstream.NoCompression {
			compression = "S2-compressed"
		}
		perMsg := float64(info.State.Bytes) / float64(n)
		figs = append(figs,
			Figure{
				Scenario: "storage", Metric: s.what + " bytes per declaration",
				Measured: fmt.Sprintf("%.0f B", perMsg), Value: perMsg, Verdict: Info,
				Note: fmt.Sprintf("storage: %s after %d house consignments, each with its result: %d messages, %d bytes as the stream counts them (subject, headers and record, before compression); %s.",
					s.stream, n, info.State.Msgs, info.State.Bytes, compression),
			},
			Figure{
				Scenario: "storage", Metric: s.what + " disk bytes per declaration",
				Measured: fmt.Sprintf("%.0f B", float64(disk)/float64(n)), Value: float64(disk) / float64(n), Verdict: Info,
				Note: fmt.Sprintf("storage: the files of %s (%d bytes), which also hold records already replaced or removed until their block is compacted; only blocks already full are compressed.", s.stream, disk),
			})
	}
	if st.natsHeap != nil {
		perDecl := (float64(heapAfter) - float64(heapBefore)) / float64(n)
		figs = append(figs, Figure{
			Scenario: "storage", Metric: "NATS server memory kept per declaration",
			Measured: fmt.Sprintf("%.0f B", perDecl), Value: perDecl, Verdict: Info,
			Note: fmt.Sprintf("storage: growth of the NATS server's heap in use (its own process, after a collection) from before the run to %s after it (%.1f MB → %.1f MB), divided by the declarations: "+
				"its index of the journal's keys, kept as long as the records, and the message ids of the duplicate windows, dropped after 10 minutes.",
				r.cfg.Sizes.StorageSettle, float64(heapBefore)/1e6, float64(heapAfter)/1e6),
		})
	}
	return figs, nil
}

// dirBytes is the size of the regular files under dir.
func dirBytes(dir string) (int64, error) {
	var total int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		total += info.Size()
		return nil
	})
	return total, err
}
