package worker

import (
	"context"

	"github.com/digitoll/digitoll-worker/contract"
)

// kindSlots makes the pool of each kind with a cap of its own in
// Config.KindConcurrency. A cap at or above Concurrency cannot bind, and a
// kind without a handler is never consumed: neither gets a pool.
func (w *Worker) kindSlots() map[contract.Kind]chan struct{} {
	pools := map[contract.Kind]chan struct{}{}
	for k, n := range w.cfg.KindConcurrency {
		if _, ok := w.cfg.Handlers[k]; ok && n < w.cfg.Concurrency {
			pools[k] = make(chan struct{}, n)
		}
	}
	return pools
}

// concurrencyOf is how many messages of kind may be in progress at once:
// its own cap, or the whole pool.
func (w *Worker) concurrencyOf(kind contract.Kind) int {
	if n, ok := w.cfg.KindConcurrency[kind]; ok && n < w.cfg.Concurrency {
		return n
	}
	return w.cfg.Concurrency
}

// acquire takes a slot of kind's own pool, if it has one, then a slot of
// the shared pool, in that order: a kind at its cap waits without holding
// a shared slot that another kind could use. It reports false, holding
// nothing, when ctx is done first.
func (r *run) acquire(ctx context.Context, kind contract.Kind) bool {
	own := r.kindSlots[kind]
	if own != nil {
		select {
		case own <- struct{}{}:
		case <-ctx.Done():
			return false
		}
	}
	select {
	case r.slots <- struct{}{}:
	case <-ctx.Done():
		if own != nil {
			<-own
		}
		return false
	}
	if ctx.Err() != nil {
		// Both were ready and select chose the slot.
		r.release(kind)
		return false
	}
	return true
}

// release gives back the slots acquire took for a message of kind.
func (r *run) release(kind contract.Kind) {
	<-r.slots
	if own := r.kindSlots[kind]; own != nil {
		<-own
	}
}
