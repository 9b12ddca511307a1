package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/digitoll/digitoll-worker/config"
	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/embednats"
	"github.com/digitoll/digitoll-worker/internal/pkitest"
	"github.com/digitoll/digitoll-worker/worker"
)

// natsPKI is what a locked-down NATS deployment gives the worker: a CA,
// a server certificate, a client certificate, a user with a password and
// an NKey seed, all in files.
type natsPKI struct {
	ca                   *pkitest.CA
	server, client       *pkitest.Leaf
	passwordFile         string
	seedFile, nkeyPublic string
}

func newNATSPKI(t *testing.T) natsPKI {
	t.Helper()
	ca := pkitest.NewCA(t, "nats-ca")
	p := natsPKI{
		ca:     ca,
		server: ca.Issue(t, "nats-server", pkitest.LeafOptions{Server: true}),
		client: ca.Issue(t, "digitoll-worker", pkitest.LeafOptions{Client: true}),
	}
	dir := t.TempDir()
	p.passwordFile = writeFile(t, dir, "nats-password", []byte("s3cret\n"))
	user, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := user.Seed()
	p.nkeyPublic, _ = user.PublicKey()
	p.seedFile = writeFile(t, dir, "worker.nk", seed)
	return p
}

// startLockedNATS starts a server that requires TLS with a client
// certificate, and a password or an NKey.
func startLockedNATS(t *testing.T, p natsPKI) *embednats.Server {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(p.server.CertFile, p.server.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(p.ca.Cert)
	srv, err := embednats.Start(embednats.Options{
		Dir:   t.TempDir(),
		Port:  embednats.RandomPort,
		TLS:   &tls.Config{Certificates: []tls.Certificate{pair}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert},
		Users: []embednats.User{{Name: "worker", Password: "s3cret"}},
		NKeys: []string{p.nkeyPublic},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	return srv
}

func TestConnectNATSWithTLSAndAuth(t *testing.T) {
	p := newNATSPKI(t)
	srv := startLockedNATS(t, p)
	// The URL says nats://: the CA file alone turns TLS on.
	url := strings.Replace(srv.ClientURL(), "tls://", "nats://", 1)
	full := config.NATS{URL: url, CAFile: p.ca.CertFile, CertFile: p.client.CertFile, KeyFile: p.client.KeyFile, User: "worker", PasswordFile: p.passwordFile}
	tests := []struct {
		name     string
		edit     func(c *config.NATS)
		wantHint string // empty: connects
	}{
		{"tls, client certificate, password", func(*config.NATS) {}, ""},
		{"tls, client certificate, nkey", func(c *config.NATS) { c.User, c.PasswordFile, c.NKeyFile = "", "", p.seedFile }, ""},
		{"no credentials", func(c *config.NATS) { c.User, c.PasswordFile = "", "" }, "refused the credentials"},
		{"wrong password", func(c *config.NATS) { c.PasswordFile = writeFile(t, t.TempDir(), "pw", []byte("guess")) }, "refused the credentials"},
		{"no CA", func(c *config.NATS) { c.CAFile = "" }, "not issued by a CA in DIGITOLL_NATS_CA_FILE"},
		{"no client certificate", func(c *config.NATS) { c.CertFile, c.KeyFile = "", "" }, "DIGITOLL_NATS_CERT_FILE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := full
			tt.edit(&c)
			conn, err := connectNATS(c, "test", slog.New(slog.DiscardHandler))
			if tt.wantHint != "" {
				if err == nil {
					conn.Close()
					t.Fatal("connected, want a refusal")
				}
				if !strings.Contains(err.Error(), tt.wantHint) {
					t.Fatalf("err = %v, want the hint %q", err, tt.wantHint)
				}
				if strings.Contains(err.Error(), "s3cret") {
					t.Fatalf("the error shows the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(conn.Close)
			if !conn.nc.TLSRequired() {
				t.Error("not over TLS")
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := worker.EnsureStreams(ctx, conn.js, worker.StreamOptions{}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestConnectNATSFileErrorsNameTheSetting(t *testing.T) {
	dir := t.TempDir()
	notPEM := writeFile(t, dir, "ca.pem", []byte("not a certificate"))
	empty := writeFile(t, dir, "password", []byte("\n"))
	notSeed := writeFile(t, dir, "seed", []byte("SUNOTASEED"))
	for _, tt := range []struct {
		c    config.NATS
		want string
	}{
		{config.NATS{URL: "nats://127.0.0.1:1", CAFile: notPEM}, "DIGITOLL_NATS_CA_FILE"},
		{config.NATS{URL: "nats://127.0.0.1:1", User: "w", PasswordFile: empty}, "DIGITOLL_NATS_PASSWORD_FILE"},
		{config.NATS{URL: "nats://127.0.0.1:1", NKeyFile: notSeed}, "DIGITOLL_NATS_NKEY_FILE"},
		{config.NATS{URL: "nats://127.0.0.1:1", CertFile: notPEM, KeyFile: notPEM}, "DIGITOLL_NATS_CERT_FILE"},
		{config.NATS{EmbeddedDir: t.TempDir(), EmbeddedPort: embednats.RandomPort, NKeyFile: notSeed}, "DIGITOLL_NATS_NKEY_FILE"},
	} {
		_, err := connectNATS(tt.c, "test", slog.New(slog.DiscardHandler))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: err = %v, want it to name %s", tt.c, err, tt.want)
		}
	}
}

// The embedded server, told to listen beyond loopback, takes the worker's
// credentials and certificate: the worker connects in-process, other
// processes only with TLS, a client certificate and the credentials.
func TestEmbeddedServerWithTLSAndAuth(t *testing.T) {
	p := newNATSPKI(t)
	c := config.NATS{
		EmbeddedDir: t.TempDir(), EmbeddedHost: "127.0.0.1", EmbeddedPort: embednats.RandomPort,
		NKeyFile: p.seedFile, CAFile: p.ca.CertFile, ServerCertFile: p.server.CertFile, ServerKeyFile: p.server.KeyFile,
	}
	conn, err := connectNATS(c, "test", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := worker.EnsureStreams(ctx, conn.js, worker.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	url := conn.embedded.ClientURL()
	if !strings.HasPrefix(url, "tls://127.0.0.1:") {
		t.Fatalf("ClientURL = %s, want tls:// on loopback", url)
	}
	nkey, err := nats.NkeyOptionFromSeed(p.seedFile)
	if err != nil {
		t.Fatal(err)
	}
	other, err := nats.Connect(url, nkey, nats.RootCAs(p.ca.CertFile), nats.ClientCert(p.client.CertFile, p.client.KeyFile))
	if err != nil {
		t.Fatalf("another process with the credentials and a client certificate: %v", err)
	}
	other.Close()
	if nc, err := nats.Connect(url, nkey, nats.RootCAs(p.ca.CertFile)); err == nil {
		nc.Close()
		t.Fatal("another process without a client certificate connected")
	}
	if nc, err := nats.Connect(url, nats.RootCAs(p.ca.CertFile), nats.ClientCert(p.client.CertFile, p.client.KeyFile)); !errors.Is(err, nats.ErrAuthorization) {
		if err == nil {
			nc.Close()
		}
		t.Fatalf("another process without credentials: err = %v, want ErrAuthorization", err)
	}
}

// publish, results and dlq read the same NATS settings as run, from
// flags or variables.
func TestClientCommandsUseTheNATSSecuritySettings(t *testing.T) {
	p := newNATSPKI(t)
	srv := startLockedNATS(t, p)
	vars := map[string]string{
		"DIGITOLL_NATS_URL":           srv.ClientURL(),
		"DIGITOLL_NATS_CA_FILE":       p.ca.CertFile,
		"DIGITOLL_NATS_CERT_FILE":     p.client.CertFile,
		"DIGITOLL_NATS_KEY_FILE":      p.client.KeyFile,
		"DIGITOLL_NATS_USER":          "worker",
		"DIGITOLL_NATS_PASSWORD_FILE": p.passwordFile,
	}
	conn, err := connectNATS(config.NATS{URL: srv.ClientURL(), CAFile: p.ca.CertFile, CertFile: p.client.CertFile, KeyFile: p.client.KeyFile, NKeyFile: p.seedFile},
		"test", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := worker.EnsureStreams(ctx, conn.js, worker.StreamOptions{}); err != nil {
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
	info, err := conn.js.Stream(ctx, contract.StreamSubmit)
	if err != nil {
		t.Fatal(err)
	}
	if n := info.CachedInfo().State.Msgs; n != 1 {
		t.Fatalf("%d messages in %s, want 1", n, contract.StreamSubmit)
	}

	env, _, errOut = testEnv(map[string]string{"DIGITOLL_NATS_URL": srv.ClientURL(), "DIGITOLL_NATS_CA_FILE": p.ca.CertFile})
	if code := run(ctx, env, []string{"dlq", "list", "--nats-cert-file", p.client.CertFile, "--nats-key-file", p.client.KeyFile}); code != 1 ||
		!strings.Contains(errOut.String(), "refused the credentials") {
		t.Fatalf("dlq list without credentials: exit %d: %s", code, errOut)
	}
	env, out, errOut := testEnv(map[string]string{"DIGITOLL_NATS_URL": srv.ClientURL(), "DIGITOLL_NATS_CA_FILE": p.ca.CertFile})
	args := []string{"dlq", "list", "--nats-cert-file", p.client.CertFile, "--nats-key-file", p.client.KeyFile, "--nats-nkey-file", p.seedFile}
	if code := run(ctx, env, args); code != 0 {
		t.Fatalf("dlq list with flags: exit %d: %s%s", code, out, errOut)
	}
	env, _, errOut = testEnv(map[string]string{"DIGITOLL_NATS_URL": srv.ClientURL(), "DIGITOLL_NATS_USER": "worker"})
	if code := run(ctx, env, []string{"results", "--count", "1"}); code != 1 || !strings.Contains(errOut.String(), "DIGITOLL_NATS_PASSWORD_FILE") {
		t.Fatalf("results with a user but no password file: exit %d: %s", code, errOut)
	}
}

func TestNATSHint(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{fmt.Errorf("x: %w", nats.ErrAuthorization), "refused the credentials"},
		{nats.ErrSecureConnRequired, "requires TLS"},
		{nats.ErrSecureConnWanted, "does not offer it"},
		{fmt.Errorf("%w: %w", nats.ErrTLS, x509.UnknownAuthorityError{}), "not issued by a CA"},
		{fmt.Errorf("%w: %w", nats.ErrTLS, x509.HostnameError{Host: "nats"}), "does not name the host"},
		{fmt.Errorf("%w: remote error: tls: certificate required", nats.ErrTLS), "DIGITOLL_NATS_CERT_FILE"},
		{&net.OpError{Op: "remote error", Err: errors.New("tls: certificate required")}, "DIGITOLL_NATS_CERT_FILE"},
		{nats.ErrNoServers, ""},
	}
	for _, tt := range tests {
		got := natsHint(tt.err)
		if tt.want == "" && got != "" || !strings.Contains(got, tt.want) {
			t.Errorf("natsHint(%v) = %q, want %q", tt.err, got, tt.want)
		}
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

// A nats context holds its password or token itself; the connection
// presents them.
func TestNATSSecurityFromAContext(t *testing.T) {
	for _, tt := range []struct {
		name                  string
		c                     config.NATS
		user, password, token string
	}{
		{"user and password", config.NATS{User: "worker", Password: "s3cret"}, "worker", "s3cret", ""},
		{"token", config.NATS{Token: "tok"}, "", "", "tok"},
	} {
		opts, err := natsSecurity(tt.c, nil)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		var o nats.Options
		for _, opt := range opts {
			if err := opt(&o); err != nil {
				t.Fatal(err)
			}
		}
		if o.User != tt.user || o.Password != tt.password || o.Token != tt.token {
			t.Errorf("%s: user %q password %q token %q", tt.name, o.User, o.Password, o.Token)
		}
	}
}
