package config

import (
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"github.com/digitoll/digitoll-worker/contract"
)

// ErrInvalid is wrapped by every validation error Load returns.
var ErrInvalid = errors.New("invalid configuration")

// ErrArgument is returned by Load for a positional argument: the worker's
// settings are all flags or variables.
var ErrArgument = errors.New("unexpected argument")

// SettingError is what is wrong with one setting. errors.Is(err,
// ErrInvalid) holds for it.
type SettingError struct {
	// Env is the setting's variable.
	Env string
	// Flag is the setting's flag, when the value itself is wrong; empty
	// when the setting is wrong with the others or with the file it names.
	Flag string
	// Problem says what is wrong and, where it can, how to fix it.
	Problem string
}

func (e *SettingError) Error() string {
	if e.Flag != "" {
		return fmt.Sprintf("%v: %s (--%s): %s", ErrInvalid, e.Env, e.Flag, e.Problem)
	}
	return fmt.Sprintf("%v: %s: %s", ErrInvalid, e.Env, e.Problem)
}

// Unwrap makes a SettingError an ErrInvalid.
func (e *SettingError) Unwrap() error { return ErrInvalid }

// Load reads the settings from getenv, lets flags in args override them,
// fills the defaults that depend on the environment and validates the
// result. fs receives one flag per setting; its usage output therefore
// documents every setting. Every bad setting is reported at once, one line
// each naming the variable and, for a value that does not parse, the flag.
func Load(fs *flag.FlagSet, args []string, getenv func(string) string) (*Config, error) {
	c, err := Parse(fs, args, getenv)
	if c == nil {
		return nil, err
	}
	if err := JoinProblems(err, c.Validate()); err != nil {
		return nil, err
	}
	return c, nil
}

// Parse is Load without Validate: each setting is read and checked on its
// own and the defaults that depend on the environment are filled in, but
// the settings that depend on each other (and the files they name) are not
// checked. `digitoll config check` uses it to report every problem of a
// configuration, not only the first.
//
// A setting whose value does not parse is reported (all of them, joined)
// and its default stands in for it in the Config, which is returned with
// the error so that Validate can still check the others; a bad flag or an
// argument returns no Config.
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
	c := &Config{Tenant: Tenant{Name: contract.DefaultTenant}, given: map[string]bool{}}
	onCommandLine := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { onCommandLine[f.Name] = true })
	var errs []error
	for _, s := range settings {
		if onCommandLine[s.Flag] || getenv(s.Env) != "" {
			c.given[s.Env] = true
		}
		v := strings.TrimSpace(*flags[s.Env])
		if v == "" {
			continue
		}
		if err := s.set(c, v); err != nil {
			errs = append(errs, &SettingError{Env: s.Env, Flag: s.Flag, Problem: err.Error()})
			// The default stands in, so that the settings checked
			// with this one are not reported under its fault.
			if s.Default != "" {
				_ = s.set(c, s.Default)
			}
		}
	}
	errs = append(errs, c.applyEcosystem(getenv)...)
	c.applyEnvDefaults()
	return c, joinProblems(errs...)
}

// JoinProblems joins the errors of Parse and of Validate into one, a line
// each, leaving out what Validate says about a setting Parse already
// reported: its default stood in for it, and the operator has one thing to
// fix.
func JoinProblems(parse, validate error) error {
	reported := map[string]bool{}
	var out []error
	for _, e := range flatten(parse) {
		var se *SettingError
		if errors.As(e, &se) {
			reported[se.Env] = true
		}
		out = append(out, e)
	}
	for _, e := range flatten(validate) {
		var se *SettingError
		if errors.As(e, &se) && reported[se.Env] {
			continue
		}
		out = append(out, e)
	}
	return joinProblems(out...)
}

// problemList is several problems of a configuration, one per line. It is
// errors.Join's error, made a type of its own so that flatten takes apart
// these lists and not an error that wraps two (fmt.Errorf with two %w).
type problemList []error

