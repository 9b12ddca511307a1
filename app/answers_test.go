package app

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/digitoll/digitoll-worker/config"
	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/simulator"
	"github.com/digitoll/digitoll-worker/worker"
)

// startDefault runs the services of the one tenant "default" until the
// test ends: from the environment, or with fromFile from a tenants file
// listing it alone.
func (f *tenantsFixture) startDefault(t *testing.T, fromFile bool) {
	t.Helper()
	vars := f.vars("8")
	if fromFile {
		f.addTenant(t, 0, contract.DefaultTenant, "road", roadScope)
		f.write(t)
		vars["DIGITOLL_TENANTS_FILE"] = f.file
	} else {
		key, err := simulator.WriteDemoKey(filepath.Join(f.dir, "keys"), clientID(contract.DefaultTenant))
		if err != nil {
			t.Fatal(err)
		}
		f.sim.AddClient(key.Client(roadScope))
		vars["DIGITOLL_CLIENT_ID"] = clientID(contract.DefaultTenant)
		vars["DIGITOLL_KEY_FILE"] = key.KeyFile
		vars["DIGITOLL_KEY_ID"] = key.KeyID
		vars["DIGITOLL_KINDS"] = "road"
	}
	svc := f.services(t, vars)
	// Either way, the same table of one tenant.
	if tab := svc.tenants.table.Load(); len(tab.names) != 1 || tab.names[0] != contract.DefaultTenant {
		t.Fatalf("tenants %v, want %s alone", tab.names, contract.DefaultTenant)
	}
	f.run(t, svc)
}

// send publishes body to subject with its own Nats-Msg-Id.
func (f *tenantsFixture) send(t *testing.T, subject, msgID string, body []byte) {
	t.Helper()
	if _, err := f.js.PublishMsg(t.Context(), &nats.Msg{Subject: subject, Data: body}, jetstream.WithMsgID(msgID)); err != nil {
		t.Fatal(err)
	}
}

// deadLetters reads the reason and error of every dead letter so far, by
// the id of its body (or its original subject when the body has none).
func (f *tenantsFixture) deadLetters(t *testing.T) map[string][2]string {
	t.Helper()
	out := map[string][2]string{}
	s, err := f.js.Stream(t.Context(), contract.StreamDLQ)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for seq := info.State.FirstSeq; seq > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(t.Context(), seq)
		if err != nil {
			continue
		}
		var v struct {
			ID string `json:"id"`
		}
		key := m.Header.Get(contract.HeaderOriginalSubject)
		if json.Unmarshal(m.Data, &v) == nil && v.ID != "" && !strings.Contains(key, "ship") && !strings.HasSuffix(key, ".extra") {
			key = v.ID
		}
		out[key] = [2]string{m.Header.Get(contract.HeaderDLQReason), m.Header.Get(contract.HeaderDLQError)}
	}
	return out
}

