package worker

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/digitoll/digitoll-worker/contract"
)

// BenchmarkIdleLanes measures what a worker serving many tenants pays for
// their lanes before any message comes: the time to start (one durable
// consumer made per lane), and the goroutines and heap each idle lane
// holds. It reports them per lane; ns/op is one start of 200 tenants × 2
// kinds on an embedded server.
func BenchmarkIdleLanes(b *testing.B) {
	const tenants, kinds = 200, 2
	e := newEnv(b)
	var list []Tenant
	for i := range tenants {
		list = append(list, Tenant{Name: fmt.Sprintf("t%03d", i), Kinds: []contract.Kind{contract.KindRoad, contract.KindAir}})
	}
	h := &fakeHandler{behaviour: accept}
	cfg := Config{
		Handlers: map[contract.Kind]Handler{contract.KindRoad: h, contract.KindAir: h},
		Tenants:  &tenantList{tenants: list},
	}
	lanes := float64(tenants * kinds)
	var goroutines, heap float64
	for b.Loop() {
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		g0 := runtime.NumGoroutine()

		w, err := New(e.js, cfg)
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- w.Run(ctx) }()
		deadline := time.Now().Add(time.Minute)
		for len(w.Status()) < tenants*kinds {
			if time.Now().After(deadline) {
				b.Fatalf("%d of %d lanes after a minute", len(w.Status()), tenants*kinds)
			}
			time.Sleep(time.Millisecond)
		}

		b.StopTimer()
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		goroutines = float64(runtime.NumGoroutine()-g0) / lanes
		heap = float64(after.HeapAlloc-min(after.HeapAlloc, before.HeapAlloc)) / lanes
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(goroutines, "goroutines/lane")
	b.ReportMetric(heap, "heap-B/lane")
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/lanes, "start-µs/lane")
}

// BenchmarkSlotPools compares taking and giving back a slot of the fair
// pool with a plain channel semaphore, uncontended and with 8 goroutines
// of as many tenants contending for 4 slots: the price of serving
// tenants in turn.
func BenchmarkSlotPools(b *testing.B) {
	type pool struct {
		acquire func(tenant string)
		release func()
	}
	pools := map[string]func(size int) pool{
		"channel": func(size int) pool {
			ch := make(chan struct{}, size)
			return pool{acquire: func(string) { ch <- struct{}{} }, release: func() { <-ch }}
		},
		"fair": func(size int) pool {
			p := newFairPool(size)
			return pool{acquire: func(t string) { p.acquire(context.Background(), t) }, release: p.release}
		},
	}
	for _, name := range []string{"channel", "fair"} {
		b.Run(name+"/uncontended", func(b *testing.B) {
			p := pools[name](1)
			for b.Loop() {
				p.acquire("a")
				p.release()
			}
		})
		b.Run(name+"/contended", func(b *testing.B) {
			p := pools[name](4)
			const workers = 8
			per := b.N/workers + 1
			b.ResetTimer()
			var wg sync.WaitGroup
			for i := range workers {
				tenant := fmt.Sprintf("t%d", i)
				wg.Go(func() {
					for range per {
						p.acquire(tenant)
						p.release()
					}
				})
			}
			wg.Wait()
		})
	}
}