func (p problemList) Error() string {
	lines := make([]string, len(p))
	for i, e := range p {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

func (p problemList) Unwrap() []error { return p }

// joinProblems is errors.Join for the problems of a configuration: nil
// for none, the error itself for one, a problemList for more.
func joinProblems(errs ...error) error {
	var out problemList
	for _, e := range errs {
		out = append(out, flatten(e)...)
	}
	switch len(out) {
	case 0:
		return nil
	case 1:
		return out[0]
	}
	return out
}

// flatten lists the problems in err (nil: none).
func flatten(err error) []error {
	if err == nil {
		return nil
	}
	if p, ok := err.(problemList); ok {
		return p
	}
	return []error{err}
}

// Problems lists, one per line, what is wrong in err: the lines of the
// errors it joins.
func Problems(err error) []string {
	var out []string
	for _, e := range flatten(err) {
		out = append(out, e.Error())
	}
	return out
}

// SupportedKinds are the kinds this version can process: every kind of
// the contract, each of which has a handler (handlers.Kinds; a test holds
// the two lists together).
func SupportedKinds() []contract.Kind { return contract.Kinds() }

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

// Validate checks the settings that depend on each other and the files
// they name. It reports every problem at once, one line each naming the
// variable to fix.
func (c *Config) Validate() error {
	bad := func(env, format string, args ...any) error {
		return &SettingError{Env: env, Problem: fmt.Sprintf(format, args...)}
	}
	var errs []error
	if c.Env == EnvProd {
		for _, u := range []struct{ env, url string }{
			{"DIGITOLL_MASKINPORTEN_ISSUER", c.Maskinporten.Issuer},
			{"DIGITOLL_MASKINPORTEN_TOKEN_URL", c.Maskinporten.TokenURL},
			{"DIGITOLL_TOLL_BASE_URL", c.TollBaseURL},
		} {
			if !strings.HasPrefix(u.url, "https://") {
				errs = append(errs, bad(u.env, "prod needs https, got %q", u.url))
			}
		}
	}
	if c.TenantsFile != "" {
		if _, err := LoadTenants(c.TenantsFile); err != nil {
			errs = append(errs, err)
		}
	} else {
		errs = append(errs, c.Tenant.validate(bad)...)
	}
	errs = append(errs, flatten(c.NATS.validate())...)
	if c.Worker.ValidationTimeout >= c.Worker.MessageDeadline {
		errs = append(errs, bad("DIGITOLL_VALIDATION_TIMEOUT", "%s must be shorter than DIGITOLL_MESSAGE_DEADLINE (%s)", c.Worker.ValidationTimeout, c.Worker.MessageDeadline))
	}
	return joinProblems(errs...)
}

// validate checks the tenant's integration, key and kinds; bad makes the
// error naming the setting (its environment variable) to fix. The
// integration, the key and the kinds are checked independently, so that
// one look shows all three; within the key, the first problem hides the
// ones that follow from it.
func (t Tenant) validate(bad func(env, format string, args ...any) error) []error {
	var errs []error
	if t.ClientID == "" {
		errs = append(errs, bad("DIGITOLL_CLIENT_ID", "is required: the Maskinporten integration id"))
	}
	if err := t.validateKey(bad); err != nil {
		errs = append(errs, err)
	}
	if len(t.Kinds) == 0 {
		errs = append(errs, bad("DIGITOLL_KINDS", "names no kind"))
	}
	for _, k := range t.Kinds {
		if !slices.Contains(SupportedKinds(), k) {
			errs = append(errs, bad("DIGITOLL_KINDS", "kind %q is not supported by this version (supported: %v)", k, SupportedKinds()))
			break
		}
	}
	return errs
}

// validateKey checks the tenant's key settings and the files they name:
// the private key (and PKCS#12 password) readable by the worker and not by
// everyone, the certificate readable.
func (t Tenant) validateKey(bad func(env, format string, args ...any) error) error {
	switch {
	case t.P12File != "":
		if t.KeyFile != "" || t.CertFile != "" || t.KeyID != "" {
			return bad("DIGITOLL_P12_FILE", "excludes DIGITOLL_KEY_FILE, DIGITOLL_CERT_FILE and DIGITOLL_KEY_ID")
		}
		if _, _, err := PrivateFile(t.P12File); err != nil {
			return bad("DIGITOLL_P12_FILE", "%v", err)
		}
		if t.P12PasswordFile != "" {
			if _, _, err := PrivateFile(t.P12PasswordFile); err != nil {
				return bad("DIGITOLL_P12_PASSWORD_FILE", "%v", err)
			}
		}
	case t.KeyFile == "":
		return bad("DIGITOLL_KEY_FILE", "is required (or DIGITOLL_P12_FILE): the integration's private key")
	default:
		if _, _, err := PrivateFile(t.KeyFile); err != nil {
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
	return nil
}

// PrivateFile checks a file that holds a secret (a private key, a
// password, NATS credentials): the worker must be able to read it, and
// everyone else must not. It returns the file's permissions; an error when
// the file cannot be read or everyone may read it (with the chmod that
// fixes it); and groupReadable when its group may, which is for the caller
// to warn about, since the group may be the worker's alone. Permissions
// are not checked on Windows.
func PrivateFile(path string) (mode fs.FileMode, groupReadable bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false, fmt.Errorf("cannot read %s: %w", path, errors.Unwrap(err))
	}
	info, err := f.Stat()
	f.Close()
	if err != nil {
		return 0, false, fmt.Errorf("cannot read %s: %w", path, err)
	}
	mode = info.Mode().Perm()
	if runtime.GOOS == "windows" {
		return mode, false, nil
	}
	if mode&0o004 != 0 {
		return mode, false, fmt.Errorf("%s is readable by everyone (mode %04o): chmod 600 %s", path, mode, path)
	}
	return mode, mode&0o040 != 0, nil
}

func readable(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("cannot read %s: %w", path, errors.Unwrap(err))
	}
	return f.Close()
}
