package embednats_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/crypto/bcrypt"

	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/dlq"
	"github.com/digitoll/digitoll-worker/embednats"
	"github.com/digitoll/digitoll-worker/failure"
	"github.com/digitoll/digitoll-worker/handlers"
	"github.com/digitoll/digitoll-worker/objectfiles"
	"github.com/digitoll/digitoll-worker/routing"
	"github.com/digitoll/digitoll-worker/worker"
)

// tenantsConf is the documented configuration the test proves.
const tenantsConf = "../deploy/nats-tenants.conf"

// waitLimit bounds every wait of these tests: a reply, a permissions
// violation, a message from the worker.
const waitLimit = 15 * time.Second

// The example tenants of tenantsConf.
var tenants = []string{"acme", "beta"}

// permServer is a nats-server started from tenantsConf.
type permServer struct {
	url       string
	passwords map[string]string // user → plain password
}

// startFromTenantsConf starts nats-server from tenantsConf on a random
// loopback port with a temporary store. Each user's password variable is
// set to a bcrypt hash, as the file advises; clients use the plain
// password.
func startFromTenantsConf(t *testing.T) *permServer {
	t.Helper()
	ps := &permServer{passwords: map[string]string{}}
	for _, user := range append([]string{"worker", "operator"}, tenants...) {
		password := "pw-" + user + "-" + t.Name()
		// MinCost: the server checks the hash on every connect, and
		// these tests connect often.
		hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		t.Setenv("DIGITOLL_NATS_PASSWORD_"+strings.ToUpper(user), string(hash))
		ps.passwords[user] = password
	}
	opts, err := server.ProcessConfigFile(tenantsConf)
	if err != nil {
		t.Fatalf("%s: %v", tenantsConf, err)
	}
	opts.Host = "127.0.0.1"
	opts.Port = embednats.RandomPort
	opts.StoreDir = t.TempDir()
	opts.NoSigs = true
	opts.NoLog = true
	ns, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	t.Cleanup(func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	if !ns.ReadyForConnections(waitLimit) {
		t.Fatalf("nats-server from %s not ready", tenantsConf)
	}
	ps.url = ns.ClientURL()
	return ps
}

// client is a connection of one user that records the asynchronous
// errors the server sends it, such as permissions violations.
type client struct {
	nc   *nats.Conn
	js   jetstream.JetStream
	errs chan error
}

// connect connects as user with inbox as its inbox prefix; "" keeps
// nats.go's default, _INBOX.
func (ps *permServer) connect(t *testing.T, user, inbox string) *client {
	t.Helper()
	c := &client{errs: make(chan error, 64)}
	opts := []nats.Option{
		nats.UserInfo(user, ps.passwords[user]),
		nats.Timeout(waitLimit),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			select {
			case c.errs <- err:
			default:
				// 64 unread errors: the test is long past failing.
			}
		}),
	}
	if inbox != "" {
		opts = append(opts, nats.CustomInboxPrefix(inbox))
	}
	nc, err := nats.Connect(ps.url, opts...)
	if err != nil {
		t.Fatalf("connect as %s: %v", user, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	c.nc, c.js = nc, js
	return c
}

// tenantInbox is the inbox prefix tenantsConf gives tenant.
func tenantInbox(tenant string) string { return "_INBOX_" + tenant }

// violation waits for the next asynchronous error of c, which must be a
// permissions violation for want, e.g. `Publish to "digitoll.result.>"`.
func (c *client) violation(ctx context.Context, t *testing.T, want string) {
	t.Helper()
	select {
	case err := <-c.errs:
		if !errors.Is(err, nats.ErrPermissionViolation) || !strings.Contains(err.Error(), "Permissions Violation for "+want) {
			t.Fatalf("got %v, want a permissions violation for %s", err, want)
		}
	case <-ctx.Done():
		t.Fatalf("no permissions violation for %s within %s", want, waitLimit)
	}
}

// refused runs op, whose request the server must refuse: it waits for
// the permissions violation for want, then cancels op (a refused request
// gets no reply, only a timeout) and checks that op failed.
func (c *client) refused(t *testing.T, want string, op func(ctx context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	opCtx, cancelOp := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- op(opCtx) }()
	c.violation(ctx, t, want)
	cancelOp()
	if err := <-done; err == nil {
		t.Fatalf("the refused operation succeeded")
	}
}

// testHandler accepts every submission but those whose id ends in
// "-refused", which it fails for good: the worker dead-letters them.
type testHandler struct {
	mu   sync.Mutex
	seen map[string]bool // tenant/id
}

func (h *testHandler) Handle(_ context.Context, req handlers.Request) (handlers.Outcome, error) {
	h.mu.Lock()
	h.seen[contract.MsgID(req.Tenant, req.Submission.ID)] = true
	h.mu.Unlock()
	if strings.HasSuffix(req.Submission.ID, "-refused") {
		return handlers.Outcome{}, failure.WithReason(errors.New("refused by the test handler"), failure.Permanent, "permanent-http")
	}
	return handlers.Outcome{Status: contract.StatusAccepted, MRN: "25NO4TU2HUD59UCBT8"}, nil
}

// Admit serves every tenant.
func (h *testHandler) Admit(string) error { return nil }

// ProbeTenant passes: the handler never pauses.
func (h *testHandler) ProbeTenant(context.Context, string) error { return nil }

func (h *testHandler) saw(msgID string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.seen[msgID]
}

// runWorker runs the real worker as the worker user until the test ends.
func runWorker(t *testing.T, js jetstream.JetStream, h worker.Handler) {
	t.Helper()
	w, err := worker.New(js, worker.Config{
		Handlers: map[contract.Kind]worker.Handler{contract.KindRoad: h},
		// As a provider runs it: a lane per tenant.
		Tenants:       exampleTenants{},
		Concurrency:   4,
		ShutdownGrace: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("worker: %v", err)
			}
		case <-time.After(waitLimit):
			t.Error("worker did not stop")
		}
	})
}

