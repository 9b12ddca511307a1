package bench

import (
	"fmt"
	"runtime"
	"time"
)

// span measures one timed run: wall time and this process's CPU time.
type span struct {
	start  time.Time
	cpu    time.Duration
	hasCPU bool
}

// startSpan collects the garbage first, so that a run starts at the
// beginning of a GC cycle and does not pay for the marking of what the
// runs before it left.
func startSpan() span {
	runtime.GC()
	cpu, ok := cpuTime()
	return span{start: time.Now(), cpu: cpu, hasCPU: ok}
}

// end returns the wall time to end and the CPU time used since start
// (zero when the platform does not tell).
func (s span) end(end time.Time) (wall, cpu time.Duration) {
	wall = end.Sub(s.start)
	if now, ok := cpuTime(); ok && s.hasCPU {
		cpu = now - s.cpu
	}
	return wall, cpu
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
