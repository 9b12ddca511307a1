package bench

import (
	"fmt"
	"runtime"
	"runtime/metrics"
	"time"
)

// span measures one timed run: wall time, this process's CPU time and
// the objects it allocated.
type span struct {
	start  time.Time
	cpu    time.Duration
	hasCPU bool
	allocs uint64
}

// startSpan collects the garbage first, so that a run starts at the
// beginning of a GC cycle and does not pay for the marking of what the
// runs before it left.
func startSpan() span {
	runtime.GC()
	cpu, ok := cpuTime()
	return span{start: time.Now(), cpu: cpu, hasCPU: ok, allocs: allocatedObjects()}
}

// end returns the wall time to end, and the CPU time (zero when the
// platform does not tell) and the objects allocated since start.
func (s span) end(end time.Time) loopRun {
	r := loopRun{wall: end.Sub(s.start), allocs: allocatedObjects() - s.allocs}
	if now, ok := cpuTime(); ok && s.hasCPU {
		r.cpu = now - s.cpu
	}
	return r
}

// allocatedObjects counts the heap objects this process allocated so
// far. Unlike CPU time it does not depend on what else the machine runs:
// the same work allocates the same objects to within a fraction of a
// percent.
func allocatedObjects() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:objects"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

// heapSampler samples the heap in use every few milliseconds and keeps the
// peak, from a goroutine that stop ends.
type heapSampler struct {
	quit chan struct{}
	done chan struct{}
	peak uint64
}

// heapSampleEvery is the sampling interval: short next to an upload of a
// 10 MB file, long next to ReadMemStats's pause.
const heapSampleEvery = 5 * time.Millisecond

func startHeapSampler() *heapSampler {
	h := &heapSampler{quit: make(chan struct{}), done: make(chan struct{})}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	h.peak = ms.HeapInuse
	go func() {
		defer close(h.done)
		t := time.NewTicker(heapSampleEvery)
		defer t.Stop()
		for {
			select {
			case <-h.quit:
				return
			case <-t.C:
				runtime.ReadMemStats(&ms)
				h.peak = max(h.peak, ms.HeapInuse)
			}
		}
	}()
	return h
}

// stop ends the sampling and returns the peak heap in use.
func (h *heapSampler) stop() uint64 {
	close(h.quit)
	<-h.done
	return h.peak
}

// heapInUse collects garbage and returns the heap in use: the baseline
// the sampler's peak is compared with.
func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// Formatting of figures.

func perSecond(v float64) string { return fmt.Sprintf("%.0f/s", v) }

func millis(d time.Duration) string {
	return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
}

func seconds(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

// atLeast is the verdict of a ratio with a lower bound.
func atLeast(ratio, bound float64) Verdict {
	if ratio >= bound {
		return Pass
	}
	return Below
}

// atMost is the verdict of a ratio with an upper bound.
func atMost(ratio, bound float64) Verdict {
	if ratio <= bound {
		return Pass
	}
	return Below
}
