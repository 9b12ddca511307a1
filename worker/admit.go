package worker

import (
	"github.com/digitoll/digitoll-worker/failure"
)

// reasonUnsupported is the dead-letter reason of a message whose tenant the
// handler refuses.
const reasonUnsupported = "unsupported"

// TenantAdmitter is implemented by handlers that serve only some tenants
// (those of a tenants file, or the one tenant a worker without one is
// configured for). The worker asks before it waits for what a message's
// after names or calls the handler, and dead-letters a message whose
// tenant is refused, with the error's reason ("unsupported" unless it
// carries another): a message that can only be refused must not wait a
// day for its after first. A result already recorded for the message is
// still published again; Admit is not asked then.
type TenantAdmitter interface {
	Admit(tenant string) error
}

// admit reports the handler's refusal of the message's tenant, or nil.
func (j *job) admit() error {
	a, ok := j.w.cfg.Handlers[j.d.kind].(TenantAdmitter)
	if !ok {
		return nil
	}
	return a.Admit(j.d.tenant)
}

// refuseTenant dead-letters a message whose tenant was refused by err.
func (j *job) refuseTenant(err error) {
	reason := reasonUnsupported
	if r, ok := failure.Reason(err); ok && r != "" {
		reason = r
	}
	j.deadLetter(reason, err)
}
