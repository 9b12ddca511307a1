package worker

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/handlers"
)

// gauge counts handlers in flight and remembers the most at once.
type gauge struct {
	mu       sync.Mutex
	now, max int
}

func (g *gauge) enter() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.now++
	g.max = max(g.max, g.now)
}

func (g *gauge) leave() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.now--
}

func (g *gauge) read() (now, most int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.now, g.max
}

// A kind with a cap of its own never has more messages in flight than the
// cap, and while it waits at its cap it holds no slot of the shared pool:
// the other kind fills the rest of it.
func TestKindConcurrencyCapsOneKind(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	release := make(chan struct{})
	blocking := func(g *gauge) *fakeHandler {
		return &fakeHandler{behaviour: func(ctx context.Context, req handlers.Request) (handlers.Outcome, error) {
			g.enter()
			defer g.leave()
			select {
			case <-release:
				return accept(ctx, req)
			case <-ctx.Done():
				return handlers.Outcome{}, ctx.Err()
			}
		}}
	}
	road, air := &gauge{}, &gauge{}
	startWorker(t, e.js, Config{
		Handlers:        map[contract.Kind]Handler{contract.KindRoad: blocking(road), contract.KindAir: blocking(air)},
		Concurrency:     5,
		KindConcurrency: map[contract.Kind]int{contract.KindRoad: 2, contract.KindDocument: 1},
	})
	// Road first, up to its cap: the shared pool has no order between
	// kinds, so air published at the same time may take four of its
	// slots before road's second message is pulled.
	for i := range 6 {
		submit(t, e.js, contract.SubmitSubject(contract.KindRoad, contract.DefaultTenant), "", roadBody("r"+strconv.Itoa(i)), nil)
	}
	eventually(t, 30*time.Second, "2 road messages in flight", func() bool {
		r, _ := road.read()
		return r == 2
	})
	for i := range 4 {
		submit(t, e.js, contract.SubmitSubject(contract.KindAir, contract.DefaultTenant), "", roadBody("a"+strconv.Itoa(i)), nil)
	}
	eventually(t, 30*time.Second, "2 road and 3 air messages in flight", func() bool {
		r, _ := road.read()
		a, _ := air.read()
		return r == 2 && a == 3
	})
	// Read before the release: once road's messages finish, air's fourth
	// may take a freed slot while the first three are still counted.
	_, mostAir := air.read()
	close(release)
	collect(t, e.js, contract.StreamResults, "digitoll.result.>", 10, 30*time.Second)
	if _, most := road.read(); most != 2 {
		t.Errorf("at most %d road messages were in flight at once, want the cap 2", most)
	}
	if mostAir != 3 {
		t.Errorf("at most %d air messages were in flight at once while road held its cap, want 3 (the pool of 5 less road's 2)", mostAir)
	}
}

func TestKindConcurrencyIsChecked(t *testing.T) {
	e := newEnv(t)
	_, err := New(e.js, withTenant(Config{
		Handlers:        map[contract.Kind]Handler{contract.KindRoad: &fakeHandler{behaviour: accept}},
		KindConcurrency: map[contract.Kind]int{contract.KindRoad: 0},
	}))
	if !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("a cap of 0: err = %v, want ErrInvalidConfig", err)
	}
}
