package app

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/digitoll/digitoll-worker/auth"
	"github.com/digitoll/digitoll-worker/config"
	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/failure"
	"github.com/digitoll/digitoll-worker/handlers"
	"github.com/digitoll/digitoll-worker/routing"
	"github.com/digitoll/digitoll-worker/toll"
	"github.com/digitoll/digitoll-worker/worker"
)

// Tenants: the worker serves a table of tenants, those of
// DIGITOLL_TENANTS_FILE or, without it, the one tenant of the environment
// (tenant "default", DIGITOLL_CLIENT_ID…), a table of one built the same
// way (see tenantsOf). Every tenant gets its own signer, its own token
// cache and its own Toll client, so that no key or token is ever used for
// another tenant's message. The worker's handler of each kind is a
// byTenant that looks the message's tenant up in an immutable table;
// reloading the file swaps the table atomically. A
// message already being handled keeps the tenant's services it started
// with, so a tenant removed or re-keyed finishes its in-flight work with
// its old credentials; its messages that arrive after the swap are
// dead-lettered with reason "unsupported" (replay them once the tenant is
// back). The worker consumes each tenant's kinds through lanes of their
// own (see worker.Config.Tenants): tenants are served in turn, each with a
// cap of messages in progress, and a tenant whose scope is not granted is
// paused alone until its probe succeeds (see ProbeTenant).

// DefaultTenantsReload is how often the tenants file, and the keys it
// names, are checked for changes.
const DefaultTenantsReload = 3 * time.Second

// tenant is the services of one tenant.
type tenant struct {
	cfg config.Tenant
	// files digests the key, certificate and password files, so that a
	// key replaced in place rebuilds the tenant.
	files  [sha256.Size]byte
	signer *auth.KeyRing
	client *toll.Client
	tokens *auth.Cache
	// handlers are the tenant's, for its enabled kinds.
	handlers map[contract.Kind]kindHandler
}

// kindHandler is a tenant's handler of one kind. Every handler
// NewHandlers builds can also tell, without a message, whether the kind
// works again for the tenant (its token for the kind's scope, Toll's
// test-auth): byTenant's ProbeTenant asks it. newTenant refuses a handler
// without a probe, so that none passes every probe unasked.
type kindHandler interface {
	handlers.Handler
	Probe(ctx context.Context) error
}

// tenantTable is one version of the tenants; never modified once stored.
type tenantTable struct {
	byName map[string]*tenant
	// names in file order, for listing.
	names []string
}

// byTenant is the worker's handler of one kind (a worker.Handler): it
// hands each message to its tenant's handler.
type byTenant struct {
	kind  contract.Kind
	table *atomic.Pointer[tenantTable]
}

// Handle carries out req with the handler of req.Tenant. A tenant that is
// not configured, or may not use the kind, is the message's fault: it is
// dead-lettered with reason "unsupported".
func (b *byTenant) Handle(ctx context.Context, req handlers.Request) (handlers.Outcome, error) {
	h, err := b.handler(req.Tenant)
	if err != nil {
		return handlers.Outcome{}, err
	}
	return h.Handle(ctx, req)
}

// Admit refuses, before the worker waits on anything, a tenant that is
// not configured or may not use the kind.
func (b *byTenant) Admit(tenant string) error {
	_, err := b.handler(tenant)
	return err
}

// handler is tenant's handler of the kind, or the error that refuses it.
func (b *byTenant) handler(tenant string) (kindHandler, error) {
	t := b.table.Load().byName[tenant]
	if t == nil {
		return nil, failure.WithReason(fmt.Errorf("tenant %q is not served by this worker: it is not in DIGITOLL_TENANTS_FILE (without a file, only tenant %q is served)", tenant, contract.DefaultTenant), failure.Permanent, "unsupported")
	}
	h := t.handlers[b.kind]
	if h == nil {
		return nil, failure.WithReason(fmt.Errorf("tenant %q may not use kind %s (its kinds: %v)", tenant, b.kind, t.cfg.Kinds), failure.Permanent, "unsupported")
	}
	return h, nil
}

