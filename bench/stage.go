package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/digitoll/digitoll-worker/app"
	"github.com/digitoll/digitoll-worker/config"
	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/embednats"
	"github.com/digitoll/digitoll-worker/simulator"
	"github.com/digitoll/digitoll-worker/toll"
	"github.com/digitoll/digitoll-worker/worker"
)

// settleTimeout bounds the waits that should take a moment: a NATS
// helper process starting, the submit stream emptying after the last
// result, processes stopping.
const settleTimeout = 30 * time.Second

// stageOptions describe the surroundings of one scenario.
type stageOptions struct {
	kinds       []contract.Kind
	concurrency int
	// callLatency is added to every Toll API call.
	callLatency     time.Duration
	validationDelay time.Duration
	// natsProcess runs NATS in a process of its own (Config.NATSCommand)
	// instead of in this one.
	natsProcess bool
}

// stage is what one scenario runs against: a fresh simulator and NATS
// server with the contract's streams, and the worker's settings pointing
// at both. close stops everything it started.
type stage struct {
	sim *simulator.Server
	nc  *nats.Conn
	js  jetstream.JetStream
	// settings are the worker's settings as the environment variables
	// `digitoll run` reads; config and worker processes take them alike.
	settings map[string]string
	closers  []func()
	// natsDir is the NATS server's store directory.
	natsDir string
	// natsHeap tells the heap in use of the NATS server when it runs in
	// a process of its own; nil otherwise.
	natsHeap func(context.Context) (uint64, error)
	// natsTraffic tells the messages the NATS server has received and
	// sent so far when it runs in this process; nil otherwise.
	natsTraffic func() (in, out int64, err error)
}

// allScopes are granted to the benchmark's client.
func allScopes() []string {
	return []string{
		toll.Scope(false, toll.RoadV2().ScopeBase),
		toll.Scope(false, toll.AirV1().ScopeBase),
		toll.Scope(false, toll.EntryScopeBase),
		toll.Scope(false, toll.DocumentV2().ScopeBase),
	}
}

