package main

import (
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/digitoll/digitoll-worker/embednats"
)

// A routing feed paused by a fault only an operator can fix (here the
// entry scope not granted) shows in /readyz as a failed "routing" check
// naming the tenant, the feed and why. (That it clears once a poll
// succeeds again is routing's TestHealthReportsAPausedFeed: the worker
// retries a configuration failure after 5 min.)
func TestReadyzReportsAPausedRoutingFeed(t *testing.T) {
	_, vars := workerAgainstSim(t, "toll:movement/road/v2")
	srv, err := embednats.Start(embednats.Options{Dir: filepath.Join(t.TempDir(), "nats"), Port: embednats.RandomPort})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	vars["DIGITOLL_NATS_URL"] = srv.ClientURL()
	vars["DIGITOLL_HTTP_ADDR"] = "127.0.0.1:0"
	vars["DIGITOLL_ROUTING"] = "on"
	vars["DIGITOLL_ROUTING_INTERVAL"] = "100ms"
	env, out, errOut := testEnv(vars)
	runInBackground(t, env, "run")
	readyz := regexp.MustCompile(`readiness at (http://\S+/readyz)`)
	waitFor(t, 30*time.Second, "the worker to serve readiness", func() bool { return readyz.MatchString(out.String()) })
	url := readyz.FindStringSubmatch(out.String())[1]
	var status int
	var body string
	ask := func() {
		resp, err := http.Get(url)
		if err != nil {
			status, body = 0, err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		status, body = resp.StatusCode, string(b)
	}
	waitFor(t, 30*time.Second, "/readyz to report the paused routing feed", func() bool {
		ask()
		return status == http.StatusServiceUnavailable && strings.Contains(body, "routing: tenant default: feed house-consignment paused")
	})
	t.Logf("/readyz: %d %s", status, body)
	if !strings.Contains(body, "feed transport paused") || !strings.Contains(body, "config failure") {
		t.Errorf("/readyz does not name both feeds and why:\n%s", body)
	}
	// Only routing is blamed: the road lane and NATS are fine.
	if strings.Contains(body, "road:") || strings.Contains(body, "nats:") {
		t.Errorf("/readyz blames more than routing:\n%s\nlog:\n%s", body, errOut)
	}
}