// ProbeTenant checks whether tenant's part of the kind works again: its
// token for the kind's scope and Toll's test-auth. A tenant not
// configured, or no longer allowed the kind, has nothing to probe: its
// lane resumes, and dead-letters what it holds.
func (b *byTenant) ProbeTenant(ctx context.Context, tenant string) error {
	h, err := b.handler(tenant)
	if err != nil {
		return nil
	}
	return h.Probe(ctx)
}

// Tenants lists the tenants of the current table for the worker's lanes.
func (ty *tenancy) Tenants() []worker.Tenant {
	tab := ty.table.Load()
	out := make([]worker.Tenant, 0, len(tab.names))
	for _, name := range tab.names {
		c := tab.byName[name].cfg
		out = append(out, worker.Tenant{Name: name, Kinds: c.Kinds, Concurrency: c.Concurrency})
	}
	return out
}

// tenancy builds and serves the tenants, and reloads those of a tenants
// file.
type tenancy struct {
	cfg     *config.Config
	js      jetstream.JetStream
	hc      *http.Client
	limiter toll.Limiter
	// pacer paces the validation polling of every tenant's handlers
	// (nil with DIGITOLL_VALIDATION_POLLING=fixed); it outlives reloads,
	// since what it learns is Toll's, not a tenant's.
	pacer  *handlers.Pacer
	tel    Telemetry
	logger *slog.Logger
	// reload is how often the file is checked.
	reload time.Duration

	table atomic.Pointer[tenantTable]

	// mu guards what reloads change; one reload runs at a time.
	mu          sync.Mutex
	fingerprint [sha256.Size]byte
	// failed is the fingerprint of the last version that did not load,
	// reported once rather than at every check.
	failed [sha256.Size]byte
	// watched are the tenants whose token metrics are registered; a
	// collector reads the tenant's current cache through the table.
	watched map[string]bool
	// changed receives a value when a reload swapped the table.
	changed chan struct{}

	// pollersMu guards pollers, the routing pollers running now by
	// tenant, for routingHealth.
	pollersMu sync.Mutex
	pollers   map[string]*routing.Poller
}

// setPoller records tenant's running poller, or its end with nil.
func (ty *tenancy) setPoller(tenant string, p *routing.Poller) {
	ty.pollersMu.Lock()
	defer ty.pollersMu.Unlock()
	if ty.pollers == nil {
		ty.pollers = map[string]*routing.Poller{}
	}
	if p == nil {
		delete(ty.pollers, tenant)
		return
	}
	ty.pollers[tenant] = p
}

// routingEnabled tells whether a tenant of the current table polls
// routing.
func (ty *tenancy) routingEnabled() bool {
	tab := ty.table.Load()
	for _, name := range tab.names {
		if ty.cfg.RoutingEnabledFor(tab.byName[name].cfg) {
			return true
		}
	}
	return false
}

// routingHealth names each tenant's paused routing feeds, and why, when
// every tenant's routing has one: as with the kinds' lanes, one tenant's
// fault must not make the worker that serves the others unready (it shows
// in the log and in digitoll_routing_lag_seconds).
func (ty *tenancy) routingHealth() error {
	ty.pollersMu.Lock()
	defer ty.pollersMu.Unlock()
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(ty.pollers)) {
		err := ty.pollers[name].Health()
		if err == nil {
			return nil
		}
		errs = append(errs, fmt.Errorf("tenant %s: %w", name, err))
	}
	return errors.Join(errs...)
}

// TenantsChanged tells the worker that the tenants changed, so that its
// lanes follow the file at once.
func (ty *tenancy) TenantsChanged() <-chan struct{} { return ty.changed }

