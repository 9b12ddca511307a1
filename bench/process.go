package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/digitoll/digitoll-worker/embednats"
)

// ServeNATS serves an embedded NATS server with JetStream storing in dir
// for a benchmark running in another process: it prints the server's
// client URL as one line on stdout, then serves until stdin ends (the
// benchmark closed it or died) or ctx is done. The documents scenario
// measures the worker's heap, which an embedded server would share. A
// line "heap" on stdin is answered on stdout with "heap N": the bytes of
// the server's heap in use after a collection (the storage scenario).
func ServeNATS(ctx context.Context, dir string, stdin io.Reader, stdout io.Writer) error {
	srv, err := embednats.Start(embednats.Options{Dir: dir, Port: embednats.RandomPort})
	if err != nil {
		return err
	}
	defer srv.Shutdown()
	if _, err := fmt.Fprintln(stdout, srv.ClientURL()); err != nil {
		return err
	}
	// The reader ends with stdin. When ctx ends first the process is
	// exiting, which ends it too.
	eof := make(chan struct{})
	go func() {
		defer close(eof)
		sc := bufio.NewScanner(stdin)
		for sc.Scan() {
			if sc.Text() == "heap" {
				// Twice: the first collection leaves sync.Pool's
				// buffers to the second.
				runtime.GC()
				runtime.GC()
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				_, _ = fmt.Fprintf(stdout, "heap %d\n", ms.HeapInuse)
			}
		}
	}()
	select {
	case <-eof:
	case <-ctx.Done():
	}
	return nil
}

// child is a helper process: a NATS server or a worker.
type child struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr *tail
	exited chan struct{}
	err    error // Wait's error, set before exited is closed
}

// startChild starts cmd, keeping the end of its standard error for error
// messages. With stdin, the process gets a pipe that stop closes.
func startChild(cmd *exec.Cmd, stdout io.Writer, stdin bool) (*child, error) {
	c := &child{cmd: cmd, stderr: &tail{}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = stdout, c.stderr
	if stdin {
		w, err := cmd.StdinPipe()
		if err != nil {
			return nil, err
		}
		c.stdin = w
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	go func() {
		c.err = cmd.Wait()
		close(c.exited)
	}()
	return c, nil
}

// stop ends the process: by closing its stdin, or with an interrupt (the
// worker's graceful shutdown), and kills it if it has not exited within
// settleTimeout. It returns the process's error, if it failed before it
// was asked to stop.
func (c *child) stop() error {
	select {
	case <-c.exited:
		return c.exitError()
	default:
	}
	if c.stdin != nil {
		_ = c.stdin.Close()
	} else {
		_ = c.cmd.Process.Signal(os.Interrupt)
	}
	t := time.NewTimer(settleTimeout)
	defer t.Stop()
	select {
	case <-c.exited:
	case <-t.C:
		_ = c.cmd.Process.Kill()
		<-c.exited
		return fmt.Errorf("%s did not stop within %s and was killed; its log ends:\n%s", c.cmd.Path, settleTimeout, c.stderr)
	}
	if c.err != nil {
		return fmt.Errorf("%s failed as it stopped (%v); its log ends:\n%s", c.cmd.Path, c.err, c.stderr)
	}
	return nil
}

// exitError describes a process that exited on its own.
func (c *child) exitError() error {
	return fmt.Errorf("%s exited early (%v); its log ends:\n%s", c.cmd.Path, c.err, c.stderr)
}

// natsProcess is a NATS server process started by startNATSProcess.
type natsProcess struct {
	*child
	url string
	out *firstLine
	// asking serializes heapInUse's questions.
	asking sync.Mutex
}

// heapInUse asks the process for its heap in use after a collection.
func (p *natsProcess) heapInUse(ctx context.Context) (uint64, error) {
	p.asking.Lock()
	defer p.asking.Unlock()
	if _, err := io.WriteString(p.stdin, "heap\n"); err != nil {
		return 0, fmt.Errorf("ask the NATS process for its heap: %w", err)
	}
	t := time.NewTimer(settleTimeout)
	defer t.Stop()
	for {
		select {
		case line := <-p.out.later:
			if v, ok := strings.CutPrefix(line, "heap "); ok {
				return strconv.ParseUint(v, 10, 64)
			}
		case <-p.exited:
			return 0, p.exitError()
		case <-t.C:
			return 0, fmt.Errorf("the NATS process did not tell its heap within %s", settleTimeout)
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// startNATSProcess starts cmd (see ServeNATS) and waits for its URL.
func startNATSProcess(ctx context.Context, cmd *exec.Cmd) (*natsProcess, error) {
	first := &firstLine{done: make(chan struct{}), later: make(chan string, 4)}
	c, err := startChild(cmd, first, true)
	if err != nil {
		return nil, err
	}
	t := time.NewTimer(settleTimeout)
	defer t.Stop()
	select {
	case <-first.done:
	case <-c.exited:
		return nil, c.exitError()
	case <-t.C:
		_ = c.stop()
		return nil, fmt.Errorf("the NATS process printed no URL within %s", settleTimeout)
	case <-ctx.Done():
		_ = c.stop()
		return nil, ctx.Err()
	}
	url := first.line()
	if !strings.HasPrefix(url, "nats://") {
		_ = c.stop()
		return nil, fmt.Errorf("the NATS process printed %q, not a nats:// URL", url)
	}
	return &natsProcess{child: c, url: url, out: first}, nil
}

// stop ends the NATS process; a failure is only worth a word, the
// scenario's figures are in.
func (p *natsProcess) stop() { _ = p.child.stop() }

// firstLine is a writer that keeps the first line written to it and
// signals when it is complete; later lines go to later when it is not nil
// and not full, the rest is discarded.
type firstLine struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	done  chan struct{}
	seen  bool
	later chan string
	rest  bytes.Buffer
}

func (f *firstLine) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.seen {
		f.passOn(p)
		return len(p), nil
	}
	if i := bytes.IndexByte(p, '\n'); i >= 0 {
		f.buf.Write(p[:i])
		f.seen = true
		close(f.done)
		f.passOn(p[i+1:])
		return len(p), nil
	}
	if f.buf.Len() < 4096 {
		f.buf.Write(p)
	}
	return len(p), nil
}

// passOn sends the complete lines of p, after what came before, to later.
func (f *firstLine) passOn(p []byte) {
	if f.later == nil {
		return
	}
	f.rest.Write(p)
	for {
		i := bytes.IndexByte(f.rest.Bytes(), '\n')
		if i < 0 {
			if f.rest.Len() > 4096 {
				f.rest.Reset()
			}
			return
		}
		line := strings.TrimSpace(string(f.rest.Next(i + 1)))
		select {
		case f.later <- line:
		default:
		}
	}
}

func (f *firstLine) line() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return strings.TrimSpace(f.buf.String())
}

// tailSize bounds what tail keeps.
const tailSize = 8 << 10

// tail keeps the last tailSize bytes written to it.
type tail struct {
	mu  sync.Mutex
	buf []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - tailSize; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}
