package main

import (
	"context"
	"testing"

	"github.com/digitoll/digitoll-worker/config"
	"github.com/digitoll/digitoll-worker/simulator"
)

// workerAgainstSim starts a simulator whose one client is granted scopes
// and returns it with the settings that point `digitoll run` at it exactly
// as at Toll's test environment; NATS and the HTTP address are the
// caller's to add.
func workerAgainstSim(t *testing.T, scopes ...string) (*simulator.Server, map[string]string) {
	t.Helper()
	key, err := simulator.WriteDemoKey(t.TempDir(), config.SimClientID)
	if err != nil {
		t.Fatal(err)
	}
	sim, err := simulator.Start(simulator.Config{Clients: []simulator.Client{key.Client(scopes...)}}, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	return sim, map[string]string{
		"DIGITOLL_ENV":                    "test",
		"DIGITOLL_MASKINPORTEN_ISSUER":    sim.Issuer(),
		"DIGITOLL_MASKINPORTEN_TOKEN_URL": sim.TokenURL(),
		"DIGITOLL_TOLL_BASE_URL":          sim.TollBaseURL(),
		"DIGITOLL_CLIENT_ID":              key.ClientID,
		"DIGITOLL_KEY_FILE":               key.KeyFile,
		"DIGITOLL_CERT_FILE":              key.CertFile,
	}
}

// runInBackground runs `digitoll args` with env until the test ends; the
// channel receives its exit code (and gets it back for the cleanup when
// a test reads it earlier).
func runInBackground(t *testing.T, env *environment, args ...string) chan int {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- run(ctx, env, args) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return done
}
