package main

import (
	"context"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/digitoll/digitoll-worker/app"
	"github.com/digitoll/digitoll-worker/auth"
	"github.com/digitoll/digitoll-worker/config"
	"github.com/digitoll/digitoll-worker/handlers"
	"github.com/digitoll/digitoll-worker/natsconn"
	"github.com/digitoll/digitoll-worker/toll"
)

// certWarning is how long before a certificate expires `config check`
// starts warning: Norwegian business certificates take days to renew.
const certWarning = 30 * 24 * time.Hour

// checkTimeout bounds each check that talks to a server.
const checkTimeout = 30 * time.Second

const configSynopsis = `check [--online] [flags]

Prints the effective settings of ` + "`digitoll run`" + ` (from the same flags and
variables) and checks them: the key and certificate files (readable, not
readable by others, parse, match, not expired), https endpoints in prod,
and NATS. With --online it also reads Maskinporten's metadata, gets a token
for every enabled kind's scope and calls Toll's test-auth.

Key material and passwords are never printed; their files are named.
Exit status: 0 when every check passes (warnings allowed), 1 otherwise.`

// errChecksFailed ends `config check` with exit status 1; the failed
// checks are printed already.
var errChecksFailed = errors.New("configuration check failed")

func runConfig(ctx context.Context, env *environment, args []string) error {
	if len(args) == 0 || args[0] != "check" {
		help := len(args) > 0 && (args[0] == "help" || args[0] == "-h" || args[0] == "--help" || args[0] == "-help")
		w := env.stderr
		if help {
			w = env.stdout
		}
		fmt.Fprintln(w, "Usage: digitoll config "+strings.SplitN(configSynopsis, "\n", 2)[0])
		fmt.Fprintln(w, "\nRun `digitoll config check --help` for the flags.")
		if help {
			return flag.ErrHelp
		}
		return errUsage
	}
	return runConfigCheck(ctx, env, args[1:])
}

func runConfigCheck(ctx context.Context, env *environment, args []string) error {
	fs := newFlagSet(env, "config", configSynopsis)
	online := fs.Bool("online", false, "also contact Maskinporten and Toll: metadata, a token per enabled kind and test-auth")
	prepareHelp(env, fs, args)
	cfg, err := config.Parse(fs, args, env.getenv)
	if errors.Is(err, config.ErrArgument) {
		fmt.Fprintln(env.stderr, err)
		fs.Usage()
		return errUsage
	}
	if cfg == nil {
		return parseError(err)
	}
	printSettings(env, fs, cfg)
	fmt.Fprintln(env.stdout, "\nChecks:")
	c := &checker{w: env.stdout, now: time.Now()}
	// The settings that do not parse and those that do not fit together
	// are reported all at once, as `digitoll run` reports them.
	if problems := config.Problems(config.JoinProblems(err, cfg.Validate())); len(problems) > 0 {
		for _, p := range problems {
			c.fail("settings", "%s", p)
		}
	} else {
		c.ok("settings", "consistent")
	}
	for _, w := range cfg.Ignored() {
		c.warn("settings", "%s", w)
	}
	for _, w := range unknownVariables(env) {
		c.warn("environment", "%s", w)
	}
	if cfg.TenantsFile != "" {
		// The tenants' keys and scopes are checked one tenant at a time.
		if ts, err := cfg.Tenants(); err == nil {
			c.ok("tenants", "%d in %s; check each with `digitoll tenants check NAME`", len(ts), cfg.TenantsFile)
		}
		c.endpoints(cfg)
		c.natsSettings(cfg.NATS)
		c.natsServer(ctx, cfg.NATS)
		if *online {
			c.skip("tokens", "per tenant: `digitoll tenants check NAME`")
		}
		return c.result()
	}
	signer := c.tenant(cfg)
	c.endpoints(cfg)
	c.natsSettings(cfg.NATS)
	c.natsServer(ctx, cfg.NATS)
	if *online {
		c.online(ctx, cfg, signer)
	}
	return c.result()
}