// tenantsOf lists the tenants cfg serves: those of its tenants file or,
// without one, the tenant its environment configures. That one may use the
// whole pool (Concurrency): no other tenant needs a share of it.
func tenantsOf(cfg *config.Config) ([]config.Tenant, error) {
	if cfg.TenantsFile != "" {
		return config.LoadTenants(cfg.TenantsFile)
	}
	t := cfg.Tenant
	if t.Concurrency == 0 {
		t.Concurrency = cfg.Worker.Concurrency
	}
	return []config.Tenant{t}, nil
}

// newTenancy builds every tenant of cfg (see tenantsOf).
func newTenancy(cfg *config.Config, js jetstream.JetStream, hc *http.Client, limiter toll.Limiter, tel Telemetry, logger *slog.Logger) (*tenancy, error) {
	ty := &tenancy{cfg: cfg, js: js, hc: hc, limiter: limiter, tel: tel, logger: logger,
		reload: DefaultTenantsReload, watched: map[string]bool{}, changed: make(chan struct{}, 1)}
	if cfg.Worker.ValidationPolling != "fixed" {
		ty.pacer = handlers.NewPacer()
	}
	if cfg.TenantsFile != "" {
		ty.fingerprint = config.Fingerprint(cfg.TenantsFile)
	}
	ts, err := tenantsOf(cfg)
	if err != nil {
		return nil, err
	}
	tab, err := ty.build(ts, nil)
	if err != nil {
		return nil, err
	}
	ty.table.Store(tab)
	ty.labelTenants(tab)
	if err := ty.watchTokens(tab); err != nil {
		return nil, err
	}
	if m := ty.tel.Metrics; m != nil {
		if err := m.WatchCertificates(ty.certificateExpiries); err != nil {
			return nil, err
		}
	}
	return ty, nil
}

// handlers are the worker's handlers: with a tenants file one byTenant
// for every kind, so that a kind a tenant starts using after a reload is
// consumed without a restart; the worker makes lanes only for the kinds
// tenants use (and for subjects holding messages, which byTenant answers).
// The environment's tenant cannot change its kinds without a restart: a
// kind it does not use has no handler, and its messages are left to the
// processes that have one (DIGITOLL_KINDS may split the kinds between
// processes).
func (ty *tenancy) handlers() map[contract.Kind]worker.Handler {
	kinds := contract.Kinds()
	if ty.cfg.TenantsFile == "" {
		kinds = ty.cfg.Tenant.Kinds
	}
	hs := make(map[contract.Kind]worker.Handler, len(kinds))
	for _, k := range kinds {
		hs[k] = &byTenant{kind: k, table: &ty.table}
	}
	return hs
}

// build makes the table of ts, reusing the services of old's tenants
// whose settings and files have not changed (their tokens stay cached).
func (ty *tenancy) build(ts []config.Tenant, old *tenantTable) (*tenantTable, error) {
	tab := &tenantTable{byName: make(map[string]*tenant, len(ts))}
	for _, c := range ts {
		files := fileDigest(c)
		if old != nil {
			if prev := old.byName[c.Name]; prev != nil && prev.files == files && reflect.DeepEqual(prev.cfg, c) {
				tab.byName[c.Name] = prev
				tab.names = append(tab.names, c.Name)
				continue
			}
		}
		t, err := ty.newTenant(c, files)
		if err != nil {
			return nil, fmt.Errorf("tenant %q: %w", c.Name, err)
		}
		tab.byName[c.Name] = t
		tab.names = append(tab.names, c.Name)
	}
	return tab, nil
}

// newTenant builds the key ring, token cache, Toll client and handlers of
// c.
func (ty *tenancy) newTenant(c config.Tenant, files [sha256.Size]byte) (*tenant, error) {
	signer, err := LoadKeyRing(c)
	if err != nil {
		return nil, err
	}
	cfg := *ty.cfg
	cfg.Tenant = c
	client, tokens := tollClient(&cfg, ty.hc, signer, ty.logger)
	client.Limiter = ty.limiter
	// The handlers name each message's tenant themselves.
	hs, err := NewHandlers(&cfg, ty.js, client, ty.pacer, ty.tel, ty.logger)
	if err != nil {
		return nil, err
	}
	probed := make(map[contract.Kind]kindHandler, len(hs))
	for k, h := range hs {
		p, ok := h.(kindHandler)
		if !ok {
			return nil, fmt.Errorf("the handler of kind %s (%T) has no probe to resume a paused lane with", k, h)
		}
		probed[k] = p
	}
	return &tenant{cfg: c, files: files, signer: signer, client: client, tokens: tokens, handlers: probed}, nil
}

