package embednats

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/digitoll/digitoll-worker/internal/pkitest"
)

// secureServer starts a server that requires TLS with a client certificate
// issued by its CA, and a user/password or an NKey.
type secureServer struct {
	srv      *Server
	ca       *pkitest.CA
	client   *pkitest.Leaf
	seedFile string
}

func startSecure(t *testing.T) *secureServer {
	t.Helper()
	ca := pkitest.NewCA(t, "nats-ca")
	serverCert := ca.Issue(t, "nats-server", pkitest.LeafOptions{Server: true})
	client := ca.Issue(t, "worker", pkitest.LeafOptions{Client: true})
	pair, err := tls.LoadX509KeyPair(serverCert.CertFile, serverCert.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	user, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := user.Seed()
	pub, _ := user.PublicKey()
	seedFile := filepath.Join(t.TempDir(), "worker.nk")
	if err := os.WriteFile(seedFile, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	srv, err := Start(Options{
		Dir:   t.TempDir(),
		Port:  RandomPort,
		TLS:   &tls.Config{Certificates: []tls.Certificate{pair}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert},
		Users: []User{{Name: "worker", Password: "s3cret"}},
		NKeys: []string{pub},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	return &secureServer{srv: srv, ca: ca, client: client, seedFile: seedFile}
}

func TestSecureServerRequiresTLSClientCertAndAuth(t *testing.T) {
	s := startSecure(t)
	withTLS := []nats.Option{nats.RootCAs(s.ca.CertFile), nats.ClientCert(s.client.CertFile, s.client.KeyFile)}
	nkey, err := nats.NkeyOptionFromSeed(s.seedFile)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		opts    []nats.Option
		wantErr string // a regexp; empty: connects
	}{
		{"tls, client certificate and password", append(withTLS, nats.UserInfo("worker", "s3cret")), ""},
		{"tls, client certificate and nkey", append(withTLS, nkey), ""},
		{"without the CA", []nats.Option{nats.ClientCert(s.client.CertFile, s.client.KeyFile), nats.UserInfo("worker", "s3cret")}, "unknown authority"},
		{"tls without client certificate", []nats.Option{nats.RootCAs(s.ca.CertFile), nats.UserInfo("worker", "s3cret")},
			// TLS 1.3 refuses a missing client certificate after the
			// handshake: the client reads the alert, or finds the
			// connection closed first, depending on timing.
			"certificate|tls error: connection closed"},
		{"tls without credentials", withTLS, "authorization violation"},
		{"wrong password", append(withTLS, nats.UserInfo("worker", "guess")), "authorization violation"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nc, err := s.srv.Connect(append(tt.opts, nats.Timeout(5*time.Second))...)
			if tt.wantErr != "" {
				if err == nil {
					nc.Close()
					t.Fatal("connected, want a refusal")
				}
				if !regexp.MustCompile(tt.wantErr).MatchString(strings.ToLower(err.Error())) {
					t.Fatalf("err = %v, want it to mention %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(nc.Close)
			if !nc.TLSRequired() {
				t.Error("connection is not over TLS")
			}
			useJetStream(t, nc)
		})
	}
}

// An in-process connection skips TLS (nothing crosses a wire) but still
// authenticates. (A refused in-process connection is not tested: the
// client only notices after its 10 s read timeout.)
func TestInProcessConnectionSkipsTLS(t *testing.T) {
	s := startSecure(t)
	nc, err := nats.Connect("", nats.InProcessServer(s.srv), nats.UserInfo("worker", "s3cret"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	useJetStream(t, nc)
}

func TestSecurityOptionsAreChecked(t *testing.T) {
	ca := pkitest.NewCA(t, "ca")
	serverCert := ca.Issue(t, "server", pkitest.LeafOptions{Server: true})
	pair, err := tls.LoadX509KeyPair(serverCert.CertFile, serverCert.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"tls without certificate", Options{TLS: &tls.Config{}}, "no server certificate"},
		{"client certificates without CAs", Options{TLS: &tls.Config{Certificates: []tls.Certificate{pair}, ClientAuth: tls.RequireAndVerifyClientCert}}, "ClientCAs"},
		{"user without password", Options{Users: []User{{Name: "u"}}}, "password"},
		{"seed instead of public key", Options{NKeys: []string{"SUAM3ZQWHU2MMWQRTR4HVQD5MDQPKHUXPPPXFJXB2ZAJ6HM6GXBKRG3IWU"}}, "public user NKey"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.Dir = t.TempDir()
			tt.opts.Port = RandomPort
			s, err := Start(tt.opts)
			if err == nil {
				s.Shutdown()
				t.Fatal("started")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

func TestUserPrintsNoPassword(t *testing.T) {
	u := User{Name: "worker", Password: "s3cret"}
	for _, s := range []string{u.String(), u.GoString()} {
		if strings.Contains(s, "s3cret") || !strings.Contains(s, "worker") {
			t.Errorf("%q", s)
		}
	}
}

// useJetStream checks that an authenticated client has the server's
// JetStream.
func useJetStream(t *testing.T, nc *nats.Conn) {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: "S", Subjects: []string{"s.>"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "s.1", []byte("x")); err != nil {
		t.Fatal(err)
	}
}