// submission is a valid road submission with id.
func submission(id string) []byte {
	return fmt.Appendf(nil, `{"id":%q,"operation":"create","level":"transport","declaration":{"ref":"x"}}`, id)
}

// TestTenantPermissions proves deploy/nats-tenants.conf against a real
// nats-server, the real worker and real clients: each tenant publishes
// only its own submissions and reads only its own results, routing
// signals and dead letters, through no JetStream API or core
// subscription that would show it another tenant's; the worker and the
// operator can do their jobs.
func TestTenantPermissions(t *testing.T) {
	ps := startFromTenantsConf(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// The worker creates the streams and buckets, as `digitoll run` does.
	wk := ps.connect(t, "worker", "")
	if err := worker.EnsureStreams(ctx, wk.js, worker.StreamOptions{}); err != nil {
		t.Fatalf("worker: EnsureStreams: %v", err)
	}
	if _, err := routing.EnsureBucket(ctx, wk.js, 1); err != nil {
		t.Fatalf("worker: routing bucket: %v", err)
	}
	// The operator makes each tenant's consumers (digitoll tenants
	// provision).
	op := ps.connect(t, "operator", "")
	for _, tenant := range tenants {
		if _, err := worker.EnsureTenantReaders(ctx, op.js, tenant); err != nil {
			t.Fatalf("operator: %v", err)
		}
	}
	h := &testHandler{seen: map[string]bool{}}
	runWorker(t, wk.js, h)

	conns := map[string]*client{}
	for _, tenant := range tenants {
		conns[tenant] = ps.connect(t, tenant, tenantInbox(tenant))
		// What the routing poller publishes, as the worker user.
		if _, err := wk.js.PublishMsg(ctx, &nats.Msg{Subject: contract.RoutingSubject(contract.FeedTransport, tenant), Data: []byte(`{"for":"` + tenant + `"}`)},
			jetstream.WithMsgID(tenant+"/routing-1")); err != nil {
			t.Fatalf("worker: publish routing signal: %v", err)
		}
	}

	t.Run("each tenant publishes its submissions with PubAck and dedupe", func(t *testing.T) {
		for _, tenant := range tenants {
			for _, id := range []string{tenant + "-1", tenant + "-2-refused"} {
				msg := &nats.Msg{Subject: contract.SubmitSubject(contract.KindRoad, tenant), Data: submission(id)}
				for i, wantDup := range []bool{false, true} {
					pctx, cancel := context.WithTimeout(ctx, waitLimit)
					ack, err := conns[tenant].js.PublishMsg(pctx, msg, jetstream.WithMsgID(contract.MsgID(tenant, id)))
					cancel()
					if err != nil {
						t.Fatalf("%s: publish %s (#%d): %v", tenant, id, i+1, err)
					}
					if ack.Stream != contract.StreamSubmit || ack.Duplicate != wantDup {
						t.Fatalf("%s: publish %s (#%d): PubAck %+v, want stream %s, duplicate %v", tenant, id, i+1, ack, contract.StreamSubmit, wantDup)
					}
				}
			}
		}
	})

	t.Run("each tenant reads its own results, routing signals and dead letters", func(t *testing.T) {
		for _, tenant := range tenants {
			want := map[string][]string{
				"results-" + tenant: {tenant + "-1 accepted", tenant + "-2-refused dead-lettered"},
				"routing-" + tenant: {contract.RoutingSubject(contract.FeedTransport, tenant)},
				"dlq-" + tenant:     {tenant + "-2-refused permanent-http"},
			}
			for _, r := range worker.TenantReaders(tenant) {
				name := r.Name
				got := readConsumer(ctx, t, conns[tenant].js, r.Stream, name, tenant, len(want[name]))
				if !slices.Equal(got, want[name]) {
					t.Errorf("%s read %q from %s, want %q", tenant, got, name, want[name])
				}
			}
			// The worker consumed the tenant's submission.
			if !h.saw(contract.MsgID(tenant, tenant+"-1")) {
				t.Errorf("the worker's handler never saw %s's submission", tenant)
			}
		}
	})

	t.Run("the worker reads a document file the operator stored", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(ctx, waitLimit)
		defer cancel()
		store, err := op.js.ObjectStore(ctx, contract.BucketDocuments)
		if err != nil {
			t.Fatalf("operator: documents bucket: %v", err)
		}
		file := bytes.Repeat([]byte("%PDF-1.7 acme "), 30_000) // several chunks
		if _, err := store.PutBytes(ctx, "acme-invoice.pdf", file); err != nil {
			t.Fatalf("operator: put file: %v", err)
		}
		r, size, err := objectfiles.New(wk.js).Open(ctx, "acme-invoice.pdf")
		if err != nil {
			t.Fatalf("worker: open file: %v", err)
		}
		got, err := io.ReadAll(r)
		if cerr := r.Close(); err == nil {
			err = cerr
		}
		if err != nil || size != int64(len(file)) || !bytes.Equal(got, file) {
			t.Fatalf("worker read %d of %d bytes (size %d): %v", len(got), len(file), size, err)
		}
	})

	t.Run("a tenant cannot reach another tenant's messages", func(t *testing.T) {
		for i, tenant := range tenants {
			other := tenants[1-i]
			for _, tc := range refusedRequests(tenant, other) {
				t.Run(tenant+": "+tc.name, func(t *testing.T) {
					inbox := tenantInbox(tenant)
					if tc.defaultInbox {
						inbox = ""
					}
					c := ps.connect(t, tenant, inbox)
					c.refused(t, tc.want, func(ctx context.Context) error { return tc.op(ctx, c) })
				})
			}
			for _, tc := range refusedSubscriptions(tenant, other, wk, conns[other]) {
				t.Run(tenant+": subscribe to "+tc.subject, func(t *testing.T) {
					c := ps.connect(t, tenant, tenantInbox(tenant))
					sub, err := c.nc.SubscribeSync(tc.subject)
					if err != nil {
						t.Fatal(err)
					}
					ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
					defer cancel()
					c.violation(ctx, t, `Subscription to "`+tc.subject+`"`)
					// Had the server registered the subscription, the
					// probe's message would reach the tenant before the
					// PONG of a flush the tenant sends after the probe.
					if err := tc.probe(ctx); err != nil {
						t.Fatalf("probe: %v", err)
					}
					if err := c.nc.FlushWithContext(ctx); err != nil {
						t.Fatal(err)
					}
					if n, _, err := sub.Pending(); err != nil || n != 0 {
						t.Fatalf("the refused subscription holds %d messages (%v)", n, err)
					}
				})
			}
		}
	})

	t.Run("the operator works on every tenant's dead letters but writes no results", func(t *testing.T) {
		refused := map[string]dlq.Entry{} // tenant → its refused submission's entry
		count := map[string]int{}
		if err := dlq.List(ctx, op.js, dlq.Filter{}, func(e dlq.Entry) bool {
			count[e.Tenant]++
			if e.ID == e.Tenant+"-2-refused" {
				refused[e.Tenant] = e
			}
			return true
		}); err != nil {
			t.Fatalf("dlq list: %v", err)
		}
		for _, tenant := range tenants {
			if _, ok := refused[tenant]; !ok {
				t.Fatalf("dlq list: no entry for %s-2-refused in %v", tenant, refused)
			}
		}
		e, err := dlq.Get(ctx, op.js, refused["acme"].Seq)
		if err != nil || e.ID != "acme-2-refused" || e.Reason != "permanent-http" {
			t.Fatalf("dlq show: %+v, %v", e, err)
		}
		if r, err := dlq.Replay(ctx, op.js, e.Seq); err != nil || r.Subject != contract.SubmitSubject(contract.KindRoad, "acme") {
			t.Fatalf("dlq replay: %+v, %v", r, err)
		}
		if n, err := dlq.Purge(ctx, op.js, dlq.Filter{Tenant: "beta"}); err != nil || n != count["beta"] {
			t.Fatalf("dlq purge: %d of %d, %v", n, count["beta"], err)
		}
		op.refused(t, `Publish to "digitoll.result.road.acme"`, func(ctx context.Context) error {
			_, err := op.js.PublishMsg(ctx, &nats.Msg{Subject: contract.ResultSubject(contract.KindRoad, "acme"), Data: []byte("{}")})
			return err
		})
	})
}

