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
// "" for unset) and checks them as Load would. Without a URL, the server
// is found as the worker finds it (NATS_URL, then the selected nats
// context, read through getenv) and else at DefaultNATSURL: a client
// command starting an embedded server of its own would find none of the
// worker's messages.
func ParseNATS(value func(env string) string, getenv func(string) string) (NATS, error) {
	c := &Config{}
	given := map[string]bool{}
	for _, s := range NATSClientSettings() {
		v := strings.TrimSpace(value(s.Env))
		if v == "" {
			continue
		}
		if s.Env == "DIGITOLL_NATS_URL" && v == EmbeddedNATS {
			return NATS{}, &SettingError{Env: s.Env, Flag: s.Flag, Problem: "the worker's embedded server is reached at its URL (nats://127.0.0.1:4222 unless DIGITOLL_NATS_HOST or DIGITOLL_NATS_PORT say otherwise)"}
		}
		given[s.Env] = true
		if err := s.set(c, v); err != nil {
			return NATS{}, &SettingError{Env: s.Env, Flag: s.Flag, Problem: err.Error()}
		}
	}
	if c.NATS.URL != "" {
		c.NATS.Source = "DIGITOLL_NATS_URL"
	} else {
		if err := c.NATS.fromEcosystem(getenv, func(env string) bool { return given[env] }); err != nil {
			return NATS{}, err
		}
		if c.NATS.URL == "" {
			c.NATS.URL = DefaultNATSURL
		}
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
		return &SettingError{Env: env, Problem: fmt.Sprintf(format, args...)}
	}
	var errs []error
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
		errs = append(errs, bad(ways[0], "set one way to authenticate to NATS, not %s", strings.Join(ways, " and ")))
	}
	if (n.User == "") != (n.PasswordFile == "" && n.Password == "") {
		errs = append(errs, bad("DIGITOLL_NATS_PASSWORD_FILE", "DIGITOLL_NATS_USER and DIGITOLL_NATS_PASSWORD_FILE go together"))
	}
	if (n.CertFile == "") != (n.KeyFile == "") {
		errs = append(errs, bad("DIGITOLL_NATS_KEY_FILE", "DIGITOLL_NATS_CERT_FILE and DIGITOLL_NATS_KEY_FILE go together"))
	}
	if (n.ServerCertFile == "") != (n.ServerKeyFile == "") {
		errs = append(errs, bad("DIGITOLL_NATS_SERVER_KEY_FILE", "DIGITOLL_NATS_SERVER_CERT_FILE and DIGITOLL_NATS_SERVER_KEY_FILE go together"))
	}
	for _, f := range natsFiles(n) {
		if f.path == "" {
			continue
		}
		check := readable
		if f.secret {
			check = func(path string) error { _, _, err := PrivateFile(path); return err }
		}
		if err := check(f.path); err != nil {
			errs = append(errs, bad(f.env, "%v", err))
		}
	}
	if n.URL != "" {
		if n.ServerCertFile != "" {
			errs = append(errs, bad("DIGITOLL_NATS_SERVER_CERT_FILE", "is for the embedded server, which DIGITOLL_NATS_URL turns off"))
		}
		return joinProblems(errs...)
	}
	if n.EmbeddedDir == "" {
		errs = append(errs, bad("DIGITOLL_NATS_DIR", "is required for the embedded server"))
	}
	if n.CredsFile != "" {
		errs = append(errs, bad("DIGITOLL_NATS_CREDS_FILE", "a credentials file is for a NATS server with an operator; the embedded server takes DIGITOLL_NATS_USER or DIGITOLL_NATS_NKEY_FILE"))
	}
	if !IsLoopback(n.EmbeddedHost) && n.User == "" && n.NKeyFile == "" {
		errs = append(errs, bad("DIGITOLL_NATS_HOST", "%q opens the embedded server beyond this machine: set DIGITOLL_NATS_USER and DIGITOLL_NATS_PASSWORD_FILE, or DIGITOLL_NATS_NKEY_FILE, so that it requires authentication", n.EmbeddedHost))
	}
	return joinProblems(errs...)
}

// natsFile is a file a NATS setting names; secret ones must not be
// readable by everyone.
type natsFile struct {
	env, path string
	secret    bool
}

// natsFiles lists the files of n's settings.
func natsFiles(n NATS) []natsFile {
	return []natsFile{
		{"DIGITOLL_NATS_CREDS_FILE", n.CredsFile, true},
		{"DIGITOLL_NATS_NKEY_FILE", n.NKeyFile, true},
		{"DIGITOLL_NATS_PASSWORD_FILE", n.PasswordFile, true},
		{"DIGITOLL_NATS_CA_FILE", n.CAFile, false},
		{"DIGITOLL_NATS_CERT_FILE", n.CertFile, false},
		{"DIGITOLL_NATS_KEY_FILE", n.KeyFile, true},
		{"DIGITOLL_NATS_SERVER_CERT_FILE", n.ServerCertFile, false},
		{"DIGITOLL_NATS_SERVER_KEY_FILE", n.ServerKeyFile, true},
	}
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