// newStage starts the surroundings o describes, with the streams created;
// its directory (the NATS store) is removed by close.
func (r *runner) newStage(ctx context.Context, o stageOptions) (_ *stage, err error) {
	r.stages++
	dir := filepath.Join(r.dir, fmt.Sprintf("stage-%02d", r.stages))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	s := &stage{closers: []func(){func() { _ = os.RemoveAll(dir) }}}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	s.sim, err = simulator.Start(simulator.Config{
		ValidationDelay: o.validationDelay,
		Clients:         []simulator.Client{r.key.Client(allScopes()...)},
	}, "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s.closers = append(s.closers, func() { _ = s.sim.Close() })
	s.sim.SetFaults(simulator.Faults{Latency: o.callLatency})

	var url string
	s.natsDir = filepath.Join(dir, "nats")
	if o.natsProcess {
		if r.cfg.NATSCommand == nil {
			return nil, errNoNATSProcess
		}
		p, err := startNATSProcess(ctx, r.cfg.NATSCommand(s.natsDir))
		if err != nil {
			return nil, err
		}
		s.closers = append(s.closers, p.stop)
		url = p.url
		s.natsHeap = p.heapInUse
	} else {
		srv, err := embednats.Start(embednats.Options{Dir: s.natsDir, Port: embednats.RandomPort})
		if err != nil {
			return nil, err
		}
		s.closers = append(s.closers, srv.Shutdown)
		url = srv.ClientURL()
		s.natsTraffic = srv.Traffic
	}
	if s.nc, err = nats.Connect(url, nats.Name("digitoll-bench")); err != nil {
		return nil, fmt.Errorf("connect to NATS: %w", err)
	}
	s.closers = append(s.closers, s.nc.Close)
	if s.js, err = jetstream.New(s.nc); err != nil {
		return nil, err
	}

	kinds := make([]string, len(o.kinds))
	for i, k := range o.kinds {
		kinds[i] = string(k)
	}
	s.settings = map[string]string{
		"DIGITOLL_ENV":                    string(config.EnvTest),
		"DIGITOLL_MASKINPORTEN_ISSUER":    s.sim.Issuer(),
		"DIGITOLL_MASKINPORTEN_TOKEN_URL": s.sim.TokenURL(),
		"DIGITOLL_TOLL_BASE_URL":          s.sim.TollBaseURL(),
		"DIGITOLL_CLIENT_ID":              r.key.ClientID,
		"DIGITOLL_KEY_FILE":               r.key.KeyFile,
		"DIGITOLL_CERT_FILE":              r.key.CertFile,
		"DIGITOLL_NATS_URL":               url,
		"DIGITOLL_KINDS":                  strings.Join(kinds, ","),
		"DIGITOLL_CONCURRENCY":            strconv.Itoa(o.concurrency),
		"DIGITOLL_HTTP_ADDR":              "off",
	}
	maps.Copy(s.settings, brakesOff())
	cfg, err := s.config()
	if err != nil {
		return nil, err
	}
	if err := app.EnsureStreams(ctx, s.js, cfg.NATS); err != nil {
		return nil, err
	}
	return s, nil
}

// brakesOff are the settings that turn off the worker's own limits on how
// hard it calls Toll (a rate per API, a cap on concurrent documents):
// the scenarios measure the worker against its surroundings, not against
// its brakes, and say where a default brake would bind.
func brakesOff() map[string]string {
	return map[string]string{
		"DIGITOLL_TOLL_RATE":        "0",
		"DIGITOLL_KIND_CONCURRENCY": "none",
	}
}

// setup says how every stage is configured, for the report.
const setup = "each scenario has a fresh simulator and NATS server on 127.0.0.1; the worker is configured as `digitoll run` reads its environment, " +
	"with its own brakes off (DIGITOLL_TOLL_RATE=0, DIGITOLL_KIND_CONCURRENCY=none) so that the figures are about the worker against its surroundings"

// errNoNATSProcess is returned for a stage that needs NATS in a process of
// its own when Config.NATSCommand is nil.
var errNoNATSProcess = errors.New("no NATS process (Config.NATSCommand is nil)")

// config reads the stage's settings exactly as `digitoll run` reads its
// environment.
func (s *stage) config() (*config.Config, error) {
	return loadSettings(s.settings)
}

// defaultConfig is the stage's configuration with the worker's brakes at
// their defaults, to tell where they would bind.
func (s *stage) defaultConfig() (*config.Config, error) {
	settings := maps.Clone(s.settings)
	for k := range brakesOff() {
		delete(settings, k)
	}
	return loadSettings(settings)
}

func loadSettings(settings map[string]string) (*config.Config, error) {
	return config.Load(flag.NewFlagSet("bench", flag.ContinueOnError), nil, func(k string) string { return settings[k] })
}

// environ is the environment of a worker process: this process's, without
// its DIGITOLL_ settings, plus the stage's.
func (s *stage) environ() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DIGITOLL_") {
			env = append(env, kv)
		}
	}
	for k, v := range s.settings {
		env = append(env, k+"="+v)
	}
	return env
}

// close stops what the stage started, last first.
func (s *stage) close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
	s.closers = nil
}

// running is a worker (or other service) running in a goroutine.
type running struct {
	cancel context.CancelFunc
	// ended is closed when run has returned, err then being its error.
	ended chan struct{}
	err   error
}

// start runs run until stop.
func start(ctx context.Context, run func(context.Context) error) *running {
	ctx, cancel := context.WithCancel(ctx)
	r := &running{cancel: cancel, ended: make(chan struct{})}
	go func() {
		defer close(r.ended)
		r.err = run(ctx)
	}()
	return r
}

// stop cancels the run and returns its error.
func (r *running) stop() error {
	r.cancel()
	<-r.ended
	return r.err
}

// waitPulling waits until the stage tenant's lane of kind has at least n pull
// requests waiting: its workers are ready to take messages. alive, if not
// nil, reports a worker that has stopped, which ends the wait.
func (s *stage) waitPulling(ctx context.Context, kind contract.Kind, n int, alive func() error) error {
	deadline := time.Now().Add(settleTimeout)
	for {
		if alive != nil {
			if err := alive(); err != nil {
				return err
			}
		}
		waiting := 0
		if cons, err := s.js.Consumer(ctx, contract.StreamSubmit, worker.LaneConsumerName(kind, contract.DefaultTenant)); err == nil {
			if info, err := cons.Info(ctx); err == nil {
				waiting = info.NumWaiting
			}
		}
		if waiting >= n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d workers pulling %s after %s", waiting, n, kind, settleTimeout)
		}
		if !sleepCtx(ctx, 10*time.Millisecond) {
			return ctx.Err()
		}
	}
}

