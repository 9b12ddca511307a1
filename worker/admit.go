package worker

import (
	"context"

	"github.com/digitoll/digitoll-worker/failure"
	"github.com/digitoll/digitoll-worker/handlers"
)

// reasonUnsupported is the dead-letter reason of a message whose tenant the
// handler refuses.
const reasonUnsupported = "unsupported"

// Handler carries out one kind for the tenants the worker serves. Besides
// handling a message it answers, for one tenant, the two questions the
// worker asks without a message; both are part of the interface, so that
// a handler that cannot answer them does not compile, rather than passing
// every tenant and every probe unasked.
type Handler interface {
	handlers.Handler
	// Admit refuses a tenant that is not served or may not use the kind.
	// The worker asks before it waits for what a message's after names or
	// calls Handle, and dead-letters a message whose tenant is refused,
	// with the error's reason ("unsupported" unless it carries another):
	// a message that can only be refused must not wait a day for its
	// after first. A result already recorded for the message is still
	// published again; Admit is not asked then.
	Admit(tenant string) error
	// ProbeTenant checks, without a message, whether tenant's part of the
	// kind works again: for instance its token for the kind's scope and
	// Toll's test-auth. A tenant's paused lane is resumed when its probe
	// succeeds; during an outage one tenant's probe stands for the kind
	// (see probeOutage). A tenant that is not served has nothing to probe
	// and passes: its lane resumes and dead-letters what it holds.
	ProbeTenant(ctx context.Context, tenant string) error
}

// admit reports the handler's refusal of the message's tenant, or nil.
func (j *job) admit() error {
	return j.w.cfg.Handlers[j.d.kind].Admit(j.d.tenant)
}

// refuseTenant dead-letters a message whose tenant was refused by err.
func (j *job) refuseTenant(err error) {
	reason := reasonUnsupported
	if r, ok := failure.Reason(err); ok && r != "" {
		reason = r
	}
	j.deadLetter(reason, err)
}
