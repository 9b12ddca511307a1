package worker

import (
	"context"
	"sync"

	"github.com/digitoll/digitoll-worker/contract"
)

// Slots: a message is worked on only while it holds, in this order, a slot
// of its tenant (when the worker serves many tenants), a slot of its kind
// (when the kind has a cap of its own) and a slot of the shared pool. Each
// is taken only once the one before it is held, so a tenant or kind at its
// cap waits without holding a slot that another could use. The kind and
// shared pools serve waiting tenants in turn (see fairPool).

// slots are the pools of one Run.
type slots struct {
	shared *fairPool
	// kinds holds the pool of each kind with a cap of its own.
	kinds map[contract.Kind]*fairPool

	mu sync.Mutex
	// tenants holds each tenant's cap; a tenant whose cap changes gets a
	// new channel, and the messages holding the old one give it back
	// there.
	tenants map[string]chan struct{}
}

// newSlots makes the pools of w: the shared one, and one for each kind
// with a cap of its own in Config.KindConcurrency. A cap at or above
// Concurrency cannot bind, and a kind without a handler is never
// consumed: neither gets a pool.
func (w *Worker) newSlots() *slots {
	s := &slots{shared: newFairPool(w.cfg.Concurrency), kinds: map[contract.Kind]*fairPool{}, tenants: map[string]chan struct{}{}}
	for k, n := range w.cfg.KindConcurrency {
		if _, ok := w.cfg.Handlers[k]; ok && n < w.cfg.Concurrency {
			s.kinds[k] = newFairPool(n)
		}
	}
	return s
}

// concurrencyOf is how many messages of kind may be in progress at once:
// its own cap, or the whole pool.
func (w *Worker) concurrencyOf(kind contract.Kind) int {
	if n, ok := w.cfg.KindConcurrency[kind]; ok && n < w.cfg.Concurrency {
		return n
	}
	return w.cfg.Concurrency
}

// setTenantCap sets tenant's cap to n messages in progress; n <= 0
// removes it.
func (s *slots) setTenantCap(tenant string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n <= 0 {
		delete(s.tenants, tenant)
		return
	}
	if cur, ok := s.tenants[tenant]; ok && cap(cur) == n {
		return
	}
	s.tenants[tenant] = make(chan struct{}, n)
}

func (s *slots) tenantCap(tenant string) chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tenants[tenant]
}

// acquire takes the slots of a message of l. It returns the function that
// gives them back, or false, holding nothing, when ctx is done first.
func (s *slots) acquire(ctx context.Context, l lane) (release func(), ok bool) {
	own := s.tenantCap(l.tenant)
	if own != nil {
		select {
		case own <- struct{}{}:
		case <-ctx.Done():
			return nil, false
		}
	}
	kind := s.kinds[l.kind]
	if kind != nil && !kind.acquire(ctx, l.tenant) {
		if own != nil {
			<-own
		}
		return nil, false
	}
	if !s.shared.acquire(ctx, l.tenant) {
		if kind != nil {
			kind.release()
		}
		if own != nil {
			<-own
		}
		return nil, false
	}
	return func() {
		s.shared.release()
		if kind != nil {
			kind.release()
		}
		if own != nil {
			<-own
		}
	}, true
}
