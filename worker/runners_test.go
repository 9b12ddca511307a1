package worker

import (
	"bytes"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// goroutineID is the calling goroutine's number, from its stack's header.
func goroutineID(t testing.TB) uint64 {
	var buf [64]byte
	b := bytes.TrimPrefix(buf[:runtime.Stack(buf[:], false)], []byte("goroutine "))
	id, err := strconv.ParseUint(string(b[:bytes.IndexByte(b, ' ')]), 10, 64)
	if err != nil {
		t.Fatalf("goroutine id: %v", err)
	}
	return id
}

// Tasks run on few goroutines, reused, bounded by the tasks in progress
// at once (as the slots bound deliveries) plus those just finishing.
func TestRunnersReuseGoroutines(t *testing.T) {
	const atOnce, tasks = 4, 200
	p := newRunners()
	slots := make(chan struct{}, atOnce)
	var (
		mu   sync.Mutex
		ids  = map[uint64]bool{}
		done atomic.Int64
	)
	for range tasks {
		slots <- struct{}{}
		p.Go(func() {
			defer func() { <-slots }()
			mu.Lock()
			ids[goroutineID(t)] = true
			mu.Unlock()
			done.Add(1)
		})
	}
	p.Wait()
	if got := done.Load(); got != tasks {
		t.Fatalf("Wait returned after %d tasks of %d", got, tasks)
	}
	if len(ids) > 2*atOnce {
		t.Errorf("%d tasks, at most %d at once, ran on %d goroutines; want at most %d", tasks, atOnce, len(ids), 2*atOnce)
	}
	stopped := make(chan struct{})
	go func() {
		p.stop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("stop did not end the idle goroutines")
	}
}

// Wait waits for tasks still running.
func TestRunnersWaitForTasks(t *testing.T) {
	p := newRunners()
	defer p.stop()
	release := make(chan struct{})
	var finished atomic.Bool
	p.Go(func() {
		<-release
		finished.Store(true)
	})
	waited := make(chan struct{})
	go func() {
		p.Wait()
		close(waited)
	}()
	select {
	case <-waited:
		t.Fatal("Wait returned while a task was running")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	select {
	case <-waited:
	case <-time.After(10 * time.Second):
		t.Fatal("Wait did not return after the task ended")
	}
	if !finished.Load() {
		t.Error("Wait returned before the task finished")
	}
}

// BenchmarkDeliveryGoroutines runs tasks that need a 32 KB stack, 64 at
// once, on a goroutine each (as before runners) and on runners.
func BenchmarkDeliveryGoroutines(b *testing.B) {
	const atOnce = 64
	task := func() { deepStack(32) }
	b.Run("go", func(b *testing.B) {
		var wg sync.WaitGroup
		slots := make(chan struct{}, atOnce)
		for b.Loop() {
			slots <- struct{}{}
			wg.Go(func() {
				defer func() { <-slots }()
				task()
			})
		}
		wg.Wait()
	})
	b.Run("runners", func(b *testing.B) {
		p := newRunners()
		defer p.stop()
		slots := make(chan struct{}, atOnce)
		for b.Loop() {
			slots <- struct{}{}
			p.Go(func() {
				defer func() { <-slots }()
				task()
			})
		}
		p.Wait()
	})
}

// deepStack uses about kb KB of stack.
//
//go:noinline
func deepStack(kb int) byte {
	var buf [1024]byte
	buf[kb%len(buf)] = byte(kb)
	if kb <= 1 {
		return buf[0]
	}
	return deepStack(kb-1) + buf[kb%len(buf)]
}
