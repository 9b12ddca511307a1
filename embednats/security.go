package embednats

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
)

// tlsTimeout is how long the server gives a client for the TLS handshake;
// the server's own default (0.5 s) is short for a loaded machine verifying
// a client certificate chain.
const tlsTimeout = 2.0

// User is a user name and password the server accepts.
type User struct {
	Name     string
	Password string
}

// String leaves the password out, so that printing Options by accident
// leaks nothing.
func (u User) String() string { return "embednats.User{" + u.Name + "}" }

// GoString keeps %#v from printing the password.
func (u User) GoString() string { return u.String() }

// applySecurity copies the TLS and authentication settings of opts into
// the server's options, refusing the ones that would make a server that is
// open when the caller meant it to be closed.
func applySecurity(sopts *server.Options, opts Options) error {
	if opts.TLS != nil {
		if len(opts.TLS.Certificates) == 0 && opts.TLS.GetCertificate == nil {
			return errors.New("embednats: Options.TLS has no server certificate")
		}
		verify := opts.TLS.ClientAuth == tls.RequireAndVerifyClientCert
		if verify && opts.TLS.ClientCAs == nil {
			return errors.New("embednats: Options.TLS requires client certificates but names no ClientCAs to verify them")
		}
		cfg := opts.TLS.Clone()
		if cfg.MinVersion < tls.VersionTLS12 {
			cfg.MinVersion = tls.VersionTLS12
		}
		sopts.TLSConfig = cfg
		sopts.TLS = true
		sopts.TLSVerify = verify
		sopts.TLSTimeout = tlsTimeout
	}
	for i, u := range opts.Users {
		if u.Name == "" || u.Password == "" {
			return fmt.Errorf("embednats: Options.Users[%d] needs a name and a password", i)
		}
		sopts.Users = append(sopts.Users, &server.User{Username: u.Name, Password: u.Password})
	}
	for _, k := range opts.NKeys {
		if !nkeys.IsValidPublicUserKey(k) {
			return fmt.Errorf("embednats: Options.NKeys: %q is not a public user NKey (U…)", k)
		}
		sopts.Nkeys = append(sopts.Nkeys, &server.NkeyUser{Nkey: k})
	}
	return nil
}

// InProcessConn opens a connection to the server that does not go through
// the network: pass the Server to nats.InProcessServer. The server skips
// TLS for it (nothing travels over a wire) but still authenticates it.
func (s *Server) InProcessConn() (net.Conn, error) { return s.ns.InProcessConn() }
