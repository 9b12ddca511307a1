package worker

import "sync"

// runners runs each delivery on a goroutine of its own, as `go` would,
// but hands a goroutine whose delivery ended the next one instead of
// letting it exit. A new goroutine starts with a small stack that a
// delivery grows several times over (HTTP client, JSON, NATS, each
// growth a copy of the whole stack); a reused one keeps the stack it
// grew. In the CPU profile of the overhead benchmark, stack growth
// (runtime.newstack) took 3 % of the worker's CPU with a goroutine per
// delivery, against 0.2 % in a worker with a fixed pool.
//
// The goroutines are at most the deliveries in progress at once (the
// slots bound them) plus those that were just finishing when a new
// delivery came; an idle one waits until stop.
type runners struct {
	// next hands a task to an idle goroutine; unbuffered, so a send
	// succeeds only when one is waiting.
	next chan func()
	// quit, closed by stop, ends the idle goroutines.
	quit chan struct{}
	// busy counts the tasks not finished; all counts the goroutines.
	busy sync.WaitGroup
	all  sync.WaitGroup
}

func newRunners() *runners {
	return &runners{next: make(chan func()), quit: make(chan struct{})}
}

// Go runs f on an idle goroutine, or on a new one if none is idle. It
// must not be called after stop.
func (p *runners) Go(f func()) {
	p.busy.Add(1)
	select {
	case p.next <- f:
		return
	default:
	}
	p.all.Go(func() {
		for {
			f()
			p.busy.Done()
			select {
			case f = <-p.next:
			case <-p.quit:
				return
			}
		}
	})
}

// Wait waits until every task given to Go has finished.
func (p *runners) Wait() { p.busy.Wait() }

// stop ends the idle goroutines and waits for them; the tasks must be
// finished (Wait) first.
func (p *runners) stop() {
	close(p.quit)
	p.all.Wait()
}