// printSettings prints every setting's effective value and where it came
// from.
func printSettings(env *environment, fs *flag.FlagSet, cfg *config.Config) {
	onCommandLine := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { onCommandLine[f.Name] = true })
	fmt.Fprintln(env.stdout, "Effective settings (secrets stay in the files named; passwords in URLs are masked):")
	tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	for _, s := range config.Settings() {
		v := s.Value(cfg)
		source := ""
		switch {
		case onCommandLine[s.Flag]:
			source = "flag --" + s.Flag
		case env.getenv(s.Env) != "":
			source = "environment"
		case cfg.BorrowedFrom(s.Env) != "":
			source = "from " + cfg.BorrowedFrom(s.Env)
		case s.Default != "":
			source = "default"
		case v != "":
			source = "default of DIGITOLL_ENV=" + string(cfg.Env)
		}
		if v == "" {
			v = "-"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", s.Env, v, source)
	}
	tw.Flush()
}

// checker prints one line per check and counts the outcomes.
type checker struct {
	w                      io.Writer
	now                    time.Time
	passed, warned, failed int
}

func (c *checker) line(mark, name, format string, args ...any) {
	fmt.Fprintf(c.w, "  %s %-18s %s\n", mark, name, fmt.Sprintf(format, args...))
}

func (c *checker) ok(name, format string, args ...any) {
	c.passed++
	c.line("✓", name, format, args...)
}

func (c *checker) warn(name, format string, args ...any) {
	c.warned++
	c.line("!", name, format, args...)
}

func (c *checker) fail(name, format string, args ...any) {
	c.failed++
	c.line("✗", name, format, args...)
}

func (c *checker) skip(name, format string, args ...any) { c.line("-", name, format, args...) }

// result prints the tally and gives the command's outcome.
func (c *checker) result() error {
	fmt.Fprintf(c.w, "\n%d passed, %d warnings, %d failed\n", c.passed, c.warned, c.failed)
	if c.failed > 0 {
		return fmt.Errorf("%w: %d of %d checks failed", errChecksFailed, c.failed, c.passed+c.warned+c.failed)
	}
	return nil
}

// secretFile checks that a file holding a secret can be read by the
// worker and by nobody else: readable by everyone fails (as it stops
// `digitoll run`), by the group warns. It reports whether the file is
// readable.
func (c *checker) secretFile(name, env, path string) bool {
	mode, group, err := config.PrivateFile(path)
	switch {
	case err != nil && mode == 0: // cannot be read
		c.fail(name, "%s: %v", env, err)
		return false
	case err != nil: // readable, by everyone
		c.fail(name, "%s: %v", env, err)
	case runtime.GOOS == "windows":
		c.ok(name, "%s: %s readable (permissions not checked on Windows)", env, path)
	case group:
		c.warn(name, "%s: %s is readable by its group (mode %04o): chmod 600 %s unless the group is only the worker", env, path, mode, path)
	default:
		c.ok(name, "%s: %s readable, mode %04o", env, path, mode)
	}
	return true
}

