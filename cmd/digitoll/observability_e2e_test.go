package main

import (
	"bufio"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/digitoll/digitoll-worker/config"
	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/internal/promtest"
	"github.com/digitoll/digitoll-worker/simulator"
	"github.com/digitoll/digitoll-worker/toll"
)

// Submissions the observability tests send besides the sample houses.
var (
	badDateHouse   = []byte(`{"id":"obs-bad-date","operation":"create","level":"house-consignment","declaration":{"documentIssueDate":"yesterday"}}`)
	malformedHouse = []byte(`{"id":"obs-malformed","operation":"create","level":"house-consignment","declaration":{},"colour":"red"}`)
)

// refusedHouse is a complete house consignment that Toll's asynchronous
// validation refuses (FAILURE), with id obs-refused.
func refusedHouse(t *testing.T) []byte {
	t.Helper()
	var sub map[string]any
	for _, b := range houseVariants(t, 1) {
		if err := json.Unmarshal(b, &sub); err != nil {
			t.Fatal(err)
		}
	}
	sub["id"] = "obs-refused"
	chl := sub["declaration"].(map[string]any)["consignmentHouseLevel"].(map[string]any)
	chl["goodsDescription"] = simulator.TriggerRejectGoods
	chl["transportDocumentHouseLevel"].(map[string]any)["documentNumber"] = "HWB-OBS-REFUSED"
	b, err := json.Marshal(sub)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// updateAfter is an update of the submission body named after, with its
// MRN left for the worker to take from after's result.
func updateAfter(t *testing.T, body []byte, id, after string) []byte {
	t.Helper()
	var sub map[string]any
	if err := json.Unmarshal(body, &sub); err != nil {
		t.Fatal(err)
	}
	sub["id"], sub["operation"], sub["after"] = id, "update", after
	b, err := json.Marshal(sub)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The producer's trace context on every submission of these tests.
const (
	obsTraceID     = "4bf92f3577b34da6a3ce929d0e0e4736"
	obsTraceparent = "00-" + obsTraceID + "-00f067aa0ba902b7-01"
)

// After a run, /metrics tells what happened: every delivery by outcome,
// every Toll call by endpoint and status, one token fetch for the scope
// and cache hits after it, the validation waits, the consumer's backlog,
// the certificate's expiry; and no label carries an MRN or a requestId.
func TestMetricsAfterARun(t *testing.T) {
	f := startRun(t, nil)
	const accepted = 5
	for id, body := range houseVariants(t, accepted) {
		f.publish(t, contract.KindRoad, id, body)
	}
	f.publish(t, contract.KindRoad, "obs-bad-date", badDateHouse)
	f.publish(t, contract.KindRoad, "obs-refused", refusedHouse(t))
	f.publish(t, contract.KindRoad, "obs-malformed", malformedHouse)
	results := f.results(t, accepted+3)

	metricsURL := f.opsURL(t, "/metrics")
	var s promtest.Series
	var text string
	waitFor(t, 10*time.Second, "the last delivery to finish", func() bool {
		s, text = promtest.Scrape(t, metricsURL)
		return s.Sum("digitoll_messages_total") == accepted+3 && s[promtest.Key("digitoll_messages_in_flight", "kind", "road", "tenant", "default")] == 0
	})
	const road = "road"
	scope := toll.Scope(false, toll.RoadV2().ScopeBase)
	for key, want := range map[string]float64{
		promtest.Key("digitoll_messages_total", "kind", road, "tenant", "default", "operation", "create", "outcome", "accepted"):    accepted,
		promtest.Key("digitoll_messages_total", "kind", road, "tenant", "default", "operation", "create", "outcome", "rejected"):    2,
		promtest.Key("digitoll_messages_total", "kind", road, "tenant", "default", "operation", "none", "outcome", "dead-lettered"): 1,
		promtest.Key("digitoll_dead_letters_total", "kind", road, "tenant", "default", "reason", "malformed"):                       1,
		promtest.Key("digitoll_tenant_paused", "kind", road, "tenant", "default", "reason", "none"):                                 0,
		promtest.Key("digitoll_validation_wait_seconds_count", "kind", road, "verdict", "success"):                                  accepted,
		promtest.Key("digitoll_validation_wait_seconds_count", "kind", road, "verdict", "failure"):                                  1,
		promtest.Key("digitoll_token_fetches_total", "tenant", "default", "scope", scope):                                           1,
		promtest.Key("digitoll_token_fetch_failures_total", "tenant", "default", "scope", scope):                                    0,
		promtest.Key("digitoll_http_request_duration_seconds_count",
			"method", "POST", "endpoint", "/toll/api/movement/road/v2/house-consignment", "code", "202"): accepted + 1,
		promtest.Key("digitoll_http_request_duration_seconds_count",
			"method", "POST", "endpoint", "/toll/api/movement/road/v2/house-consignment", "code", "400"): 1,
		promtest.Key("digitoll_http_request_duration_seconds_count",
			"method", "POST", "endpoint", "/maskinporten/token", "code", "200"): 1,
	} {
		if got, ok := s[key]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", key, got, ok, want)
		}
	}
	// Every message asked for a token; all but the first were served from
	// the cache.
	if hits := s[promtest.Key("digitoll_token_cache_hits_total", "tenant", "default", "scope", scope)]; hits < accepted {
		t.Errorf("token cache hits %v, want at least %d", hits, accepted)
	}
	if exp := s[promtest.Key("digitoll_token_expiry_seconds", "tenant", "default", "scope", scope)]; exp <= 0 {
		t.Errorf("token expiry %v s, want the cached token's remaining life", exp)
	}
	if polls := s.Sum("digitoll_http_request_duration_seconds_count", "endpoint",
		"/toll/api/movement/road/status/v2/house-consignment/validation-status/{id}"); polls < accepted+1 {
		t.Errorf("%v validation-status calls, want at least one per declaration", polls)
	}
	if s.Sum("digitoll_http_request_duration_seconds_sum") <= 0 {
		t.Error("the Toll latency histogram is empty")
	}
	if cert := s[promtest.Key("digitoll_certificate_expiry_seconds", "tenant", "default")]; cert <= 0 {
		t.Errorf("certificate expiry %v s, want the business certificate's remaining life", cert)
	}
	// Bounded cardinality: no MRN or requestId became a label value.
	for _, r := range results {
		for _, v := range []string{r.MRN, r.RequestID} {
			if v != "" && strings.Contains(text, v) {
				t.Errorf("/metrics names %q of result %s", v, r.ID)
			}
		}
	}
	f.stop(t)
}

// No secret leaks: a run through success, a 400 rejection, a FAILURE, a
// dead letter, a scope revoked at Maskinporten and a key Maskinporten does
// not know leaves no private key, grant, access token or Authorization
// header in any log line, result, dead letter (body or header), /readyz
// answer or /metrics. And the log lines about a message carry its id,
// kind, operation, requestId and MRN where known, and its trace id.
func TestNoSecretLeaks(t *testing.T) {
	jsonLogs := map[string]string{"DIGITOLL_LOG_FORMAT": "json", "DIGITOLL_LOG_LEVEL": "debug"}
	settings := func(more map[string]string) map[string]string {
		out := map[string]string{}
		for k, v := range jsonLogs {
			out[k] = v
		}
		for k, v := range more {
			out[k] = v
		}
		return out
	}
	var haystacks []string

	// The integration's own key: success, rejections, a dead letter, and
	// a scope revoked before its first token.
	a := startRun(t, settings(map[string]string{"DIGITOLL_KINDS": "road,air"}))
	a.sim.RevokeScope(a.key.ClientID, toll.Scope(false, toll.AirV1().ScopeBase))
	var house []byte
	for _, b := range houseVariants(t, 1) {
		house = b
	}
	a.publishTraced(t, contract.KindRoad, "house-0000", house)
	a.publishTraced(t, contract.KindRoad, "obs-update", updateAfter(t, house, "obs-update", "house-0000"))
	a.publishTraced(t, contract.KindRoad, "obs-bad-date", badDateHouse)
	a.publishTraced(t, contract.KindRoad, "obs-refused", refusedHouse(t))
	a.publishTraced(t, contract.KindRoad, "obs-malformed", malformedHouse)
	a.publishTraced(t, contract.KindAir, "obs-air-revoked", []byte(`{"id":"obs-air-revoked","operation":"create","level":"transport","declaration":{}}`))
	got := a.results(t, 5)
	for id, want := range map[string]contract.Status{
		"house-0000": contract.StatusAccepted, "obs-update": contract.StatusAccepted, "obs-bad-date": contract.StatusRejected,
		"obs-refused": contract.StatusRejected, "obs-malformed": contract.StatusDeadLettered,
	} {
		if got[id].Status != want {
			t.Errorf("%s: %s, want %s", id, got[id].Status, want)
		}
	}
	haystacks = append(haystacks, a.waitPaused(t, "air"))
	_, metricsA := promtest.Scrape(t, a.opsURL(t, "/metrics"))
	a.stop(t)
	haystacks = append(haystacks, metricsA, a.out.String(), a.errOut.String())
	results, dead := streamDump(t, a.js, contract.StreamResults), streamDump(t, a.js, contract.StreamDLQ)
	if len(results) != 5 || len(dead) != 1 {
		t.Fatalf("%d results and %d dead letters, want 5 and 1", len(results), len(dead))
	}
	haystacks = append(haystacks, results...)
	haystacks = append(haystacks, dead...)
	checkMessageLogLines(t, a.errOut.String())

	// A key Maskinporten does not know.
	other, err := simulator.WriteDemoKey(t.TempDir(), config.SimClientID)
	if err != nil {
		t.Fatal(err)
	}
	b := startRun(t, settings(map[string]string{"DIGITOLL_KEY_FILE": other.KeyFile, "DIGITOLL_CERT_FILE": other.CertFile}))
	b.publishTraced(t, contract.KindRoad, "house-0000", house)
	haystacks = append(haystacks, b.waitPaused(t, "road"))
	_, metricsB := promtest.Scrape(t, b.opsURL(t, "/metrics"))
	b.stop(t)
	haystacks = append(haystacks, metricsB, b.out.String(), b.errOut.String())
	haystacks = append(haystacks, streamDump(t, b.js, contract.StreamResults)...)
	haystacks = append(haystacks, streamDump(t, b.js, contract.StreamDLQ)...)

	// Every secret the test can know of.
	secrets := map[string]string{}
	for _, k := range []simulator.DemoKey{a.key, other} {
		for i, s := range pemSecrets(t, k.KeyFile) {
			secrets[fmt.Sprintf("private key %s, part %d", k.KeyFile, i)] = s
		}
	}
	grants, tokens := 0, 0
	for _, sim := range []*simulator.Server{a.sim, b.sim} {
		for _, tok := range sim.IssuedTokens() {
			secrets["access token "+tok[:6]+"…"] = tok
			tokens++
		}
		for _, g := range sim.ReceivedGrants() {
			secrets["grant "+g[:12]+"…"] = g
			if parts := strings.Split(g, "."); len(parts) == 3 {
				secrets["grant signature "+parts[2][:8]+"…"] = parts[2]
			}
			grants++
		}
	}
	// The road token (Maskinporten's and Toll's); grants for road, for
	// the revoked air scope, and the unknown key's.
	if tokens < 2 || grants < 3 {
		t.Fatalf("the test saw %d tokens and %d grants: the paths it means to cover were not taken", tokens, grants)
	}
	secrets["an Authorization header"] = "Authorization"
	secrets["a bearer token"] = "Bearer "

	for _, h := range haystacks {
		for what, s := range secrets {
			if i := strings.Index(h, s); i >= 0 {
				t.Errorf("%s leaked: …%s…", what, excerpt(h, i, len(s)))
			}
		}
	}
}

// publishTraced publishes a submission with the producer's traceparent.
func (f *runFixture) publishTraced(t *testing.T, kind contract.Kind, id string, body []byte) {
	t.Helper()
	msg := &nats.Msg{Subject: contract.SubmitSubject(kind, contract.DefaultTenant), Data: body,
		Header: nats.Header{"traceparent": {obsTraceparent}}}
	if _, err := f.js.PublishMsg(t.Context(), msg, jetstream.WithMsgID(contract.MsgID(contract.DefaultTenant, id))); err != nil {
		t.Fatal(err)
	}
}

// opsURL is the URL of path on the fixture's operations server.
func (f *runFixture) opsURL(t *testing.T, path string) string {
	t.Helper()
	m := regexp.MustCompile(`metrics at (http://\S+)/metrics`).FindStringSubmatch(f.out.String())
	if m == nil {
		t.Fatalf("run did not say where its metrics are:\n%s", f.out)
	}
	return m[1] + path
}

// waitPaused waits until /readyz reports kind paused and returns its
// answer.
func (f *runFixture) waitPaused(t *testing.T, kind string) string {
	t.Helper()
	var body string
	waitFor(t, 30*time.Second, kind+" to be paused by the configuration fault", func() bool {
		resp, err := http.Get(f.opsURL(t, "/readyz"))
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body = string(b)
		return resp.StatusCode == http.StatusServiceUnavailable && strings.Contains(body, kind+": paused")
	})
	return body
}

// streamDump renders every message of stream: subject, headers and body.
func streamDump(t *testing.T, js jetstream.JetStream, stream string) []string {
	t.Helper()
	ctx := t.Context()
	st, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			continue // deleted
		}
		var b strings.Builder
		fmt.Fprintf(&b, "%s\n", m.Subject)
		for k, vs := range m.Header {
			fmt.Fprintf(&b, "%s: %s\n", k, strings.Join(vs, ", "))
		}
		b.Write(m.Data)
		out = append(out, b.String())
	}
	return out
}