// fileDigest digests the files c reads.
func fileDigest(c config.Tenant) [sha256.Size]byte {
	h := sha256.New()
	for _, f := range c.Files() {
		b, _ := os.ReadFile(f)
		sum := sha256.Sum256(b)
		h.Write(sum[:])
	}
	var out [sha256.Size]byte
	h.Sum(out[:0])
	return out
}

// Reload reads the tenants file again if it or a file it names changed,
// and swaps in the new table. A file that does not validate, or a key
// that does not load, leaves the current tenants in place; the error says
// why.
func (ty *tenancy) Reload() (changed bool, err error) {
	ty.mu.Lock()
	defer ty.mu.Unlock()
	fp := config.Fingerprint(ty.cfg.TenantsFile)
	if fp == ty.fingerprint || fp == ty.failed {
		return false, nil
	}
	ts, err := config.LoadTenants(ty.cfg.TenantsFile)
	if err != nil {
		ty.failed = fp
		return false, err
	}
	old := ty.table.Load()
	tab, err := ty.build(ts, old)
	if err != nil {
		ty.failed = fp
		return false, err
	}
	if err := ty.watchTokens(tab); err != nil {
		return false, err
	}
	ty.table.Store(tab)
	ty.labelTenants(tab)
	ty.fingerprint = fp
	select {
	case ty.changed <- struct{}{}:
	default: // the worker has yet to take the last change
	}
	added, removed := 0, 0
	for _, name := range tab.names {
		if old.byName[name] == nil {
			added++
		}
	}
	for _, name := range old.names {
		if tab.byName[name] == nil {
			removed++
		}
	}
	ty.logger.Info("tenants file reloaded", "tenants", len(tab.names), "added", added, "removed", removed)
	return true, nil
}

// labelTenants gives the metrics the tenants of tab, the only ones
// labelled by name: a subject's last token comes from the wire.
func (ty *tenancy) labelTenants(tab *tenantTable) {
	if m := ty.tel.Metrics; m != nil {
		m.SetTenants(tab.names)
	}
}

// watchTokens registers the token metrics of tab's tenants not yet
// registered. The collector reads the tenant's cache of the current
// table, so a re-keyed tenant keeps one series.
func (ty *tenancy) watchTokens(tab *tenantTable) error {
	m := ty.tel.Metrics
	if m == nil {
		return nil
	}
	for _, name := range tab.names {
		if ty.watched[name] {
			continue
		}
		if err := m.WatchTokens(name, tenantTokens{name: name, table: &ty.table}); err != nil {
			return err
		}
		ty.watched[name] = true
	}
	return nil
}

// certificateExpiries are when the business certificates of the current
// table's tenants expire, each the certificate of the key in use now;
// tenants whose keys are registered by kid have none.
func (ty *tenancy) certificateExpiries() map[string]time.Time {
	tab := ty.table.Load()
	out := make(map[string]time.Time, len(tab.names))
	for _, name := range tab.names {
		if notAfter, ok := certificateExpiry(tab.byName[name].signer); ok {
			out[name] = notAfter
		}
	}
	return out
}

// certificateExpiry is when the certificate of ring's key in use now
// expires, and false in kid mode.
func certificateExpiry(ring *auth.KeyRing) (time.Time, bool) {
	i, err := ring.InUse(time.Now())
	if err != nil {
		// No key may sign: the first one's certificate, expired as it
		// may be, so that the alert on it fires.
		i = 0
	}
	return ring.Keys()[i].Signer.NotAfter()
}