// tenant checks the integration's key and certificate files and returns
// the signer they make, or nil when they do not make one.
func (c *checker) tenant(cfg *config.Config) *auth.Signer {
	t := cfg.Tenant
	var key *rsa.PrivateKey
	var chain []*x509.Certificate
	switch {
	case t.P12File != "":
		if !c.secretFile("PKCS#12 file", "DIGITOLL_P12_FILE", t.P12File) {
			return nil
		}
		password := ""
		if t.P12PasswordFile != "" {
			if !c.secretFile("PKCS#12 password", "DIGITOLL_P12_PASSWORD_FILE", t.P12PasswordFile) {
				return nil
			}
			b, err := os.ReadFile(t.P12PasswordFile)
			if err != nil {
				c.fail("PKCS#12 password", "DIGITOLL_P12_PASSWORD_FILE: %v", err)
				return nil
			}
			password = strings.TrimRight(string(b), "\r\n")
		}
		k, ch, err := auth.LoadPKCS12(t.P12File, password)
		if err != nil {
			c.fail("key", "DIGITOLL_P12_FILE: %v", err)
			return nil
		}
		key, chain = k, ch
	case t.KeyFile == "":
		c.fail("key", "DIGITOLL_KEY_FILE (or DIGITOLL_P12_FILE) is not set")
		return nil
	default:
		if !c.secretFile("key file", "DIGITOLL_KEY_FILE", t.KeyFile) {
			return nil
		}
		k, err := auth.LoadPEMKey(t.KeyFile)
		if err != nil {
			c.fail("key", "DIGITOLL_KEY_FILE: %v", err)
			return nil
		}
		key = k
		if t.KeyID != "" {
			break
		}
		if t.CertFile == "" {
			c.fail("certificate", "set DIGITOLL_KEY_ID (registered key) or DIGITOLL_CERT_FILE (business certificate)")
			return nil
		}
		ch, err := auth.LoadPEMCertificates(t.CertFile)
		if err != nil {
			c.fail("certificate", "DIGITOLL_CERT_FILE: %v", err)
			return nil
		}
		chain = ch
	}
	c.ok("key", "RSA %d bits, public key SHA-256 %s", key.N.BitLen(), publicKeyFingerprint(key))
	if chain == nil {
		s, err := auth.NewKeySigner(key, t.KeyID)
		if err != nil {
			c.fail("key id", "DIGITOLL_KEY_ID: %v", err)
			return nil
		}
		c.ok("mode", "kid %q: the public key above must be registered under this kid on integration %s", t.KeyID, t.ClientID)
		return s
	}
	s, err := auth.NewCertSigner(key, chain)
	if err != nil {
		c.fail("certificate", "%v", err)
		return nil
	}
	c.ok("certificate", "%s matches the key (x5c with %d certificate(s))", chain[0].Subject, len(chain))
	c.chain(chain, t.Foreign)
	return s
}

// chain checks that each certificate is valid now and for a while, that
// each is issued by the next, and that foreign businesses send more than
// the leaf.
func (c *checker) chain(chain []*x509.Certificate, foreign bool) {
	for i, cert := range chain {
		name := "certificate"
		if i > 0 {
			name = fmt.Sprintf("issuer %d", i)
		}
		left := cert.NotAfter.Sub(c.now)
		switch {
		case c.now.Before(cert.NotBefore):
			c.fail(name, "%s is not valid before %s", cert.Subject, cert.NotBefore.UTC().Format(time.RFC3339))
		case left <= 0:
			c.fail(name, "%s expired on %s", cert.Subject, cert.NotAfter.UTC().Format(time.RFC3339))
		case left < certWarning:
			c.warn(name, "%s expires on %s, in %d days: renew it now", cert.Subject, cert.NotAfter.UTC().Format(time.DateOnly), int(left.Hours()/24))
		default:
			c.ok(name, "%s valid until %s (%d days)", cert.Subject, cert.NotAfter.UTC().Format(time.DateOnly), int(left.Hours()/24))
		}
		if i+1 < len(chain) {
			if err := cert.CheckSignatureFrom(chain[i+1]); err != nil {
				c.fail("chain", "certificate %d (%s) is not issued by certificate %d (%s): put the chain in order, leaf first", i, cert.Subject, i+1, chain[i+1].Subject)
			}
		}
	}
	if foreign {
		if len(chain) < 2 {
			c.fail("chain", "foreign businesses (DIGITOLL_FOREIGN) must send the whole chain: add the issuing CA certificates after the leaf")
		} else {
			c.ok("chain", "%d certificates, as foreign businesses must send (toll:eu/ scopes)", len(chain))
		}
	}
}

func publicKeyFingerprint(key *rsa.PrivateKey) string {
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return "(unavailable)"
	}
	sum := sha256.Sum256(der)
	return fmt.Sprintf("%x", sum[:8])
}