// One tenant served from the environment or from a tenants file answers
// the same way: its own messages with its integration; another tenant's
// dead-lettered "unsupported" (never declared with this tenant's
// credentials), even one waiting for an after; stray subjects
// dead-lettered "malformed"; a submission after a dead-lettered one
// rejected at once; an id reused for another body dead-lettered without a
// second result.
func TestOneTenantAnswersEveryMessage(t *testing.T) {
	for _, mode := range []struct {
		name     string
		fromFile bool
	}{{"environment", false}, {"tenants file", true}} {
		t.Run(mode.name, func(t *testing.T) {
			f := newTenantsFixture(t)
			f.startDefault(t, mode.fromFile)
			results := f.collect(t)

			own := "default/" + f.publish(t, contract.KindRoad, contract.DefaultTenant, 0)
			other := "acme/" + f.publish(t, contract.KindRoad, "acme", 0)
			f.send(t, contract.SubmitSubject(contract.KindRoad, "acme"), "acme/waits",
				[]byte(`{"id":"waits","operation":"update","level":"house-consignment","after":"never-sent","declaration":{"n":1}}`))
			f.send(t, "digitoll.submit.ship.default", "stray-1", []byte(`{"id":"s1"}`))
			f.send(t, "digitoll.submit.road.default.extra", "stray-2", []byte(`{"id":"s2"}`))
			f.send(t, contract.SubmitSubject(contract.KindRoad, contract.DefaultTenant), "default/unreadable",
				[]byte(`{"id":"unreadable","operation":"create","declaration":{"n":1}}`))
			got := results.wait(t, own, other, "acme/waits", "default/unreadable")
			if r := got[own]; r.Status != contract.StatusAccepted {
				t.Errorf("%s: %s %s %v", own, r.Status, r.Note, r.Errors)
			}
			for _, k := range []string{other, "acme/waits"} {
				if r := got[k]; r.Status != contract.StatusDeadLettered || !strings.HasPrefix(r.Note, "unsupported") {
					t.Errorf("%s: %s %q, want dead-lettered unsupported", k, r.Status, r.Note)
				}
			}
			if n := f.sim.Stats().Submissions("HWB-acme-0"); n != 0 {
				t.Errorf("acme's declaration reached Toll %d times, with another tenant's integration", n)
			}

			f.send(t, contract.SubmitSubject(contract.KindRoad, contract.DefaultTenant), "default/after-unreadable",
				[]byte(`{"id":"after-unreadable","operation":"update","level":"house-consignment","after":"unreadable","declaration":{"n":1}}`))
			// The accepted id again, with another body.
			id, body := house(t, contract.DefaultTenant, 1)
			body = []byte(strings.Replace(string(body), id, strings.TrimPrefix(own, "default/"), 1))
			f.send(t, contract.SubmitSubject(contract.KindRoad, contract.DefaultTenant), "reused", body)
			r := results.wait(t, "default/after-unreadable")["default/after-unreadable"]
			if r.Status != contract.StatusRejected || len(r.Errors) != 1 || r.Errors[0].Path != "after" || !strings.Contains(r.Errors[0].Message, "dead-lettered") {
				t.Errorf("after a dead-lettered submission: %+v, want rejected on after", r)
			}

			var dead map[string][2]string
			deadline := time.Now().Add(30 * time.Second)
			for {
				dead = f.deadLetters(t)
				if len(dead) == 6 || time.Now().After(deadline) {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			want := map[string]string{
				strings.TrimPrefix(other, "acme/"):   "unsupported",
				"waits":                              "unsupported",
				"digitoll.submit.ship.default":       "malformed",
				"digitoll.submit.road.default.extra": "malformed",
				"unreadable":                         "malformed",
				strings.TrimPrefix(own, "default/"):  "malformed",
			}
			for k, reason := range want {
				if dead[k][0] != reason {
					t.Errorf("dead letter of %s: %q, want %s (all: %v)", k, dead[k][0], reason, dead)
				}
			}
			if msg := dead[strings.TrimPrefix(own, "default/")][1]; !strings.Contains(msg, "already used") {
				t.Errorf("dead letter of the reused id says %q", msg)
			}
			if n := countSubject(t, f.js, contract.StreamResults, contract.ResultSubject(contract.KindRoad, contract.DefaultTenant)); n != 3 {
				t.Errorf("%d results for default, want 3: the reused id gets none", n)
			}
		})
	}
}

// countSubject is how many messages stream holds on subject.
func countSubject(t *testing.T, js jetstream.JetStream, stream, subject string) int {
	t.Helper()
	s, err := js.Stream(t.Context(), stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(t.Context(), jetstream.WithSubjectFilter(subject))
	if err != nil {
		t.Fatal(err)
	}
	return int(info.State.Subjects[subject])
}

// Upgrading a worker of the environment's tenant from a version with one
// consumer per kind: the old digitoll-road consumer holds messages, some
// delivered to an old process that never acknowledged them. The services
// start, delete it, and their lane answers each message once, declared to
// Toll once; another tenant's message is dead-lettered "unsupported" as
// before.
func TestEnvironmentTenantTakesOverTheKindConsumer(t *testing.T) {
	f := newTenantsFixture(t)
	if err := EnsureStreams(t.Context(), f.js, config.NATS{}); err != nil {
		t.Fatal(err)
	}
	old, err := f.js.CreateOrUpdateConsumer(t.Context(), contract.StreamSubmit, jetstream.ConsumerConfig{
		Durable:       worker.ConsumerName(contract.KindRoad),
		FilterSubject: contract.SubmitFilter(contract.KindRoad),
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       10 * time.Minute,
		MaxDeliver:    -1,
	})
	if err != nil {
		t.Fatal(err)
	}
	const n = 6
	var keys []string
	for i := range n {
		keys = append(keys, contract.DefaultTenant+"/"+f.publish(t, contract.KindRoad, contract.DefaultTenant, i))
	}
	other := "acme/" + f.publish(t, contract.KindRoad, "acme", 0)
	batch, err := old.FetchNoWait(3)
	if err != nil {
		t.Fatal(err)
	}
	taken := 0
	for range batch.Messages() {
		taken++
	}
	if taken != 3 {
		t.Fatalf("the old consumer delivered %d messages, want 3 left unacknowledged", taken)
	}

	results := f.collect(t)
	f.startDefault(t, false)
	got := results.wait(t, append(keys, other)...)
	for _, k := range keys {
		if r := got[k]; r.Status != contract.StatusAccepted {
			t.Errorf("%s: %s %s %v", k, r.Status, r.Note, r.Errors)
		}
	}
	if r := got[other]; r.Status != contract.StatusDeadLettered || !strings.HasPrefix(r.Note, "unsupported") {
		t.Errorf("%s: %s %q, want dead-lettered unsupported", other, r.Status, r.Note)
	}
	if c := countSubject(t, f.js, contract.StreamResults, contract.ResultSubject(contract.KindRoad, contract.DefaultTenant)); c != n {
		t.Errorf("%d results for default, want %d: one per message", c, n)
	}
	for i := range n {
		if c := f.sim.Stats().Submissions(fmt.Sprintf("HWB-%s-%d", contract.DefaultTenant, i)); c != 1 {
			t.Errorf("house %d declared to Toll %d times, want once", i, c)
		}
	}
	if _, err := f.js.Consumer(t.Context(), contract.StreamSubmit, worker.ConsumerName(contract.KindRoad)); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Errorf("the old consumer: %v, want it deleted", err)
	}
}
