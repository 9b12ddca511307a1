package chaos

import (
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
)

// proxy is a loopback TCP proxy in front of a NATS server for one worker's
// connection. cut drops its connections and refuses new ones until heal:
// the worker stays alive but cannot reach NATS, as in a network partition.
type proxy struct {
	ln       net.Listener
	upstream string

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	cutOff bool
	// pipes counts the copying goroutines; close waits for them.
	pipes sync.WaitGroup
}

// startProxy proxies to the host:port of the nats:// URL upstream until
// the test ends.
func startProxy(t *testing.T, upstream string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, upstream: strings.TrimPrefix(upstream, "nats://"), conns: map[net.Conn]struct{}{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.serve()
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		p.cut()
		p.pipes.Wait()
	})
	return p
}

// URL is the proxy's nats:// URL.
func (p *proxy) URL() string { return "nats://" + p.ln.Addr().String() }

func (p *proxy) serve() {
	for {
		down, err := p.ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			continue
		}
		p.mu.Lock()
		cutOff := p.cutOff
		p.mu.Unlock()
		if cutOff {
			down.Close()
			continue
		}
		up, err := net.Dial("tcp", p.upstream)
		if err != nil {
			down.Close()
			continue
		}
		p.mu.Lock()
		p.conns[down], p.conns[up] = struct{}{}, struct{}{}
		p.mu.Unlock()
		p.pipes.Add(2)
		go p.pipe(up, down)
		go p.pipe(down, up)
	}
}

// pipe copies from src to dst until either fails, then closes both.
func (p *proxy) pipe(dst, src net.Conn) {
	defer p.pipes.Done()
	_, _ = io.Copy(dst, src)
	p.mu.Lock()
	delete(p.conns, dst)
	delete(p.conns, src)
	p.mu.Unlock()
	dst.Close()
	src.Close()
}

// cut closes every proxied connection and refuses new ones.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cutOff = true
	for c := range p.conns {
		c.Close()
	}
}

// heal lets connections through again.
func (p *proxy) heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cutOff = false
}