// endpoints checks that prod uses https, and says where tokens come from.
func (c *checker) endpoints(cfg *config.Config) {
	for _, u := range []struct{ env, url string }{
		{"DIGITOLL_MASKINPORTEN_ISSUER", cfg.Maskinporten.Issuer},
		{"DIGITOLL_MASKINPORTEN_TOKEN_URL", cfg.Maskinporten.TokenURL},
		{"DIGITOLL_TOLL_BASE_URL", cfg.TollBaseURL},
	} {
		switch {
		case strings.HasPrefix(u.url, "https://"):
			c.ok("endpoint", "%s: %s", u.env, u.url)
		case cfg.Env == config.EnvProd:
			c.fail("endpoint", "%s: %s: prod refuses plain http", u.env, u.url)
		case cfg.Env == config.EnvSim:
			c.ok("endpoint", "%s: %s (simulator)", u.env, u.url)
		default:
			c.warn("endpoint", "%s: %s is plain http", u.env, u.url)
		}
	}
	if cfg.Maskinporten.Discovery {
		c.ok("token endpoint", "read from %s%s, %s as fallback", cfg.Maskinporten.Issuer, auth.MetadataPath, cfg.Maskinporten.TokenURL)
	} else {
		c.ok("token endpoint", "%s (discovery off)", cfg.Maskinporten.TokenURL)
	}
}

// natsSettings checks the files of the NATS settings that hold secrets,
// and warns about traffic that leaves the machine unencrypted.
func (c *checker) natsSettings(n config.NATS) {
	for _, f := range []struct{ name, env, path string }{
		{"NATS credentials", "DIGITOLL_NATS_CREDS_FILE", n.CredsFile},
		{"NATS NKey seed", "DIGITOLL_NATS_NKEY_FILE", n.NKeyFile},
		{"NATS password", "DIGITOLL_NATS_PASSWORD_FILE", n.PasswordFile},
		{"NATS client key", "DIGITOLL_NATS_KEY_FILE", n.KeyFile},
		{"NATS server key", "DIGITOLL_NATS_SERVER_KEY_FILE", n.ServerKeyFile},
	} {
		if f.path != "" {
			c.secretFile(f.name, f.env, f.path)
		}
	}
	if n.URL == "" {
		if !config.IsLoopback(n.EmbeddedHost) && n.ServerCertFile == "" {
			c.warn("NATS TLS", "the embedded server listens on %s without TLS: set DIGITOLL_NATS_SERVER_CERT_FILE and DIGITOLL_NATS_SERVER_KEY_FILE", n.EmbeddedHost)
		}
		return
	}
	if n.CAFile == "" && n.CertFile == "" && !strings.Contains(n.URL, "tls://") && !allLoopback(n.URL) {
		c.warn("NATS TLS", "%s is reached without TLS: set DIGITOLL_NATS_CA_FILE (or use tls://) unless the network is private", natsconn.RedactURL(n.URL))
	}
}

// allLoopback tells whether every server of a NATS URL list is on this
// machine.
func allLoopback(list string) bool {
	for _, p := range strings.Split(list, ",") {
		p = strings.TrimSpace(p)
		if i := strings.Index(p, "://"); i >= 0 {
			p = p[i+3:]
		}
		if i := strings.LastIndex(p, "@"); i >= 0 {
			p = p[i+1:]
		}
		host := p
		if i := strings.LastIndex(p, ":"); i >= 0 && !strings.HasSuffix(p, "]") {
			host = p[:i]
		}
		if !config.IsLoopback(strings.Trim(host, "[]")) {
			return false
		}
	}
	return true
}

