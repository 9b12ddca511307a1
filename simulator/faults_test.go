package simulator_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/digitoll/digitoll-worker/internal/buftest"
	"github.com/digitoll/digitoll-worker/simulator"
)

func TestFaults(t *testing.T) {
	srv := start(t, simulator.Config{})
	tok := roadToken(t, srv)
	mp := maskinportenToken(t, srv, kidGrant(t, srv, scopeRoad))
	house := road(srv, "house-consignment")

	t.Run("ErrorRate 1", func(t *testing.T) {
		srv.SetFaults(simulator.Faults{ErrorRate: 1})
		t.Cleanup(func() { srv.SetFaults(simulator.Faults{}) })
		if a := call(t, http.MethodPost, house, tok, houseBody("HWB-1", "MAWB-1")); a.status != http.StatusServiceUnavailable {
			t.Errorf("got %d %s, want 503", a.status, a.raw)
		}
		// Before authentication: even without a token.
		if a := call(t, http.MethodGet, road(srv, "test-auth"), "", nil); a.status != http.StatusServiceUnavailable {
			t.Errorf("test-auth: got %d, want 503", a.status)
		}
		// Token endpoints are not Toll API calls.
		exchange(t, srv, mp)
	})
	t.Run("TooManyRate 1", func(t *testing.T) {
		srv.SetFaults(simulator.Faults{TooManyRate: 1})
		t.Cleanup(func() { srv.SetFaults(simulator.Faults{}) })
		a := call(t, http.MethodPost, house, tok, houseBody("HWB-1", "MAWB-1"))
		if a.status != http.StatusTooManyRequests || a.header.Get("Retry-After") != "1" {
			t.Errorf("got %d Retry-After %q, want 429 and 1", a.status, a.header.Get("Retry-After"))
		}
	})
	t.Run("MaskinportenDown", func(t *testing.T) {
		srv.SetFaults(simulator.Faults{MaskinportenDown: true})
		t.Cleanup(func() { srv.SetFaults(simulator.Faults{}) })
		a := postForm(t, srv.TokenURL(), grantForm(kidGrant(t, srv, scopeRoad)))
		if a.status != http.StatusServiceUnavailable || a.str("error") != "server_error" {
			t.Errorf("got %d %s", a.status, a.raw)
		}
		exchange(t, srv, mp)
	})
	t.Run("ExchangeDown", func(t *testing.T) {
		srv.SetFaults(simulator.Faults{ExchangeDown: true})
		t.Cleanup(func() { srv.SetFaults(simulator.Faults{}) })
		a := postForm(t, srv.TollBaseURL()+"/access/external/oauth/token", exchangeForm(mp))
		if a.status != http.StatusServiceUnavailable || a.str("error") != "server_error" {
			t.Errorf("got %d %s", a.status, a.raw)
		}
		maskinportenToken(t, srv, kidGrant(t, srv, scopeRoad))
	})
	t.Run("Latency", func(t *testing.T) {
		srv.SetFaults(simulator.Faults{Latency: 5 * time.Millisecond})
		t.Cleanup(func() { srv.SetFaults(simulator.Faults{}) })
		mustSucceed(t, roadResult(t, srv, http.MethodPost, "house-consignment", "", tok, houseBody("HWB-1", "MAWB-1")))
	})

	st := srv.Stats()
	if st.Submissions("HWB-1") != 1 {
		t.Errorf("Submissions(HWB-1) = %d: faulted calls reached processing", st.Submissions("HWB-1"))
	}
	if st.Requests("POST /toll/api/movement/road/v2/house-consignment") != 3 {
		t.Errorf("house creates = %d, want 3 (faulted ones count)", st.Requests("POST /toll/api/movement/road/v2/house-consignment"))
	}
}

// A call held by injected latency ends when its client gives up, and
// Close does not wait for the latency either.
func TestLatencyEndsWithContextAndClose(t *testing.T) {
	srv := start(t, simulator.Config{})
	tok := roadToken(t, srv)
	srv.SetFaults(simulator.Faults{Latency: time.Hour})

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, road(srv, "test-auth"), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("a call held for an hour answered %d", resp.StatusCode)
	}

	done := make(chan error, 1)
	go func() {
		req, err := http.NewRequest(http.MethodGet, road(srv, "test-auth"), nil)
		if err != nil {
			done <- err
			return
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	waitFor(t, func() bool { return srv.Stats().Requests("GET /toll/api/movement/road/v2/test-auth") == 2 })
	if err := srv.Close(); err != nil {
		t.Errorf("Close with a call held by latency: %v", err)
	}
	if err := <-done; err == nil {
		t.Error("the held call got an answer after Close")
	}
	if err := srv.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestLogsHoldNoSecrets(t *testing.T) {
	var buf buftest.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv := start(t, simulator.Config{Logger: logger})
	g := kidGrant(t, srv, scopeRoad)
	mp := maskinportenToken(t, srv, g)
	tok := exchange(t, srv, mp)
	postForm(t, srv.TokenURL(), grantForm(g)) // refused: replay
	call(t, http.MethodGet, road(srv, "test-auth"), tok, nil)
	call(t, http.MethodGet, road(srv, "test-auth"), "wrong-"+tok, nil)
	srv.Close()

	logs := buf.String()
	if n := strings.Count(logs, "simulator request"); n != 5 {
		t.Errorf("%d request lines, want 5:\n%s", n, logs)
	}
	for name, secret := range map[string]string{"grant": g, "grant signature": g[strings.LastIndex(g, ".")+1:], "Maskinporten token": mp, "Toll token": tok} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log holds the %s", name)
		}
	}
	if !strings.Contains(logs, "Grant is used before") || !strings.Contains(logs, "client="+clientKid) {
		t.Errorf("the log lacks the refusal reason or the client:\n%s", logs)
	}
}

func TestStartRejectsClientWithoutID(t *testing.T) {
	if srv, err := simulator.Start(simulator.Config{Clients: []simulator.Client{{KeyID: "k"}}}, "127.0.0.1:0"); err == nil {
		srv.Close()
		t.Fatal("Start accepted a client without ID")
	}
}

// waitFor polls cond until it holds, failing the test after a deadline.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met before the deadline")
		}
		<-tick.C
	}
}

// Handler serves the simulator inside another server; BaseURL makes the
// URLs, and so the grant audience, point there.
func TestHandlerEmbedded(t *testing.T) {
	outer := httptest.NewUnstartedServer(nil)
	base := "http://" + outer.Listener.Addr().String()
	srv := start(t, simulator.Config{BaseURL: base + "/"})
	outer.Config.Handler = srv.Handler()
	outer.Start()
	t.Cleanup(outer.Close)

	if srv.URL() != base || srv.Issuer() != base+"/maskinporten/" || srv.TollBaseURL() != base+"/toll/api" {
		t.Fatalf("URL %s Issuer %s TollBaseURL %s, want them under %s", srv.URL(), srv.Issuer(), srv.TollBaseURL(), base)
	}
	if a := call(t, http.MethodGet, road(srv, "test-auth"), roadToken(t, srv), nil); a.status != http.StatusOK {
		t.Errorf("test-auth through the embedding server: %d", a.status)
	}
}
