package app

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/worker"
)

// publishMany publishes tenant's house consignments first…first+count-1
// with asynchronous publishes, waiting for every PubAck, and returns their
// result keys (tenant/id).
func (f *tenantsFixture) publishMany(t *testing.T, tenant string, first, count int) []string {
	t.Helper()
	_, body := house(t, tenant, 0)
	var tmpl map[string]any
	if err := json.Unmarshal(body, &tmpl); err != nil {
		t.Fatal(err)
	}
	chl := tmpl["declaration"].(map[string]any)["consignmentHouseLevel"].(map[string]any)
	doc := chl["transportDocumentHouseLevel"].(map[string]any)
	keys := make([]string, 0, count)
	for n := first; n < first+count; n++ {
		id := fmt.Sprintf("house-%s-%d", tenant, n)
		tmpl["id"] = id
		doc["documentNumber"] = fmt.Sprintf("HWB-%s-%d", tenant, n)
		data, err := json.Marshal(tmpl)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.js.PublishMsgAsync(&nats.Msg{Subject: contract.SubmitSubject(contract.KindRoad, tenant), Data: data},
			jetstream.WithMsgID(contract.MsgID(tenant, id))); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, tenant+"/"+id)
	}
	select {
	case <-f.js.PublishAsyncComplete():
	case <-time.After(60 * time.Second):
		t.Fatalf("%d publishes of %s not acknowledged", f.js.PublishAsyncPending(), tenant)
	}
	return keys
}

// count is how many results of tenant have arrived.
func (c *collector) count(tenant string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, r := range c.got {
		if r.Tenant == tenant {
			n++
		}
	}
	return n
}

// One tenant's flood does not starve the others: with ten thousand of one
// tenant's messages ahead of them in the stream, nine tenants' hundred
// messages each are all answered before the flood is half done, and the
// flood still moves meanwhile.
func TestTenantFloodDoesNotStarveOthers(t *testing.T) {
	const (
		flood = 10_000
		each  = 100
		small = 9
	)
	f := newTenantsFixture(t)
	f.addTenant(t, 0, "big", "road", roadScope)
	var names []string
	for i := range small {
		name := fmt.Sprintf("small-%d", i)
		names = append(names, name)
		f.addTenant(t, i+1, name, "road", roadScope)
	}
	f.write(t)
	// The flood is in the stream before the worker starts, ahead of
	// every other tenant's messages: the worst order for them.
	if err := worker.EnsureStreams(t.Context(), f.js, worker.StreamOptions{Replicas: 1}); err != nil {
		t.Fatal(err)
	}
	f.publishMany(t, "big", 0, flood)
	var keys []string
	for _, name := range names {
		keys = append(keys, f.publishMany(t, name, 0, each)...)
	}
	results := f.collect(t)
	f.start(t, "DIGITOLL_TOLL_RATE", "0")

	got := results.wait(t, keys...)
	done := results.count("big")
	for k, r := range got {
		if r.Status != contract.StatusAccepted {
			t.Errorf("%s: %s (%s %v)", k, r.Status, r.Note, r.Errors)
		}
	}
	if done >= flood/2 {
		t.Errorf("the flood had %d of %d results when the other tenants' %d messages were all answered, want fewer than half",
			done, flood, len(keys))
	}
	if done == 0 {
		t.Error("the flooding tenant got no result meanwhile: it was starved in turn")
	}
	t.Logf("flood results when the %d others were done: %d of %d", len(keys), done, flood)
}

// A tenant whose integration lacks a scope waits alone: its messages are
// kept (nothing dead-lettered) while its lane is paused, every other
// tenant's are answered, and granting the scope lets its messages drain.
func TestTenantWithUngrantedScopeWaitsAlone(t *testing.T) {
	f := newTenantsFixture(t)
	var names []string
	for i := range 4 {
		name := fmt.Sprintf("fine-%d", i)
		names = append(names, name)
		f.addTenant(t, i, name, "road", roadScope)
	}
	f.addTenant(t, 4, "stuck", "road") // its integration has no scope
	f.write(t)
	svc := f.start(t, "DIGITOLL_PROBE_INTERVAL", "200ms")
	results := f.collect(t)

	const each = 5
	var fine, stuck []string
	for _, name := range names {
		for n := range each {
			fine = append(fine, name+"/"+f.publish(t, contract.KindRoad, name, n))
		}
	}
	for n := range each {
		stuck = append(stuck, "stuck/"+f.publish(t, contract.KindRoad, "stuck", n))
	}
	for k, r := range results.wait(t, fine...) {
		if r.Status != contract.StatusAccepted {
			t.Errorf("%s: %s (%s %v)", k, r.Status, r.Note, r.Errors)
		}
	}

	// Only the stuck tenant's lane is paused, on the server too.
	paused := func() []worker.KindStatus {
		var out []worker.KindStatus
		for _, s := range svc.Worker.Status() {
			if s.Paused {
				out = append(out, s)
			}
		}
		return out
	}
	waitFor(t, 30*time.Second, "the stuck tenant's lane to pause", func() bool { return len(paused()) > 0 })
	if p := paused(); len(p) != 1 || p[0].Tenant != "stuck" || p[0].Kind != contract.KindRoad || p[0].Reason != "configuration" {
		t.Fatalf("paused lanes %+v, want only stuck's road for its configuration", p)
	}
	if err := svc.Worker.KindHealth(contract.KindRoad); err != nil {
		t.Errorf("one tenant's pause made the kind unhealthy: %v", err)
	}
	cons, err := f.js.Consumer(t.Context(), contract.StreamSubmit, worker.LaneConsumerName(contract.KindRoad, "stuck"))
	if err != nil {
		t.Fatal(err)
	}
	if info, err := cons.Info(t.Context()); err != nil || !info.Paused {
		t.Errorf("stuck's consumer on the server: paused %v (%v), want paused", info != nil && info.Paused, err)
	}
	if n := results.count("stuck"); n != 0 {
		t.Errorf("the stuck tenant has %d results before its scope was granted", n)
	}

	f.sim.GrantScope(clientID("stuck"), roadScope)
	for k, r := range results.wait(t, stuck...) {
		if r.Status != contract.StatusAccepted {
			t.Errorf("%s after the grant: %s (%s %v)", k, r.Status, r.Note, r.Errors)
		}
	}
	dlq, err := f.js.Stream(t.Context(), contract.StreamDLQ)
	if err != nil {
		t.Fatal(err)
	}
	info, err := dlq.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 0 {
		t.Errorf("%d dead letters, want none", info.State.Msgs)
	}
	waitFor(t, 30*time.Second, "the stuck tenant's lane to resume", func() bool { return len(paused()) == 0 })
}

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s", d, what)
		}
		<-tick.C
	}
}