// natsServer connects to the configured NATS server and checks that it
// has JetStream. The embedded server is not started (the worker may be
// running it): its store directory is checked instead.
func (c *checker) natsServer(ctx context.Context, n config.NATS) {
	if n.URL == "" {
		if err := writableDir(n.EmbeddedDir); err != nil {
			c.fail("NATS", "DIGITOLL_NATS_DIR: %v", err)
			return
		}
		c.ok("NATS", "embedded server on %s:%d, store %s writable", orDefault(n.EmbeddedHost, "127.0.0.1"), n.EmbeddedPort, n.EmbeddedDir)
		return
	}
	conn, err := natsconn.Connect(n, "digitoll-config-check", slog.New(slog.DiscardHandler))
	if err != nil {
		c.fail("NATS", "%v", err)
		return
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	if _, err := conn.JS.AccountInfo(ctx); err != nil {
		c.fail("NATS", "connected to %s, but JetStream is not available: %v", conn.NC.ConnectedUrlRedacted(), err)
		return
	}
	tls := "without TLS"
	if conn.NC.TLSRequired() {
		tls = "over TLS"
	}
	c.ok("NATS", "connected to %s %s (server %s), JetStream available", conn.NC.ConnectedUrlRedacted(), tls, conn.NC.ConnectedServerVersion())
}

// writableDir checks that files can be made in dir or, when it does not
// exist yet, in the nearest directory above it (where the worker will
// create it). It leaves nothing behind.
func writableDir(dir string) error {
	at := filepath.Clean(dir)
	for range 64 {
		info, err := os.Stat(at)
		if err == nil {
			if !info.IsDir() {
				return fmt.Errorf("%s is not a directory", at)
			}
			f, err := os.CreateTemp(at, ".digitoll-config-check-*")
			if err != nil {
				return fmt.Errorf("cannot create files in %s: %w", at, errors.Unwrap(err))
			}
			name := f.Name()
			f.Close()
			return os.Remove(name)
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		parent := filepath.Dir(at)
		if parent == at {
			break
		}
		at = parent
	}
	return fmt.Errorf("no existing directory above %s", dir)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// online reads Maskinporten's metadata and probes every enabled kind the
// way a paused kind is probed: a token for its scope, and Toll's test-auth
// where the API has one.
func (c *checker) online(ctx context.Context, cfg *config.Config, signer *auth.Signer) {
	hc := app.HTTPClient(cfg.Worker)
	mctx, cancel := context.WithTimeout(ctx, checkTimeout)
	md, err := auth.Discover(mctx, hc, cfg.Maskinporten.Issuer)
	cancel()
	switch {
	case err != nil:
		c.fail("metadata", "%v", err)
	case md.TokenEndpoint != cfg.Maskinporten.TokenURL && cfg.Maskinporten.Discovery:
		c.warn("metadata", "token endpoint %s differs from DIGITOLL_MASKINPORTEN_TOKEN_URL %s; the worker uses the metadata's", md.TokenEndpoint, cfg.Maskinporten.TokenURL)
	case md.TokenEndpoint != cfg.Maskinporten.TokenURL:
		c.warn("metadata", "token endpoint %s differs from DIGITOLL_MASKINPORTEN_TOKEN_URL %s, which the worker uses (discovery off)", md.TokenEndpoint, cfg.Maskinporten.TokenURL)
	default:
		c.ok("metadata", "issuer %s, token endpoint %s", md.Issuer, md.TokenEndpoint)
	}
	if signer == nil {
		c.skip("tokens", "skipped: the key or certificate failed its checks")
		return
	}
	client, err := app.NewTollClient(cfg, hc, slog.New(slog.DiscardHandler))
	if err != nil {
		c.fail("tokens", "%v", err)
		return
	}
	if closer, ok := client.Tokens.(interface{ Close() }); ok {
		defer closer.Close()
	}
	hs, err := app.NewHandlers(cfg, nil, client, nil, app.Telemetry{}, slog.New(slog.DiscardHandler))
	if err != nil {
		c.fail("tokens", "%v", err)
		return
	}
	for _, k := range cfg.Tenant.Kinds {
		p, ok := hs[k].(interface{ Probe(context.Context) error })
		if !ok {
			c.skip(string(k), "no probe for this kind")
			continue
		}
		spec, _ := handlers.KindOf(k)
		scope := toll.Scope(cfg.Tenant.Foreign, spec.API.ScopeBase)
		pctx, cancel := context.WithTimeout(ctx, checkTimeout)
		err := p.Probe(pctx)
		cancel()
		if err != nil {
			c.fail(string(k), "%v", err)
			continue
		}
		if spec.TestAuth {
			c.ok(string(k), "token for %s, and Toll's test-auth accepts it", scope)
		} else {
			c.ok(string(k), "token for %s", scope)
		}
	}
}