// tenantTokens is the token cache of the named tenant in the current
// table, for metrics; a removed tenant reports no scopes.
type tenantTokens struct {
	name  string
	table *atomic.Pointer[tenantTable]
}

func (tt tenantTokens) cache() *auth.Cache {
	if tab := tt.table.Load(); tab != nil {
		if t := tab.byName[tt.name]; t != nil {
			return t.tokens
		}
	}
	return nil
}

// Scopes lists the scopes of the tenant's current cache.
func (tt tenantTokens) Scopes() []string {
	if c := tt.cache(); c != nil {
		return c.Scopes()
	}
	return nil
}

// Stats reports scope's counters in the tenant's current cache.
func (tt tenantTokens) Stats(scope string) auth.CacheStats {
	if c := tt.cache(); c != nil {
		return c.Stats(scope)
	}
	return auth.CacheStats{}
}

// tenantRouting reads the routing feeds with the named tenant's current
// Toll client, so that a re-keyed tenant's poller uses the new key.
type tenantRouting struct {
	name  string
	table *atomic.Pointer[tenantTable]
}

// Routing calls the current client's Routing.
func (tr tenantRouting) Routing(ctx context.Context, feed contract.Feed, marker string) ([]toll.RoutingSignal, error) {
	t := tr.table.Load().byName[tr.name]
	if t == nil {
		return nil, failure.Mark(fmt.Errorf("tenant %q was removed", tr.name), failure.Transient)
	}
	return t.client.Routing(ctx, feed, marker)
}

// run reloads the tenants file every ty.reload and runs a routing poller
// for each tenant with routing enabled, starting and stopping them as
// tenants come and go, until ctx is done or a poller fails.
func (ty *tenancy) run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type running struct {
		cancel context.CancelFunc
	}
	pollers := map[string]running{}
	var wg sync.WaitGroup
	var errOnce sync.Once
	var pollErr error
	syncPollers := func() {
		tab := ty.table.Load()
		for name, r := range pollers {
			if t := tab.byName[name]; t == nil || !ty.cfg.RoutingEnabledFor(t.cfg) {
				r.cancel()
				ty.setPoller(name, nil)
				delete(pollers, name)
			}
		}
		for _, name := range tab.names {
			if _, ok := pollers[name]; ok || !ty.cfg.RoutingEnabledFor(tab.byName[name].cfg) {
				continue
			}
			kv, err := routing.EnsureBucket(ctx, ty.js, ty.cfg.NATS.Replicas)
			if err != nil {
				if ctx.Err() == nil {
					ty.logger.Error("routing markers bucket unavailable; the tenant's routing starts at the next reload", "tenant", name, "error", err)
				}
				continue
			}
			p := &routing.Poller{
				JetStream: ty.js,
				Markers:   kv,
				Tenant:    name,
				Toll:      tenantRouting{name: name, table: &ty.table},
				Interval:  ty.cfg.Routing.Interval,
				Logger:    ty.logger.With("component", "routing", "tenant", name),
				Observer:  ty.tel.routingObserver(),
			}
			pctx, pcancel := context.WithCancel(ctx)
			pollers[name] = running{cancel: pcancel}
			ty.setPoller(name, p)
			wg.Go(func() {
				if err := p.Run(pctx); err != nil {
					errOnce.Do(func() { pollErr = fmt.Errorf("routing of tenant %s: %w", name, err) })
					cancel()
				}
			})
		}
	}
	syncPollers()
	// The environment's tenant is read once; only a file changes.
	var reload <-chan time.Time
	if ty.cfg.TenantsFile != "" {
		tick := time.NewTicker(ty.reload)
		defer tick.Stop()
		reload = tick.C
	}
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-reload:
			changed, err := ty.Reload()
			if err != nil {
				ty.logger.Error("tenants file not reloaded; the tenants already loaded are served", "error", err)
				continue
			}
			if changed {
				syncPollers()
			}
		}
	}
	for _, r := range pollers {
		r.cancel()
	}
	wg.Wait()
	return pollErr
}
