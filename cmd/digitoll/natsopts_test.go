package main

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/digitoll/digitoll-worker/config"
	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/internal/natstest"
	"github.com/digitoll/digitoll-worker/natsconn"
	"github.com/digitoll/digitoll-worker/worker"
)

// publish, results and dlq read the same NATS settings as run, from
// flags or variables.
func TestClientCommandsUseTheNATSSecuritySettings(t *testing.T) {
	p := natstest.NewPKI(t)
	srv := natstest.StartLocked(t, p)
	vars := map[string]string{
		"DIGITOLL_NATS_URL":           srv.ClientURL(),
		"DIGITOLL_NATS_CA_FILE":       p.CA.CertFile,
		"DIGITOLL_NATS_CERT_FILE":     p.Client.CertFile,
		"DIGITOLL_NATS_KEY_FILE":      p.Client.KeyFile,
		"DIGITOLL_NATS_USER":          "worker",
		"DIGITOLL_NATS_PASSWORD_FILE": p.PasswordFile,
	}
	conn, err := natsconn.Connect(config.NATS{URL: srv.ClientURL(), CAFile: p.CA.CertFile, CertFile: p.Client.CertFile, KeyFile: p.Client.KeyFile, NKeyFile: p.SeedFile},
		"test", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := worker.EnsureStreams(ctx, conn.JS, worker.StreamOptions{}); err != nil {
		t.Fatal(err)
	}

	sub := filepath.Join(t.TempDir(), "house.json")
	body, err := os.ReadFile("../../samples/road/03-house.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(sub, body, 0o600); err != nil {
		t.Fatal(err)
	}
	env, _, errOut := testEnv(vars)
	if code := run(ctx, env, []string{"publish", sub}); code != 0 {
		t.Fatalf("publish with the variables: exit %d: %s", code, errOut)
	}
	info, err := conn.JS.Stream(ctx, contract.StreamSubmit)
	if err != nil {
		t.Fatal(err)
	}
	if n := info.CachedInfo().State.Msgs; n != 1 {
		t.Fatalf("%d messages in %s, want 1", n, contract.StreamSubmit)
	}

	env, _, errOut = testEnv(map[string]string{"DIGITOLL_NATS_URL": srv.ClientURL(), "DIGITOLL_NATS_CA_FILE": p.CA.CertFile})
	if code := run(ctx, env, []string{"dlq", "list", "--nats-cert-file", p.Client.CertFile, "--nats-key-file", p.Client.KeyFile}); code != 1 ||
		!strings.Contains(errOut.String(), "refused the credentials") {
		t.Fatalf("dlq list without credentials: exit %d: %s", code, errOut)
	}
	env, out, errOut := testEnv(map[string]string{"DIGITOLL_NATS_URL": srv.ClientURL(), "DIGITOLL_NATS_CA_FILE": p.CA.CertFile})
	args := []string{"dlq", "list", "--nats-cert-file", p.Client.CertFile, "--nats-key-file", p.Client.KeyFile, "--nats-nkey-file", p.SeedFile}
	if code := run(ctx, env, args); code != 0 {
		t.Fatalf("dlq list with flags: exit %d: %s%s", code, out, errOut)
	}
	env, _, errOut = testEnv(map[string]string{"DIGITOLL_NATS_URL": srv.ClientURL(), "DIGITOLL_NATS_USER": "worker"})
	if code := run(ctx, env, []string{"results", "--count", "1"}); code != 1 || !strings.Contains(errOut.String(), "DIGITOLL_NATS_PASSWORD_FILE") {
		t.Fatalf("results with a user but no password file: exit %d: %s", code, errOut)
	}
}

// The client commands find the worker's server from NATS_URL, or from the
// nats CLI's selected context, when DIGITOLL_NATS_URL is unset, and say
// which.
func TestClientCommandsFindNATSAsTheCLIDoes(t *testing.T) {
	srv, _ := natsWithStreams(t)
	xdg := t.TempDir()
	ctxDir := filepath.Join(xdg, "nats", "context")
	if err := os.MkdirAll(ctxDir, 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, ctxDir, "local.json", []byte(`{"description":"test","url":"`+srv.ClientURL()+`"}`))
	writeFile(t, filepath.Join(xdg, "nats"), "context.txt", []byte("local"))
	for _, tt := range []struct {
		name       string
		vars       map[string]string
		wantStderr string
	}{
		{"NATS_URL", map[string]string{"NATS_URL": srv.ClientURL(), "XDG_CONFIG_HOME": xdg}, "NATS at " + srv.ClientURL() + ", from NATS_URL"},
		{"selected context", map[string]string{"XDG_CONFIG_HOME": xdg}, "NATS at " + srv.ClientURL() + `, from nats context "local"`},
		{"DIGITOLL_NATS_URL wins, silently", map[string]string{"DIGITOLL_NATS_URL": srv.ClientURL(), "NATS_URL": "nats://127.0.0.1:1", "XDG_CONFIG_HOME": xdg}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			env, out, errOut := testEnv(tt.vars)
			if code := run(t.Context(), env, []string{"dlq", "list"}); code != 0 {
				t.Fatalf("exit %d\nstderr: %s", code, errOut)
			}
			if !strings.Contains(out.String(), "0 dead letters") {
				t.Errorf("stdout: %s", out)
			}
			if tt.wantStderr == "" && errOut.String() != "" || !strings.Contains(errOut.String(), tt.wantStderr) {
				t.Errorf("stderr %q, want %q", errOut, tt.wantStderr)
			}
		})
	}
}
