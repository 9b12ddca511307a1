package natstest

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"

	"github.com/nats-io/nkeys"

	"github.com/digitoll/digitoll-worker/embednats"
	"github.com/digitoll/digitoll-worker/internal/pkitest"
)

// PKI is what a locked-down NATS deployment gives the worker: a CA, a
// server certificate, a client certificate, a user with a password and an
// NKey seed, the secrets in files.
type PKI struct {
	CA             *pkitest.CA
	Server, Client *pkitest.Leaf
	// User and Password are the user StartLocked lets in; PasswordFile
	// holds the password with a line end, as an editor leaves it.
	User, Password, PasswordFile string
	// SeedFile holds the seed of the user NKey whose public key is
	// NKeyPublic.
	SeedFile, NKeyPublic string
}

// NewPKI makes a PKI in a temporary directory of t.
func NewPKI(t testing.TB) PKI {
	t.Helper()
	ca := pkitest.NewCA(t, "nats-ca")
	p := PKI{
		CA:       ca,
		Server:   ca.Issue(t, "nats-server", pkitest.LeafOptions{Server: true}),
		Client:   ca.Issue(t, "digitoll-worker", pkitest.LeafOptions{Client: true}),
		User:     "worker",
		Password: "s3cret",
	}
	dir := t.TempDir()
	p.PasswordFile = writeSecret(t, filepath.Join(dir, "nats-password"), []byte(p.Password+"\n"))
	user, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	seed, err := user.Seed()
	if err != nil {
		t.Fatal(err)
	}
	if p.NKeyPublic, err = user.PublicKey(); err != nil {
		t.Fatal(err)
	}
	p.SeedFile = writeSecret(t, filepath.Join(dir, "worker.nk"), seed)
	return p
}

// StartLocked starts a server, shut down when the test ends, that requires
// TLS with a client certificate issued by p's CA, and p's user and
// password or p's NKey.
func StartLocked(t testing.TB, p PKI) *embednats.Server {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(p.Server.CertFile, p.Server.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(p.CA.Cert)
	srv, err := embednats.Start(embednats.Options{
		Dir:   t.TempDir(),
		Port:  embednats.RandomPort,
		TLS:   &tls.Config{Certificates: []tls.Certificate{pair}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert},
		Users: []embednats.User{{Name: p.User, Password: p.Password}},
		NKeys: []string{p.NKeyPublic},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	return srv
}

func writeSecret(t testing.TB, path string, data []byte) string {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
