package config

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/digitoll/digitoll-worker/contract"
)

// ErrInvalid is wrapped by every validation error Load returns.
var ErrInvalid = errors.New("invalid configuration")

// ErrArgument is returned by Load for a positional argument: the worker's
// settings are all flags or variables.
var ErrArgument = errors.New("unexpected argument")

// Load reads the settings from getenv, lets flags in args override them,
// fills the defaults that depend on the environment and validates the
// result. fs receives one flag per setting; its usage output therefore
// documents every setting. Errors name the variable and the flag.
func Load(fs *flag.FlagSet, args []string, getenv func(string) string) (*Config, error) {
	c, err := Parse(fs, args, getenv)
	if err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// Parse is Load without Validate: each setting is read and checked on its
// own and the defaults that depend on the environment are filled in, but
// the settings that depend on each other (and the files they name) are not
// checked. `digitoll config check` uses it to report every problem of a
// configuration, not only the first.
func Parse(fs *flag.FlagSet, args []string, getenv func(string) string) (*Config, error) {
	settings := Settings()
	flags := make(map[string]*string, len(settings))
	for _, s := range settings {
		v := s.Default
		if e := getenv(s.Env); e != "" {
			v = e
		}
		flags[s.Env] = fs.String(s.Flag, v, s.Usage+" ($"+s.Env+")")
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("%w %q", ErrArgument, fs.Arg(0))
	}
	c := &Config{Tenant: Tenant{Name: contract.DefaultTenant}}
	for _, s := range settings {
		v := strings.TrimSpace(*flags[s.Env])
		if v == "" {
			continue
		}
		if err := s.set(c, v); err != nil {
			return nil, fmt.Errorf("%w: %s (--%s): %v", ErrInvalid, s.Env, s.Flag, err)
		}
	}
	c.applyEnvDefaults()
	return c, nil
}

// SupportedKinds are the kinds this version can process.
func SupportedKinds() []contract.Kind {
	return []contract.Kind{contract.KindRoad, contract.KindAir, contract.KindEntry, contract.KindDocument}
}

// Endpoints returns the Maskinporten issuer, its token URL and the Toll
// base URL of a public environment.
func Endpoints(env Env) (issuer, tokenURL, tollBase string) {
	switch env {
	case EnvProd:
		return "https://maskinporten.no/", "https://maskinporten.no/token", "https://api.toll.no/api"
	case EnvTest:
		return "https://test.maskinporten.no/", "https://test.maskinporten.no/token", "https://api-test.toll.no/api"
	}
	return "", "", ""
}

// SimEndpoints returns the URLs the bundled simulator serves under root.
func SimEndpoints(root string) (issuer, tokenURL, tollBase string) {
	root = strings.TrimRight(root, "/")
	return root + "/maskinporten/", root + "/maskinporten/token", root + "/toll/api"
}

// SimClientID is the integration id the simulator's demo key is issued to.
const SimClientID = "digitoll-demo"

// Demo key files that `digitoll sim` writes into its directory for
// SimClientID.
const (
	SimKeyFile  = SimClientID + ".key.pem"
	SimCertFile = SimClientID + ".cert.pem"
)

func (c *Config) applyEnvDefaults() {
	issuer, tokenURL, tollBase := Endpoints(c.Env)
	if c.Env == EnvSim {
		simDir := c.Sim.Dir
		issuer, tokenURL, tollBase = SimEndpoints(c.Sim.URL)
		if c.Tenant.ClientID == "" {
			c.Tenant.ClientID = SimClientID
		}
		if c.Tenant.KeyFile == "" && c.Tenant.P12File == "" {
			c.Tenant.KeyFile = filepath.Join(simDir, SimKeyFile)
			if c.Tenant.KeyID == "" && c.Tenant.CertFile == "" {
				c.Tenant.CertFile = filepath.Join(simDir, SimCertFile)
			}
		}
	}
	if c.Maskinporten.Issuer == "" {
		c.Maskinporten.Issuer = issuer
	}
	if c.Maskinporten.TokenURL == "" {
		c.Maskinporten.TokenURL = tokenURL
	}
	if c.TollBaseURL == "" {
		c.TollBaseURL = tollBase
	}
}

// Validate checks the settings that depend on each other. It names the
// variable to fix in every error.
func (c *Config) Validate() error {
	bad := func(env, format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrInvalid, env, fmt.Sprintf(format, args...))
	}
	if !strings.HasSuffix(c.Maskinporten.Issuer, "/") {
		return bad("DIGITOLL_MASKINPORTEN_ISSUER", "%q must end with '/': it is the grant audience, trailing slash included", c.Maskinporten.Issuer)
	}
	if c.Env == EnvProd {
		for env, u := range map[string]string{
			"DIGITOLL_MASKINPORTEN_ISSUER":    c.Maskinporten.Issuer,
			"DIGITOLL_MASKINPORTEN_TOKEN_URL": c.Maskinporten.TokenURL,
			"DIGITOLL_TOLL_BASE_URL":          c.TollBaseURL,
		} {
			if !strings.HasPrefix(u, "https://") {
				return bad(env, "prod needs https, got %q", u)
			}
		}
	}
	if c.TenantsFile != "" {
		if _, err := LoadTenants(c.TenantsFile); err != nil {
			return err
		}
	} else if err := c.Tenant.validate(bad); err != nil {
		return err
	}
	if err := c.NATS.validate(); err != nil {
		return err
	}
	if c.Worker.ValidationTimeout >= c.Worker.MessageDeadline {
		return bad("DIGITOLL_VALIDATION_TIMEOUT", "%s must be shorter than DIGITOLL_MESSAGE_DEADLINE (%s)", c.Worker.ValidationTimeout, c.Worker.MessageDeadline)
	}
	return nil
}

