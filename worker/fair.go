package worker

import (
	"context"
	"sync"
)

// fairPool is a counting semaphore that serves its waiters tenant by
// tenant in turn: when a slot frees, the tenant that has waited longest
// gets it, and if it still has waiters it goes to the back of the line.
// A tenant with a thousand messages waiting and a tenant with one
// therefore get every other slot, where a plain channel would serve them
// in arrival order and let the flood take every slot it frees.
//
// Within one tenant waiters are served first come, first served.
type fairPool struct {
	mu   sync.Mutex
	size int
	used int
	// turn holds the tenants with waiters, the next to be served first.
	turn []string
	// waiting holds each tenant's waiters in arrival order; a waiter is
	// served by closing its channel.
	waiting map[string][]chan struct{}
}

func newFairPool(size int) *fairPool {
	return &fairPool{size: size, waiting: map[string][]chan struct{}{}}
}

// acquire takes a slot for tenant, waiting for its turn. It reports false,
// holding nothing, when ctx is done first.
func (p *fairPool) acquire(ctx context.Context, tenant string) bool {
	p.mu.Lock()
	if p.used < p.size && len(p.turn) == 0 {
		p.used++
		p.mu.Unlock()
		return true
	}
	ready := make(chan struct{})
	if len(p.waiting[tenant]) == 0 {
		p.turn = append(p.turn, tenant)
	}
	p.waiting[tenant] = append(p.waiting[tenant], ready)
	p.mu.Unlock()

	select {
	case <-ready:
		return true
	case <-ctx.Done():
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-ready:
		// Served while giving up: hand the slot on.
		p.used--
		p.serve()
		return false
	default:
	}
	ws := p.waiting[tenant]
	for i, w := range ws {
		if w == ready {
			ws = append(ws[:i], ws[i+1:]...)
			break
		}
	}
	if len(ws) > 0 {
		p.waiting[tenant] = ws
		return false
	}
	delete(p.waiting, tenant)
	for i, t := range p.turn {
		if t == tenant {
			p.turn = append(p.turn[:i], p.turn[i+1:]...)
			break
		}
	}
	return false
}

// release gives a slot back and serves the next tenant in turn.
func (p *fairPool) release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.used--
	p.serve()
}

// serve hands free slots to waiters, one tenant at a time. The caller
// holds mu.
func (p *fairPool) serve() {
	for p.used < p.size && len(p.turn) > 0 {
		tenant := p.turn[0]
		p.turn = p.turn[1:]
		ws := p.waiting[tenant]
		next := ws[0]
		if ws = ws[1:]; len(ws) > 0 {
			p.waiting[tenant] = ws
			p.turn = append(p.turn, tenant)
		} else {
			delete(p.waiting, tenant)
		}
		p.used++
		close(next)
	}
}
