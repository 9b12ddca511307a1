package natsconn

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/digitoll/digitoll-worker/config"
	"github.com/digitoll/digitoll-worker/embednats"
)

// security returns the options that authenticate and, for a server
// elsewhere, encrypt a connection as c says. A connection to the embedded
// server of this process goes in-process: it crosses no network and so
// needs no TLS, but it authenticates like any other client.
func security(c config.NATS, embedded *embednats.Server) ([]nats.Option, error) {
	var opts []nats.Option
	switch {
	case c.CredsFile != "":
		opts = append(opts, nats.UserCredentials(c.CredsFile))
	case c.NKeyFile != "":
		o, err := nats.NkeyOptionFromSeed(c.NKeyFile)
		if err != nil {
			return nil, fmt.Errorf("DIGITOLL_NATS_NKEY_FILE: %w", err)
		}
		opts = append(opts, o)
	case c.User != "":
		password := c.Password // from a nats context
		if password == "" {
			p, err := readSecretFile(c.PasswordFile)
			if err != nil {
				return nil, fmt.Errorf("DIGITOLL_NATS_PASSWORD_FILE: %w", err)
			}
			password = p
		}
		opts = append(opts, nats.UserInfo(c.User, password))
	case c.Token != "": // from a nats context
		opts = append(opts, nats.Token(c.Token))
	}
	if embedded != nil {
		return append(opts, inProcess(embedded)), nil
	}
	tc, err := clientTLS(c)
	if err != nil {
		return nil, err
	}
	if tc != nil {
		opts = append(opts, nats.Secure(tc))
	}
	return opts, nil
}

// inProcess connects to srv without the network. The URL the connection
// names is then only a label; it is given the nats:// scheme, since a
// tls:// URL would make the client start TLS on a connection that crosses
// no wire (and that the server accepts without TLS).
func inProcess(srv *embednats.Server) nats.Option {
	return func(o *nats.Options) error {
		o.InProcessServer = srv
		o.Url = ""
		o.Servers = []string{strings.Replace(srv.ClientURL(), "tls://", "nats://", 1)}
		return nil
	}
}

// clientTLS is the TLS configuration of a client connection: the CA
// that issued the server's certificate (the system's roots without one)
// and a client certificate. It is nil, meaning whatever the URL and the
// server ask for, when neither is configured.
func clientTLS(c config.NATS) (*tls.Config, error) {
	if c.CAFile == "" && c.CertFile == "" {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.CAFile != "" {
		pool, err := loadCAPool(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("DIGITOLL_NATS_CA_FILE: %w", err)
		}
		tc.RootCAs = pool
	}
	if c.CertFile != "" {
		pair, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("DIGITOLL_NATS_CERT_FILE and DIGITOLL_NATS_KEY_FILE: %w", err)
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	return tc, nil
}

// embeddedOptions are the options of the embedded server: where it
// listens and its store, and its security. With a user or an NKey
// configured it requires authentication, and the worker's own connection
// presents the same credentials; with a server certificate it requires
// TLS from other processes, and with a CA too, their client certificates.
func embeddedOptions(c config.NATS, logger *slog.Logger) (embednats.Options, error) {
	opts := embednats.Options{
		Dir:        c.EmbeddedDir,
		Host:       c.EmbeddedHost,
		Port:       c.EmbeddedPort,
		SyncAlways: c.SyncAlways,
		Logger:     logger.With("component", "nats-server"),
	}
	switch {
	case c.NKeyFile != "":
		pub, err := publicNKey(c.NKeyFile)
		if err != nil {
			return embednats.Options{}, fmt.Errorf("DIGITOLL_NATS_NKEY_FILE: %w", err)
		}
		opts.NKeys = []string{pub}
	case c.User != "":
		password, err := readSecretFile(c.PasswordFile)
		if err != nil {
			return embednats.Options{}, fmt.Errorf("DIGITOLL_NATS_PASSWORD_FILE: %w", err)
		}
		opts.Users = []embednats.User{{Name: c.User, Password: password}}
	}
	if c.ServerCertFile != "" {
		pair, err := tls.LoadX509KeyPair(c.ServerCertFile, c.ServerKeyFile)
		if err != nil {
			return embednats.Options{}, fmt.Errorf("DIGITOLL_NATS_SERVER_CERT_FILE and DIGITOLL_NATS_SERVER_KEY_FILE: %w", err)
		}
		opts.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
		if c.CAFile != "" {
			pool, err := loadCAPool(c.CAFile)
			if err != nil {
				return embednats.Options{}, fmt.Errorf("DIGITOLL_NATS_CA_FILE: %w", err)
			}
			opts.TLS.ClientCAs = pool
			opts.TLS.ClientAuth = tls.RequireAndVerifyClientCert
		}
	}
	return opts, nil
}

// publicNKey reads a user seed and returns its public key, which is all
// the server needs to know.
func publicNKey(seedFile string) (string, error) {
	b, err := os.ReadFile(seedFile)
	if err != nil {
		return "", err
	}
	defer clear(b)
	kp, err := nkeys.ParseDecoratedNKey(b)
	if err != nil {
		return "", fmt.Errorf("%s holds no NKey seed: %w", seedFile, err)
	}
	defer kp.Wipe()
	pub, err := kp.PublicKey()
	if err != nil {
		return "", err
	}
	if !nkeys.IsValidPublicUserKey(pub) {
		return "", fmt.Errorf("%s holds a seed that is not a user NKey (SU…)", seedFile)
	}
	return pub, nil
}

// readSecretFile reads a password from a file, without the line end an
// editor or `echo` adds.
func readSecretFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	s := strings.TrimRight(string(b), "\r\n")
	if s == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return s, nil
}

func loadCAPool(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return pool, nil
}

// hint says which settings to look at when NATS refused a connection,
// or "" when the error is not about security.
func hint(err error) string {
	var unknownCA x509.UnknownAuthorityError
	var badHost x509.HostnameError
	var op *net.OpError
	switch {
	case errors.Is(err, nats.ErrAuthorization), errors.Is(err, nats.ErrAuthExpired), errors.Is(err, nats.ErrAuthRevoked):
		return " (the server refused the credentials: check DIGITOLL_NATS_USER and DIGITOLL_NATS_PASSWORD_FILE, DIGITOLL_NATS_NKEY_FILE or DIGITOLL_NATS_CREDS_FILE)"
	case errors.Is(err, nats.ErrSecureConnRequired):
		return " (the server requires TLS: set DIGITOLL_NATS_CA_FILE, or use a tls:// URL)"
	case errors.Is(err, nats.ErrSecureConnWanted):
		return " (TLS is configured but the server does not offer it)"
	case errors.As(err, &unknownCA):
		return " (the server's certificate was not issued by a CA in DIGITOLL_NATS_CA_FILE)"
	case errors.As(err, &badHost):
		return " (the server's certificate does not name the host in DIGITOLL_NATS_URL)"
	case errors.Is(err, nats.ErrTLS), errors.As(err, &op) && op.Op == "remote error":
		// A TLS alert from the server arrives as a "remote error".
		return " (TLS failed: check DIGITOLL_NATS_CA_FILE, and DIGITOLL_NATS_CERT_FILE and DIGITOLL_NATS_KEY_FILE if the server requires client certificates)"
	}
	return ""
}
