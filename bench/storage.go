package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/worker"
)

// storage publishes house consignments through the worker and reports what
// JetStream keeps of each once its result is out: the journal (the state
// bucket's stream, one record per declaration for the bucket's TTL) and the
// results stream, as the bytes the streams count and as the bytes of their
// files on disk (where compression shows, in the blocks already sealed), and
// how much the NATS server process grew. These are the numbers of the sizing
// rule in docs/operating.md.
func storage(ctx context.Context, r *runner) ([]Figure, error) {
	n := r.cfg.Sizes.StorageDeclarations
	// The NATS server in a process of its own, when there is one, so that
	// its memory is its own; otherwise in this process, and its memory is
	// not reported.
	st, err := r.newStage(ctx, stageOptions{
		kinds: []contract.Kind{contract.KindRoad}, concurrency: 64, natsProcess: r.cfg.NATSCommand != nil,
	})
	if err != nil {
		return nil, err
	}
	defer st.close()
	rssBefore, rssOK := processRSS(st.natsPID)
	svc, err := st.services(ctx, r)
	if err != nil {
		return nil, err
	}
	if _, _, err := st.throughput(ctx, svc, "storage", n); err != nil {
		return nil, err
	}
	rssAfter, _ := processRSS(st.natsPID)

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
		if info.Config.Compression != 0 {
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
	if rssOK && rssAfter > 0 {
		grow := (float64(rssAfter) - float64(rssBefore)) / float64(n)
		figs = append(figs, Figure{
			Scenario: "storage", Metric: "NATS server memory per declaration",
			Measured: fmt.Sprintf("%.0f B", grow), Value: grow, Verdict: Info,
			Note: fmt.Sprintf("storage: growth of the NATS server process's resident memory (VmRSS %d kB → %d kB) over the run, divided by the declarations; it includes the server's caches and garbage not yet collected.",
				rssBefore/1024, rssAfter/1024),
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

// processRSS is the resident memory of process pid in bytes, from
// /proc/<pid>/status; false where that does not exist.
func processRSS(pid int) (int64, bool) {
	if pid == 0 {
		return 0, false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, false
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		v, ok := strings.CutPrefix(sc.Text(), "VmRSS:")
		if !ok {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
		if err != nil {
			return 0, false
		}
		return kb * 1024, true
	}
	return 0, false
}
