package app

import (
	"context"
	"fmt"

	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/failure"
	"github.com/digitoll/digitoll-worker/handlers"
	"github.com/digitoll/digitoll-worker/worker"
)

// Without a tenants file the worker has one tenant's credentials, and its
// consumers take every tenant's subjects of its kinds
// (digitoll.submit.<kind>.*). A message of another tenant must not be
// declared to Toll with this tenant's integration and answered as if it
// were that tenant's: it is dead-lettered "unsupported", as a tenant
// missing from a tenants file is, and can be replayed once a worker
// serves the tenant.

// onlyTenant wraps each handler of hs to serve the named tenant only.
func onlyTenant(name string, hs map[contract.Kind]handlers.Handler) map[contract.Kind]handlers.Handler {
	out := make(map[contract.Kind]handlers.Handler, len(hs))
	for k, h := range hs {
		out[k] = &oneTenant{name: name, h: h}
	}
	return out
}

// oneTenant is the worker's handler of one kind for the single tenant of
// the environment.
type oneTenant struct {
	name string
	h    handlers.Handler
}

// Admit refuses every tenant but the configured one
// (worker.TenantAdmitter).
func (o *oneTenant) Admit(tenant string) error {
	if tenant == o.name {
		return nil
	}
	return failure.WithReason(fmt.Errorf(
		"tenant %q is not served: without DIGITOLL_TENANTS_FILE this worker declares for tenant %q only, with that tenant's Maskinporten integration",
		tenant, o.name), failure.Permanent, "unsupported")
}

// Handle carries out req with the tenant's handler; another tenant's
// message is refused, should the worker not have asked Admit.
func (o *oneTenant) Handle(ctx context.Context, req handlers.Request) (handlers.Outcome, error) {
	if err := o.Admit(req.Tenant); err != nil {
		return handlers.Outcome{}, err
	}
	return o.h.Handle(ctx, req)
}

// Probe probes the wrapped handler when it can be probed; one that cannot
// passes, as the worker treats a handler without a probe.
func (o *oneTenant) Probe(ctx context.Context) error {
	if p, ok := o.h.(worker.Prober); ok {
		return p.Probe(ctx)
	}
	return nil
}