// validate checks the tenant's integration, key and kinds; bad makes the
// error naming the setting (its environment variable) to fix.
func (t Tenant) validate(bad func(env, format string, args ...any) error) error {
	if t.ClientID == "" {
		return bad("DIGITOLL_CLIENT_ID", "is required: the Maskinporten integration id")
	}
	switch {
	case t.P12File != "":
		if t.KeyFile != "" || t.CertFile != "" || t.KeyID != "" {
			return bad("DIGITOLL_P12_FILE", "excludes DIGITOLL_KEY_FILE, DIGITOLL_CERT_FILE and DIGITOLL_KEY_ID")
		}
		if err := readable(t.P12File); err != nil {
			return bad("DIGITOLL_P12_FILE", "%v", err)
		}
		if t.P12PasswordFile != "" {
			if err := readable(t.P12PasswordFile); err != nil {
				return bad("DIGITOLL_P12_PASSWORD_FILE", "%v", err)
			}
		}
	case t.KeyFile == "":
		return bad("DIGITOLL_KEY_FILE", "is required (or DIGITOLL_P12_FILE): the integration's private key")
	default:
		if err := readable(t.KeyFile); err != nil {
			return bad("DIGITOLL_KEY_FILE", "%v", err)
		}
		if (t.KeyID == "") == (t.CertFile == "") {
			return bad("DIGITOLL_KEY_ID", "set exactly one of DIGITOLL_KEY_ID (registered key) and DIGITOLL_CERT_FILE (business certificate)")
		}
		if t.CertFile != "" {
			if err := readable(t.CertFile); err != nil {
				return bad("DIGITOLL_CERT_FILE", "%v", err)
			}
		}
	}
	if len(t.Kinds) == 0 {
		return bad("DIGITOLL_KINDS", "names no kind")
	}
	for _, k := range t.Kinds {
		if !slices.Contains(SupportedKinds(), k) {
			return bad("DIGITOLL_KINDS", "kind %q is not supported by this version (supported: %v)", k, SupportedKinds())
		}
	}
	return nil
}

func readable(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("cannot read %s: %w", path, errors.Unwrap(err))
	}
	return f.Close()
}
