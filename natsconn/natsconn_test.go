package natsconn

import (
	"context"
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
	"github.com/nats-io/nats.go/jetstream"

	"github.com/digitoll/digitoll-worker/config"
	"github.com/digitoll/digitoll-worker/embednats"
	"github.com/digitoll/digitoll-worker/internal/natstest"
)

func TestConnectWithTLSAndAuth(t *testing.T) {
	p := natstest.NewPKI(t)
	srv := natstest.StartLocked(t, p)
	// The URL says nats://: the CA file alone turns TLS on.
	url := strings.Replace(srv.ClientURL(), "tls://", "nats://", 1)
	full := config.NATS{URL: url, CAFile: p.CA.CertFile, CertFile: p.Client.CertFile, KeyFile: p.Client.KeyFile, User: "worker", PasswordFile: p.PasswordFile}
	tests := []struct {
		name     string
		edit     func(c *config.NATS)
		wantHint string // empty: connects
	}{
		{"tls, client certificate, password", func(*config.NATS) {}, ""},
		{"tls, client certificate, nkey", func(c *config.NATS) { c.User, c.PasswordFile, c.NKeyFile = "", "", p.SeedFile }, ""},
		{"no credentials", func(c *config.NATS) { c.User, c.PasswordFile = "", "" }, "refused the credentials"},
		{"wrong password", func(c *config.NATS) { c.PasswordFile = writeFile(t, t.TempDir(), "pw", []byte("guess")) }, "refused the credentials"},
		{"no CA", func(c *config.NATS) { c.CAFile = "" }, "not issued by a CA in DIGITOLL_NATS_CA_FILE"},
		{"no client certificate", func(c *config.NATS) { c.CertFile, c.KeyFile = "", "" }, "DIGITOLL_NATS_CERT_FILE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := full
			tt.edit(&c)
			conn, err := Connect(c, "test", slog.New(slog.DiscardHandler))
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
			if !conn.NC.TLSRequired() {
				t.Error("not over TLS")
			}
			useJetStream(t, conn)
		})
	}
}

func TestConnectFileErrorsNameTheSetting(t *testing.T) {
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
		_, err := Connect(tt.c, "test", slog.New(slog.DiscardHandler))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: err = %v, want it to name %s", tt.c, err, tt.want)
		}
	}
}

// The embedded server, told to listen beyond loopback, takes the worker's
// credentials and certificate: the worker connects in-process, other
// processes only with TLS, a client certificate and the credentials.
func TestEmbeddedServerWithTLSAndAuth(t *testing.T) {
	p := natstest.NewPKI(t)
	c := config.NATS{
		EmbeddedDir: t.TempDir(), EmbeddedHost: "127.0.0.1", EmbeddedPort: embednats.RandomPort,
		NKeyFile: p.SeedFile, CAFile: p.CA.CertFile, ServerCertFile: p.Server.CertFile, ServerKeyFile: p.Server.KeyFile,
	}
	conn, err := Connect(c, "test", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	useJetStream(t, conn)
	url := conn.Embedded.ClientURL()
	if !strings.HasPrefix(url, "tls://127.0.0.1:") {
		t.Fatalf("ClientURL = %s, want tls:// on loopback", url)
	}
	nkey, err := nats.NkeyOptionFromSeed(p.SeedFile)
	if err != nil {
		t.Fatal(err)
	}
	other, err := nats.Connect(url, nkey, nats.RootCAs(p.CA.CertFile), nats.ClientCert(p.Client.CertFile, p.Client.KeyFile))
	if err != nil {
		t.Fatalf("another process with the credentials and a client certificate: %v", err)
	}
	other.Close()
	if nc, err := nats.Connect(url, nkey, nats.RootCAs(p.CA.CertFile)); err == nil {
		nc.Close()
		t.Fatal("another process without a client certificate connected")
	}
	if nc, err := nats.Connect(url, nats.RootCAs(p.CA.CertFile), nats.ClientCert(p.Client.CertFile, p.Client.KeyFile)); !errors.Is(err, nats.ErrAuthorization) {
		if err == nil {
			nc.Close()
		}
		t.Fatalf("another process without credentials: err = %v, want ErrAuthorization", err)
	}
}

func TestHint(t *testing.T) {
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
		got := hint(tt.err)
		if tt.want == "" && got != "" || !strings.Contains(got, tt.want) {
			t.Errorf("hint(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}

// A nats context holds its password or token itself; the connection
// presents them.
func TestSecurityFromAContext(t *testing.T) {
	for _, tt := range []struct {
		name                  string
		c                     config.NATS
		user, password, token string
	}{
		{"user and password", config.NATS{User: "worker", Password: "s3cret"}, "worker", "s3cret", ""},
		{"token", config.NATS{Token: "tok"}, "", "", "tok"},
	} {
		opts, err := security(tt.c, nil)
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

// useJetStream fails t unless conn can create a stream and store a
// message in it.
func useJetStream(t *testing.T, conn *Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := conn.JS.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.JS.Publish(ctx, "t.1", []byte("x")); err != nil {
		t.Fatal(err)
	}
}

// writeFile writes data to name in dir and returns its path.
func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
