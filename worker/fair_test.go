package worker

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"
)

// queue makes each of tenants wait on p, one after the other (each is
// queued before the next starts), and returns the order they are served
// in as slots are released one at a time.
func serveOrder(t *testing.T, p *fairPool, tenants []string) []string {
	t.Helper()
	served := make(chan string, len(tenants))
	for _, tenant := range tenants {
		before := p.queued()
		go func() {
			if p.acquire(t.Context(), tenant) {
				served <- tenant
			}
		}()
		waitQueued(t, p, before+1)
	}
	var order []string
	for range tenants {
		p.release()
		select {
		case s := <-served:
			order = append(order, s)
		case <-time.After(10 * time.Second):
			t.Fatalf("no waiter served after a release; served so far %v", order)
		}
	}
	return order
}

// queued counts p's waiters.
func (p *fairPool) queued() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, ws := range p.waiting {
		n += len(ws)
	}
	return n
}

func waitQueued(t *testing.T, p *fairPool, n int) {
	t.Helper()
	eventually(t, 10*time.Second, fmt.Sprintf("%d waiters queued", n), func() bool { return p.queued() == n })
}

// Freed slots go to the waiting tenants in turn, whatever order their
// waiters arrived in; one tenant's waiters are served in arrival order.
func TestFairPoolServesTenantsInTurn(t *testing.T) {
	tests := []struct {
		name    string
		arrived []string
		want    []string
	}{
		{"one tenant", []string{"a", "a", "a"}, []string{"a", "a", "a"}},
		{"a flood ahead of two others", []string{"a", "a", "a", "a", "b", "c"}, []string{"a", "b", "c", "a", "a", "a"}},
		{"interleaved", []string{"a", "b", "a", "b", "c"}, []string{"a", "b", "c", "a", "b"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := newFairPool(1)
			if !p.acquire(t.Context(), "holder") {
				t.Fatal("the free slot was refused")
			}
			if got := serveOrder(t, p, tc.arrived); !slices.Equal(got, tc.want) {
				t.Errorf("served %v, want %v", got, tc.want)
			}
		})
	}
}

// A waiter that gives up holds nothing and loses its place; the slot it
// would have had goes to the next in turn.
func TestFairPoolWaiterGivesUp(t *testing.T) {
	p := newFairPool(1)
	if !p.acquire(t.Context(), "holder") {
		t.Fatal("the free slot was refused")
	}
	ctx, cancel := context.WithCancel(t.Context())
	gaveUp := make(chan bool, 1)
	go func() { gaveUp <- p.acquire(ctx, "quitter") }()
	waitQueued(t, p, 1)
	served := make(chan bool, 1)
	go func() { served <- p.acquire(t.Context(), "stayer") }()
	waitQueued(t, p, 2)
	cancel()
	if <-gaveUp {
		t.Fatal("a cancelled waiter was served")
	}
	p.release()
	if !<-served {
		t.Fatal("the waiter behind the one that gave up was not served")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.used != 1 || len(p.turn) != 0 || len(p.waiting) != 0 {
		t.Errorf("after the hand-over: used %d, turn %v, waiting %v; want 1 slot used and nobody waiting", p.used, p.turn, p.waiting)
	}
}