// services wires the worker as `digitoll run` does, from the stage's
// settings, on the stage's connection; close flushes its telemetry.
func (s *stage) services(ctx context.Context, r *runner) (*app.Services, error) {
	return s.servicesLogging(ctx, r.log)
}

// tenantServices are the services of the stage's one tenant, configured
// from the environment as contract.DefaultTenant.
func tenantServices(svc *app.Services) (app.TenantServices, error) {
	ts, ok := svc.Tenant(contract.DefaultTenant)
	if !ok {
		return app.TenantServices{}, fmt.Errorf("the services do not serve tenant %s", contract.DefaultTenant)
	}
	return ts, nil
}

// servicesLogging is services logging to logger.
func (s *stage) servicesLogging(ctx context.Context, logger *slog.Logger) (*app.Services, error) {
	cfg, err := s.config()
	if err != nil {
		return nil, err
	}
	svc, err := app.NewServices(ctx, cfg, s.js, logger)
	if err != nil {
		return nil, err
	}
	s.closers = append(s.closers, func() { _ = svc.Shutdown(context.WithoutCancel(ctx)) })
	return svc, nil
}

// throughput publishes n house consignments named prefix as a backlog,
// runs svc until every one has its result, checks them (one result each,
// the submit stream acked), and returns the wall and CPU time from the
// start of the run to the last result, the objects allocated and, with
// NATS in this process, the messages it received and sent.
func (st *stage) throughput(ctx context.Context, svc *app.Services, prefix string, n int) (loopRun, error) {
	return st.throughputOf(ctx, "worker", svc.Run, prefix, n)
}

// throughputOf is throughput of any consumer of the submit stream that
// run runs until its context ends; name says which in errors. The results
// stream is purged first, so that a stage can measure several runs.
func (st *stage) throughputOf(ctx context.Context, name string, runFn func(context.Context) error, prefix string, n int) (loopRun, error) {
	results, err := st.js.Stream(ctx, contract.StreamResults)
	if err != nil {
		return loopRun{}, err
	}
	if err := results.Purge(ctx); err != nil {
		return loopRun{}, err
	}
	msgs, err := houses(prefix, n)
	if err != nil {
		return loopRun{}, err
	}
	watch, err := st.watchResults(n)
	if err != nil {
		return loopRun{}, err
	}
	defer watch.stop()
	if err := st.publish(ctx, msgs); err != nil {
		return loopRun{}, err
	}
	// The server's counters are read outside the CPU span: Varz does
	// work of its own.
	traffic, err := st.startTraffic()
	if err != nil {
		return loopRun{}, err
	}
	sp := startSpan()
	run := start(ctx, runFn)
	last, err := watch.wait(ctx, run)
	got := sp.end(last)
	if err == nil {
		err = traffic.end(&got)
	}
	if stopErr := run.stop(); err == nil {
		err = stopErr
	}
	if err != nil {
		return loopRun{}, fmt.Errorf("%s: %w", name, err)
	}
	if err := st.verify(ctx, msgs); err != nil {
		return loopRun{}, fmt.Errorf("%s: %w", name, err)
	}
	return got, nil
}

// trafficSpan is the NATS server's message counters at the start of a
// run.
type trafficSpan struct {
	read    func() (in, out int64, err error)
	in, out int64
}

// startTraffic reads the counters of the stage's NATS server; with NATS
// in a process of its own there are none and end records nothing.
func (s *stage) startTraffic() (trafficSpan, error) {
	t := trafficSpan{read: s.natsTraffic}
	if t.read == nil {
		return t, nil
	}
	var err error
	if t.in, t.out, err = t.read(); err != nil {
		return trafficSpan{}, err
	}
	return t, nil
}

// end records in r the messages the server received and sent since
// startTraffic.
func (t trafficSpan) end(r *loopRun) error {
	if t.read == nil {
		return nil
	}
	in, out, err := t.read()
	if err != nil {
		return err
	}
	r.msgsIn, r.msgsOut, r.hasTraffic = in-t.in, out-t.out, true
	return nil
}