// readConsumer pulls want messages from a tenant's consumer, acks each
// and waits for the server to confirm the ack, and describes them ("id
// status" for results, "id reason" for dead letters, the subject for
// routing signals), sorted: the worker works on several messages at once.
// Every message must be the tenant's, and none may be left.
func readConsumer(ctx context.Context, t *testing.T, js jetstream.JetStream, stream, name, tenant string, want int) []string {
	t.Helper()
	cons, err := js.Consumer(ctx, stream, name)
	if err != nil {
		t.Fatalf("%s: consumer %s: %v", tenant, name, err)
	}
	readCtx, cancel := context.WithTimeout(ctx, waitLimit)
	defer cancel()
	var got []string
	for len(got) < want && readCtx.Err() == nil {
		// A long poll, not a sleep: it returns as soon as a message
		// arrives (the worker may still be working on it).
		batch, err := cons.Fetch(want-len(got), jetstream.FetchMaxWait(time.Second))
		if err != nil {
			t.Fatalf("%s: fetch from %s: %v", tenant, name, err)
		}
		for m := range batch.Messages() {
			if !strings.HasSuffix(m.Subject(), "."+tenant) {
				t.Fatalf("%s read %s from %s", tenant, m.Subject(), name)
			}
			got = append(got, describe(t, stream, m))
			if err := m.DoubleAck(readCtx); err != nil {
				t.Fatalf("%s: ack on %s: %v", tenant, name, err)
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			t.Fatalf("%s: fetch from %s: %v", tenant, name, err)
		}
	}
	if len(got) < want {
		t.Fatalf("%s read only %q from %s within %s, want %d messages", tenant, got, name, waitLimit, want)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatalf("%s: consumer info of %s: %v", tenant, name, err)
	}
	if info.NumPending != 0 || info.NumAckPending != 0 {
		t.Errorf("%s: %s has %d messages pending and %d unacknowledged after reading %d", tenant, name, info.NumPending, info.NumAckPending, len(got))
	}
	slices.Sort(got)
	return got
}

func describe(t *testing.T, stream string, m jetstream.Msg) string {
	t.Helper()
	switch stream {
	case contract.StreamResults:
		var r contract.Result
		if err := json.Unmarshal(m.Data(), &r); err != nil {
			t.Fatalf("result %s: %v", m.Data(), err)
		}
		return r.ID + " " + string(r.Status)
	case contract.StreamDLQ:
		var s struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(m.Data(), &s); err != nil {
			t.Fatalf("dead letter %s: %v", m.Data(), err)
		}
		return s.ID + " " + m.Headers().Get(contract.HeaderDLQReason)
	default:
		return m.Subject()
	}
}

// refusedRequest is something a tenant must not be able to do.
type refusedRequest struct {
	name string
	// want is the refused verb and subject, as the server words it.
	want string
	op   func(ctx context.Context, c *client) error
	// defaultInbox connects without the tenant's inbox prefix.
	defaultInbox bool
}

// refusedRequests are the JetStream API calls and publishes through which
// tenant could write for or read from other, or read unfiltered streams.
func refusedRequests(tenant, other string) []refusedRequest {
	request := func(subject, body string) func(ctx context.Context, c *client) error {
		return func(ctx context.Context, c *client) error {
			_, err := c.nc.RequestWithContext(ctx, subject, []byte(body))
			return err
		}
	}
	consumer := func(stream, name string) func(ctx context.Context, c *client) error {
		return func(ctx context.Context, c *client) error {
			_, err := c.js.Consumer(ctx, stream, name)
			return err
		}
	}
	create := func(stream string, cfg jetstream.ConsumerConfig) func(ctx context.Context, c *client) error {
		return func(ctx context.Context, c *client) error {
			_, err := c.js.CreateOrUpdateConsumer(ctx, stream, cfg)
			return err
		}
	}
	publish := func(subject string) func(ctx context.Context, c *client) error {
		return func(ctx context.Context, c *client) error {
			_, err := c.js.PublishMsg(ctx, &nats.Msg{Subject: subject, Data: submission(tenant + "-x")}, jetstream.WithMsgID(tenant+"/x"))
			return err
		}
	}
	api := "$JS.API."
	otherResult := contract.ResultSubject(contract.KindRoad, other)
	return []refusedRequest{
		{"publish the other tenant's submission", `Publish to "` + contract.SubmitSubject(contract.KindRoad, other) + `"`,
			publish(contract.SubmitSubject(contract.KindRoad, other)), false},
		{"publish a result", `Publish to "` + contract.ResultSubject(contract.KindRoad, tenant) + `"`,
			publish(contract.ResultSubject(contract.KindRoad, tenant)), false},
		// tenantsConf requires nats.CustomInboxPrefix: with the default
		// one, nats.go's reply subscription is refused.
		{"use its own consumer without its inbox prefix", `Subscription to "_INBOX.`,
			consumer(contract.StreamResults, "results-"+tenant), true},

		{"use the other tenant's results consumer", `Publish to "` + api + "CONSUMER.INFO." + contract.StreamResults + ".results-" + other + `"`,
			consumer(contract.StreamResults, "results-"+other), false},
		{"pull from the other tenant's results consumer", `Publish to "` + api + "CONSUMER.MSG.NEXT." + contract.StreamResults + ".results-" + other + `"`,
			request(api+"CONSUMER.MSG.NEXT."+contract.StreamResults+".results-"+other, `{"batch":1,"expires":1000000000}`), false},
		{"create an unfiltered consumer", `Publish to "` + api + "CONSUMER.CREATE." + contract.StreamResults + `.peek"`,
			create(contract.StreamResults, jetstream.ConsumerConfig{Durable: "peek", AckPolicy: jetstream.AckExplicitPolicy}), false},
		{"create a consumer filtered on the other tenant", `Publish to "` + api + "CONSUMER.CREATE." + contract.StreamResults + ".peek.digitoll.result.*." + other + `"`,
			create(contract.StreamResults, jetstream.ConsumerConfig{Durable: "peek", FilterSubject: "digitoll.result.*." + other}), false},
		{"create a consumer filtered on its own results", `Publish to "` + api + "CONSUMER.CREATE." + contract.StreamResults + ".mine.digitoll.result.*." + tenant + `"`,
			create(contract.StreamResults, jetstream.ConsumerConfig{Durable: "mine", FilterSubject: "digitoll.result.*." + tenant}), false},
		{"create a durable the legacy way", `Publish to "` + api + "CONSUMER.DURABLE.CREATE." + contract.StreamResults + `.peek"`,
			request(api+"CONSUMER.DURABLE.CREATE."+contract.StreamResults+".peek", `{"stream_name":"`+contract.StreamResults+`","config":{"durable_name":"peek","ack_policy":"explicit"}}`), false},
		{"update its own consumer's filter", `Publish to "` + api + "CONSUMER.CREATE." + contract.StreamResults + ".results-" + tenant + ".digitoll.result.>" + `"`,
			create(contract.StreamResults, jetstream.ConsumerConfig{Durable: "results-" + tenant, FilterSubject: "digitoll.result.>"}), false},
		{"read the results stream's info and subjects", `Publish to "` + api + "STREAM.INFO." + contract.StreamResults + `"`,
			func(ctx context.Context, c *client) error {
				_, err := c.js.Stream(ctx, contract.StreamResults)
				return err
			}, false},
		{"get the other tenant's last result", `Publish to "` + api + "STREAM.MSG.GET." + contract.StreamResults + `"`,
			request(api+"STREAM.MSG.GET."+contract.StreamResults, `{"last_by_subj":"`+otherResult+`"}`), false},
		{"direct get the other tenant's last result", `Publish to "` + api + "DIRECT.GET." + contract.StreamResults + "." + otherResult + `"`,
			request(api+"DIRECT.GET."+contract.StreamResults+"."+otherResult, ""), false},
		{"direct get a result by sequence", `Publish to "` + api + "DIRECT.GET." + contract.StreamResults + `"`,
			request(api+"DIRECT.GET."+contract.StreamResults, `{"seq":1}`), false},

		{"use the other tenant's DLQ consumer", `Publish to "` + api + "CONSUMER.INFO." + contract.StreamDLQ + ".dlq-" + other + `"`,
			consumer(contract.StreamDLQ, "dlq-"+other), false},
		{"get a dead letter by sequence", `Publish to "` + api + "STREAM.MSG.GET." + contract.StreamDLQ + `"`,
			request(api+"STREAM.MSG.GET."+contract.StreamDLQ, `{"seq":1}`), false},
		{"create a consumer on the DLQ", `Publish to "` + api + "CONSUMER.CREATE." + contract.StreamDLQ + ".peek.digitoll.dlq.*." + other + `"`,
			create(contract.StreamDLQ, jetstream.ConsumerConfig{Durable: "peek", FilterSubject: "digitoll.dlq.*." + other}), false},

		{"use the other tenant's routing consumer", `Publish to "` + api + "CONSUMER.INFO." + contract.StreamRouting + ".routing-" + other + `"`,
			consumer(contract.StreamRouting, "routing-"+other), false},
		{"pull from the other tenant's routing consumer", `Publish to "` + api + "CONSUMER.MSG.NEXT." + contract.StreamRouting + ".routing-" + other + `"`,
			request(api+"CONSUMER.MSG.NEXT."+contract.StreamRouting+".routing-"+other, `{"batch":1,"expires":1000000000}`), false},
		{"direct get the other tenant's routing signal", `Publish to "` + api + "DIRECT.GET." + contract.StreamRouting + `"`,
			request(api+"DIRECT.GET."+contract.StreamRouting, `{"last_by_subj":"`+contract.RoutingSubject(contract.FeedTransport, other)+`"}`), false},

		{"open the worker's state bucket", `Publish to "` + api + "STREAM.INFO.KV_" + worker.StateBucket + `"`,
			func(ctx context.Context, c *client) error {
				_, err := c.js.KeyValue(ctx, worker.StateBucket)
				return err
			}, false},
		{"open the documents bucket", `Publish to "` + api + "STREAM.INFO.OBJ_" + contract.BucketDocuments + `"`,
			func(ctx context.Context, c *client) error {
				_, err := c.js.ObjectStore(ctx, contract.BucketDocuments)
				return err
			}, false},
	}
}

// refusedSubscription is a core subscription a tenant must not get, and
// a probe that makes the server send a message the subscription would
// receive, returning once the server has sent it.
type refusedSubscription struct {
	subject string
	probe   func(ctx context.Context) error
}

// refusedSubscriptions are the core subscriptions through which tenant
// could see other's messages, or anyone's. The probes are made by the
// worker and by the other tenant, through what they are allowed.
func refusedSubscriptions(tenant, other string, wk, otherConn *client) []refusedSubscription {
	// The server routes a core message to every subscriber while it
	// processes the publish, so a flush of the publisher's connection
	// returns only once it has been sent.
	publish := func(subject string) func(ctx context.Context) error {
		return func(ctx context.Context) error {
			if err := wk.nc.Publish(subject, []byte("probe")); err != nil {
				return err
			}
			return wk.nc.FlushWithContext(ctx)
		}
	}
	return []refusedSubscription{
		{"digitoll.result.*." + other, publish(contract.ResultSubject(contract.KindRoad, other))},
		{"digitoll.dlq.*." + other, publish(contract.DLQSubject(contract.KindRoad, other))},
		{"digitoll.routing.>", publish(contract.RoutingSubject(contract.FeedTransport, other))},
		{">", publish(contract.RoutingSubject(contract.FeedTransport, other))},
		// Its own results too: a core subscription is no way to read
		// them (it misses what arrives while it is offline).
		{"digitoll.result.*." + tenant, publish(contract.ResultSubject(contract.KindRoad, tenant))},
		// Other tenants' submissions.
		{"digitoll.submit.*." + other, func(ctx context.Context) error {
			_, err := otherConn.js.PublishMsg(ctx, &nats.Msg{Subject: contract.SubmitSubject(contract.KindRoad, other), Data: submission(other + "-probe")},
				jetstream.WithMsgID(contract.MsgID(other, other+"-probe")))
			return err
		}},
		// Where JetStream answers the worker, and the other tenant.
		{"_INBOX.>", func(ctx context.Context) error { _, err := wk.js.AccountInfo(ctx); return err }},
		{tenantInbox(other) + ".>", func(ctx context.Context) error {
			_, err := otherConn.js.Consumer(ctx, contract.StreamResults, "results-"+other)
			return err
		}},
		// Acks carry no message, but their subjects name every delivery.
		{"$JS.ACK.>", publish("$JS.ACK." + contract.StreamSubmit + ".probe")},
	}
}

// exampleTenants are the tenants of deploy/nats-tenants.conf, for the
// worker's lanes.
type exampleTenants struct{}

func (exampleTenants) Tenants() []worker.Tenant {
	return []worker.Tenant{
		{Name: "acme", Kinds: []contract.Kind{contract.KindRoad}},
		{Name: "beta", Kinds: []contract.Kind{contract.KindRoad}},
	}
}
