package main

import (
	"context"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/digitoll/digitoll-worker/broker"
	"github.com/digitoll/digitoll-worker/config"
	"github.com/digitoll/digitoll-worker/simulator"
)

// A routing feed paused by a fault only an operator can fix (here the
// entry scope not granted) shows in /readyz as a failed "routing" check
// naming the feed and why. (That it clears once a poll succeeds again is
// routing's TestHealthReportsAPausedFeed: the worker retries a
// configuration failure after 5 min.)
func TestReadyzReportsAPausedRoutingFeed(t *testing.T) {
	dir := t.TempDir()
	key, err := simulator.WriteDemoKey(dir, config.SimClientID)
	if err != nil {
		t.Fatal(err)
	}
	sim, err := simulator.Start(simulator.Config{Clients: []simulator.Client{key.Client("toll:movement/road/v2")}}, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	srv, err := broker.Start(broker.Options{Dir: filepath.Join(dir, "nats"), Port: broker.RandomPort})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	env, out, errOut := testEnv(map[string]string{
		"DIGITOLL_ENV":                    "test",
		"DIGITOLL_MASKINPORTEN_ISSUER":    sim.Issuer(),
		"DIGITOLL_MASKINPORTEN_TOKEN_URL": sim.TokenURL(),
		"DIGITOLL_TOLL_BASE_URL":          sim.TollBaseURL(),
		"DIGITOLL_CLIENT_ID":              key.ClientID,
		"DIGITOLL_KEY_FILE":               key.KeyFile,
		"DIGITOLL_CERT_FILE":              key.CertFile,
		"DIGITOLL_NATS_URL":               srv.ClientURL(),
		"DIGITOLL_HTTP_ADDR":              "127.0.0.1:0",
		"DIGITOLL_ROUTING":                "on",
		"DIGITOLL_ROUTING_INTERVAL":       "100ms",
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- run(ctx, env, []string{"run"}) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
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
		return status == http.StatusServiceUnavailable && strings.Contains(body, "routing: feed house-consignment paused")
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