// pemSecrets are a private key file's contents and each line of its
// base64 body: a key written out in any form contains one of them.
func pemSecrets(t *testing.T, file string) []string {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if block, _ := pem.Decode(data); block == nil || !strings.Contains(block.Type, "PRIVATE KEY") {
		t.Fatalf("%s holds no private key", file)
	}
	out := []string{string(data)}
	sc := bufio.NewScanner(strings.NewReader(string(data)))
	for sc.Scan() {
		// The last line may be short; 16 base64 characters are still
		// 96 bits of the key.
		if line := sc.Text(); !strings.HasPrefix(line, "-----") && len(line) >= 16 {
			out = append(out, line)
		}
	}
	return out
}

// checkMessageLogLines holds the worker's JSON log lines about messages to
// their fields: id, kind and operation always, requestId and mrn once Toll
// gave them, and the producer's trace id.
func checkMessageLogLines(t *testing.T, logs string) {
	t.Helper()
	want := map[string][]string{
		// the worker's line about each result
		"result published": {"id", "kind", "tenant", "operation", "traceId"},
		// the handler's lines about Toll's answers
		"toll accepted the declaration": {"id", "kind", "tenant", "operation", "requestId", "mrn", "traceId"},
		"toll rejected the declaration": {"id", "kind", "tenant", "operation", "traceId"},
		"toll refused the declaration":  {"id", "kind", "tenant", "operation", "requestId", "traceId"},
		"dead-lettered":                 {"id", "kind", "tenant", "reason", "traceId"},
	}
	seen := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("log line is not JSON: %s", line)
			continue
		}
		if k := repeatedKey(line); k != "" {
			t.Errorf("log line names %s twice: %s", k, line)
		}
		msg, _ := rec["msg"].(string)
		fields, ok := want[msg]
		if !ok {
			continue
		}
		seen[msg]++
		for _, k := range fields {
			if v, _ := rec[k].(string); v == "" {
				t.Errorf("log line %q lacks %s: %s", msg, k, line)
			}
		}
		if rec["traceId"] != nil && rec["traceId"] != obsTraceID {
			t.Errorf("log line %q has trace id %v, want the producer's %s", msg, rec["traceId"], obsTraceID)
		}
		if msg == "result published" && rec["status"] == string(contract.StatusAccepted) && (rec["requestId"] == nil || rec["mrn"] == nil) {
			t.Errorf("accepted result's log line lacks requestId or mrn: %s", line)
		}
	}
	var missing []string
	for msg := range want {
		if seen[msg] == 0 {
			missing = append(missing, msg)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("no log line %q: the paths the test means to cover were not taken", missing)
	}
}

// repeatedKey is a top-level key that a JSON object line has twice, or "".
func repeatedKey(line string) string {
	dec := json.NewDecoder(strings.NewReader(line))
	if _, err := dec.Token(); err != nil { // {
		return ""
	}
	keys := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return ""
		}
		k, _ := tok.(string)
		if keys[k] {
			return k
		}
		keys[k] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return ""
		}
	}
	return ""
}

// excerpt is up to 40 bytes around a leak, with the secret itself cut to
// its first 6 bytes so that the test output does not repeat it.
func excerpt(h string, i, n int) string {
	from, to := max(0, i-40), min(len(h), i+n+40)
	return h[from:i] + h[i:i+min(n, 6)] + "[…]" + h[i+n:to]
}
