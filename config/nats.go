package config

import (
	"fmt"
	"net"
	"slices"
	"strings"
)

// natsClientSettings are the variables of the settings a NATS client
// needs: where the server is, how to authenticate, and TLS.
var natsClientSettings = []string{
	"DIGITOLL_NATS_URL", "DIGITOLL_NATS_CREDS_FILE", "DIGITOLL_NATS_NKEY_FILE", "DIGITOLL_NATS_USER",
	"DIGITOLL_NATS_PASSWORD_FILE", "DIGITOLL_NATS_CA_FILE", "DIGITOLL_NATS_CERT_FILE", "DIGITOLL_NATS_KEY_FILE",
}

// NATSClientSettings are the settings of a connection to a running NATS
// server (URL, credentials, TLS), for the commands that talk to the
// worker's server rather than run one: publish, results, dlq.
func NATSClientSettings() []Setting {
	var out []Setting
	for _, s := range Settings() {
		if slices.Contains(natsClientSettings, s.Env) {
			out = append(out, s)
		}
	}
	return out
}

// ParseNATS reads the NATS client settings from value (by variable name,
// "" for unset) and checks them as Load would. The URL is required: a
// client command starting an embedded server of its own would find none
// of the worker's messages.
func ParseNATS(value func(env string) string) (NATS, error) {
	c := &Config{}
	for _, s := range NATSClientSettings() {
		v := strings.TrimSpace(value(s.Env))
		if v == "" {
			continue
		}
		if err := s.set(c, v); err != nil {
			return NATS{}, fmt.Errorf("%w: %s (--%s): %v", ErrInvalid, s.Env, s.Flag, err)
		}
	}
	if c.NATS.URL == "" {
		return NATS{}, fmt.Errorf("%w: --nats-url is empty ($DIGITOLL_NATS_URL): name the server the worker uses", ErrInvalid)
	}
	if err := c.NATS.validate(); err != nil {
		return NATS{}, err
	}
	return c.NATS, nil
}

// validate checks the NATS settings that depend on each other: one way to
// authenticate, files that exist, and an embedded server that is not open
// to the network without authentication.
func (n NATS) validate() error {
	bad := func(env, format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrInvalid, env, fmt.Sprintf(format, args...))
	}
	var ways []string
	for env, v := range map[string]string{
		"DIGITOLL_NATS_CREDS_FILE": n.CredsFile,
		"DIGITOLL_NATS_NKEY_FILE":  n.NKeyFile,
		"DIGITOLL_NATS_USER":       n.User,
	} {
		if v != "" {
			ways = append(ways, env)
		}
	}
	slices.Sort(ways)
	if len(ways) > 1 {
		return bad(ways[0], "set one way to authenticate to NATS, not %s", strings.Join(ways, " and "))
	}
	if (n.User == "") != (n.PasswordFile == "") {
		return bad("DIGITOLL_NATS_PASSWORD_FILE", "DIGITOLL_NATS_USER and DIGITOLL_NATS_PASSWORD_FILE go together")
	}
	if (n.CertFile == "") != (n.KeyFile == "") {
		return bad("DIGITOLL_NATS_KEY_FILE", "DIGITOLL_NATS_CERT_FILE and DIGITOLL_NATS_KEY_FILE go together")
	}
	if (n.ServerCertFile == "") != (n.ServerKeyFile == "") {
		return bad("DIGITOLL_NATS_SERVER_KEY_FILE", "DIGITOLL_NATS_SERVER_CERT_FILE and DIGITOLL_NATS_SERVER_KEY_FILE go together")
	}
	for _, f := range []struct{ env, path string }{
		{"DIGITOLL_NATS_CREDS_FILE", n.CredsFile},
		{"DIGITOLL_NATS_NKEY_FILE", n.NKeyFile},
		{"DIGITOLL_NATS_PASSWORD_FILE", n.PasswordFile},
		{"DIGITOLL_NATS_CA_FILE", n.CAFile},
		{"DIGITOLL_NATS_CERT_FILE", n.CertFile},
		{"DIGITOLL_NATS_KEY_FILE", n.KeyFile},
		{"DIGITOLL_NATS_SERVER_CERT_FILE", n.ServerCertFile},
		{"DIGITOLL_NATS_SERVER_KEY_FILE", n.ServerKeyFile},
	} {
		if f.path == "" {
			continue
		}
		if err := readable(f.path); err != nil {
			return bad(f.env, "%v", err)
		}
	}
	if n.URL != "" {
		if n.ServerCertFile != "" {
			return bad("DIGITOLL_NATS_SERVER_CERT_FILE", "is for the embedded server, which DIGITOLL_NATS_URL turns off")
		}
		return nil
	}
	if n.EmbeddedDir == "" {
		return bad("DIGITOLL_NATS_DIR", "is required for the embedded server")
	}
	if n.CredsFile != "" {
		return bad("DIGITOLL_NATS_CREDS_FILE", "a credentials file is for a NATS server with an operator; the embedded server takes DIGITOLL_NATS_USER or DIGITOLL_NATS_NKEY_FILE")
	}
	if !IsLoopback(n.EmbeddedHost) && n.User == "" && n.NKeyFile == "" {
		return bad("DIGITOLL_NATS_HOST", "%q opens the embedded server beyond this machine: set DIGITOLL_NATS_USER and DIGITOLL_NATS_PASSWORD_FILE, or DIGITOLL_NATS_NKEY_FILE, so that it requires authentication", n.EmbeddedHost)
	}
	return nil
}

// IsLoopback tells whether host (a name or an address) is reachable only
// from this machine: "localhost" or a loopback address. The empty host is
// the embedded server's default, 127.0.0.1.
func IsLoopback(host string) bool {
	if host == "" || host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
