package telemetry

import (
	"sync"
	"sync/atomic"

	"github.com/digitoll/digitoll-worker/contract"
)

// Tenant labels: the worker reports the tenant of every delivery, taken
// from the submission's subject, so any publisher allowed on
// digitoll.submit.> can name any tenant. Labelling series with that raw
// value would let a publisher mint series until Prometheus falls over.
// The tenant label of the message metrics is therefore one of:
//
//   - the tenant's name, for the first limit tenants given to SetTenants
//     (the configured tenants, in the order given);
//   - TenantOther for configured tenants beyond the limit;
//   - TenantUnconfigured for any other tenant, and for a subject that did
//     not parse;
//   - TenantAll for every tenant when the limit is 0 (no tenant label).
//
// Until SetTenants is called (a worker without a tenants list) the first
// limit valid tenant names seen are labelled as given and later ones
// TenantOther: bounded all the same, and an installation with one tenant
// sees its name. A configured tenant literally named "other",
// "unconfigured" or "all" shares its series with those values.
//
// Series, once created, stay until the process restarts (a counter that
// vanished would read as a reset), so a tenant removed from the
// configuration keeps its series; their number is bounded by the tenants
// ever configured, not by what publishers send.

// DefaultTenantLabelLimit is how many tenants get a label of their own
// unless WithTenantLabelLimit says otherwise.
const DefaultTenantLabelLimit = 200

// Tenant label values that are not a tenant's name.
const (
	// TenantUnconfigured labels a tenant not given to SetTenants, and a
	// delivery whose subject did not parse.
	TenantUnconfigured = "unconfigured"
	// TenantOther labels the tenants beyond the limit.
	TenantOther = "other"
	// TenantAll is the one tenant label when the limit is 0.
	TenantAll = "all"
)

// Option configures NewMetrics.
type Option func(*Metrics)

// WithTenantLabelLimit sets how many distinct tenants are labelled by
// name (DefaultTenantLabelLimit without it); 0 or less turns the tenant
// label into the constant TenantAll.
func WithTenantLabelLimit(n int) Option {
	return func(m *Metrics) { m.tenants.limit = max(n, 0) }
}

// tenantLabels maps the tenant of a delivery to its label value. The
// lookup is on every delivery's path: it reads an immutable map through an
// atomic pointer and takes no lock, except while a tenant is first seen
// before SetTenants.
type tenantLabels struct {
	// limit is fixed by NewMetrics.
	limit int
	// configured maps each tenant given to SetTenants to its label; nil
	// until SetTenants is called. Never modified once stored.
	configured atomic.Pointer[map[string]string]
	// seen holds the tenants labelled by name before SetTenants, at most
	// limit; copied on write under mu, never modified once stored.
	seen atomic.Pointer[map[string]struct{}]
	mu   sync.Mutex
}

// label returns tenant's label value.
func (t *tenantLabels) label(tenant string) string {
	if t.limit == 0 {
		return TenantAll
	}
	if set := t.configured.Load(); set != nil {
		if l, ok := (*set)[tenant]; ok {
			return l
		}
		return TenantUnconfigured
	}
	return t.seenLabel(tenant)
}

// seenLabel labels tenant before SetTenants: by name if it is among the
// first limit valid names seen.
func (t *tenantLabels) seenLabel(tenant string) string {
	if seen := t.seen.Load(); seen != nil {
		if _, ok := (*seen)[tenant]; ok {
			return tenant
		}
		if len(*seen) >= t.limit {
			if contract.ValidTenant(tenant) {
				return TenantOther
			}
			return TenantUnconfigured
		}
	}
	// Only valid names become label values: the raw token could be any
	// bytes, and Prometheus refuses label values that are not UTF-8.
	if !contract.ValidTenant(tenant) {
		return TenantUnconfigured
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	var old map[string]struct{}
	if p := t.seen.Load(); p != nil {
		old = *p
	}
	if _, ok := old[tenant]; ok {
		return tenant
	}
	if len(old) >= t.limit {
		return TenantOther
	}
	next := make(map[string]struct{}, len(old)+1)
	for name := range old {
		next[name] = struct{}{}
	}
	next[tenant] = struct{}{}
	t.seen.Store(&next)
	return tenant
}

// SetTenants sets the configured tenants, in the order the limit counts
// them: the first limit distinct names are labelled by name, the rest
// TenantOther, and every tenant not named TenantUnconfigured. Names that
// cannot be a subject's tenant are ignored. Call it at start and after
// every change of the tenants; it is safe to call while deliveries are
// observed, which see the old set or the new one, never a mix.
func (m *Metrics) SetTenants(names []string) {
	set := make(map[string]string, len(names))
	named := 0
	for _, name := range names {
		if _, dup := set[name]; dup || !contract.ValidTenant(name) {
			continue
		}
		if named < m.tenants.limit {
			set[name] = name
			named++
		} else {
			set[name] = TenantOther
		}
	}
	m.tenants.configured.Store(&set)
}
