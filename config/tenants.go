package config

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/digitoll/digitoll-worker/contract"
)

// A provider serving many carriers lists them in a tenants file
// (DIGITOLL_TENANTS_FILE), YAML or JSON (JSON is YAML):
//
//	tenants:
//	  - name: acme                 # the last token of its subjects
//	    organisationNumber: "912345678"
//	    clientId: 0b5c…            # the customer's Maskinporten integration id
//	    keyFile: keys/acme.key.pem # relative paths are from the file's directory
//	    keyId: acme-2025           # kid mode; or certFile (x5c), or p12File + p12PasswordFile
//	    kinds: [road, entry]
//	    concurrency: 8             # optional: at most 8 of its messages in progress
//
// A tenant rotating its key lists its keys instead of the single-key fields,
// each with the same fields and an optional notBefore (RFC 3339): a grant is
// signed with the key of the latest notBefore that has passed (see
// auth.KeyRing), so the new key takes over at its notBefore without a reload:
//
//	    keys:
//	      - keyFile: keys/acme-2025.key.pem
//	        keyId: acme-2025
//	      - keyFile: keys/acme-2026.key.pem
//	        keyId: acme-2026
//	        notBefore: 2026-03-01T06:00:00+01:00
//
// Without the file the worker serves the single tenant "default" configured
// by the DIGITOLL_CLIENT_ID, DIGITOLL_KEY_FILE, … settings.

// tenantsFile is the file's layout.
type tenantsFile struct {
	Tenants []fileTenant `yaml:"tenants"`
}

// fileTenant is one tenant as written in the file.
type fileTenant struct {
	Name               string    `yaml:"name"`
	OrganisationNumber string    `yaml:"organisationNumber"`
	ClientID           string    `yaml:"clientId"`
	KeyFile            string    `yaml:"keyFile"`
	KeyID              string    `yaml:"keyId"`
	CertFile           string    `yaml:"certFile"`
	P12File            string    `yaml:"p12File"`
	P12PasswordFile    string    `yaml:"p12PasswordFile"`
	Foreign            bool      `yaml:"foreign"`
	Kinds              []string  `yaml:"kinds"`
	Concurrency        int       `yaml:"concurrency"`
	Keys               []fileKey `yaml:"keys"`
}

// fileKey is one entry of a tenant's keys list as written in the file.
type fileKey struct {
	KeyFile         string `yaml:"keyFile"`
	KeyID           string `yaml:"keyId"`
	CertFile        string `yaml:"certFile"`
	P12File         string `yaml:"p12File"`
	P12PasswordFile string `yaml:"p12PasswordFile"`
	// NotBefore is a string rather than a time.Time so that a wrong one
	// is reported with the format to use, not the YAML decoder's words.
	NotBefore string `yaml:"notBefore"`
}

// TenantKey is one of a tenant's signing keys (see Tenant.Keys): the
// fields of a single key, and from when it may sign.
type TenantKey struct {
	// KeyFile, KeyID, CertFile, P12File and P12PasswordFile are as the
	// Tenant fields of the same names.
	KeyFile         string
	KeyID           string
	CertFile        string
	P12File         string
	P12PasswordFile string
	// NotBefore is when the key may start signing grants, in UTC; zero
	// means from the start. Of the keys whose NotBefore has passed, the
	// latest one signs.
	NotBefore time.Time
}

// fileFields names, for each setting of the environment's tenant, the
// field of the tenants file that plays its part, so that one validation
// names whichever the operator has to fix.
var fileFields = map[string]string{
	"DIGITOLL_CLIENT_ID":         "clientId",
	"DIGITOLL_KEY_FILE":          "keyFile",
	"DIGITOLL_KEY_ID":            "keyId",
	"DIGITOLL_CERT_FILE":         "certFile",
	"DIGITOLL_P12_FILE":          "p12File",
	"DIGITOLL_P12_PASSWORD_FILE": "p12PasswordFile",
	"DIGITOLL_KINDS":             "kinds",
}

// orgNumberPattern is a Norwegian organisation number: nine digits.
var orgNumberPattern = regexp.MustCompile(`^[0-9]{9}$`)

// MaxTenantsFileSize bounds the tenants file read, so that a wrong path
// (a log file, a device) fails clearly instead of filling memory.
const MaxTenantsFileSize = 16 << 20

// LoadTenants reads and validates the tenants file at path. Key, certificate
// and password paths that are relative are made relative to the file's
// directory. Every error names the file, the tenant and the field to fix;
// none holds a secret (the file holds only paths to them).
func LoadTenants(path string) ([]Tenant, error) {
	data, err := readBounded(path)
	if err != nil {
		return nil, fmt.Errorf("%w: DIGITOLL_TENANTS_FILE: %w", ErrInvalid, err)
	}
	ts, err := ParseTenants(data, filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("%w: DIGITOLL_TENANTS_FILE %s: %w", ErrInvalid, path, err)
	}
	return ts, nil
}

// ParseTenants parses and validates the tenants file's content; relative
// paths in it are made relative to dir.
func ParseTenants(data []byte, dir string) ([]Tenant, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var f tenantsFile
	if err := dec.Decode(&f); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("is empty: list the tenants under \"tenants:\"")
		}
		return nil, err
	}
	if len(f.Tenants) == 0 {
		return nil, errors.New("lists no tenant under \"tenants:\"")
	}
	seen := map[string]bool{}
	out := make([]Tenant, 0, len(f.Tenants))
	for i, ft := range f.Tenants {
		t, err := ft.tenant(dir)
		if err != nil {
			if ft.Name == "" {
				return nil, fmt.Errorf("tenant #%d: %w", i+1, err)
			}
			return nil, fmt.Errorf("tenant %q: %w", ft.Name, err)
		}
		if seen[t.Name] {
			return nil, fmt.Errorf("tenant %q: name: listed twice", t.Name)
		}
		seen[t.Name] = true
		out = append(out, t)
	}
	return out, nil
}

// tenant checks ft and turns it into a Tenant.
func (ft fileTenant) tenant(dir string) (Tenant, error) {
	if !contract.ValidTenant(ft.Name) {
		return Tenant{}, fmt.Errorf("name: %q is not a tenant name (1 to 63 of a-z, 0-9 and '-')", ft.Name)
	}
	switch {
	case ft.OrganisationNumber == "" && !ft.Foreign:
		return Tenant{}, errors.New("organisationNumber: is required for a Norwegian business (nine digits)")
	case ft.OrganisationNumber != "" && !orgNumberPattern.MatchString(ft.OrganisationNumber):
		return Tenant{}, fmt.Errorf("organisationNumber: %q is not nine digits", ft.OrganisationNumber)
	}
	if ft.Concurrency < 0 {
		return Tenant{}, fmt.Errorf("concurrency: %d is negative", ft.Concurrency)
	}
	if err := ft.checkKeyFields(); err != nil {
		return Tenant{}, err
	}
	t := Tenant{
		Name:            ft.Name,
		OrgNumber:       ft.OrganisationNumber,
		ClientID:        ft.ClientID,
		KeyFile:         resolve(dir, ft.KeyFile),
		KeyID:           ft.KeyID,
		CertFile:        resolve(dir, ft.CertFile),
		P12File:         resolve(dir, ft.P12File),
		P12PasswordFile: resolve(dir, ft.P12PasswordFile),
		Foreign:         ft.Foreign,
		Concurrency:     ft.Concurrency,
	}
	for _, s := range ft.Kinds {
		k, err := contract.ParseKind(s)
		if err != nil {
			return Tenant{}, fmt.Errorf("kinds: %w", err)
		}
		if !slices.Contains(t.Kinds, k) {
			t.Kinds = append(t.Kinds, k)
		}
	}
	if len(ft.Keys) == 0 {
		errs := t.validate(func(env, format string, args ...any) error {
			return fmt.Errorf("%s: %s", fileFields[env], fmt.Sprintf(format, args...))
		})
		return t, firstError(errs)
	}
	for i, fk := range ft.Keys {
		k, err := fk.key(dir)
		if err != nil {
			return Tenant{}, fmt.Errorf("keys[%d].%w", i, err)
		}
		if k.KeyID != "" {
			if j := slices.IndexFunc(t.Keys, func(o TenantKey) bool { return o.KeyID == k.KeyID }); j >= 0 {
				return Tenant{}, fmt.Errorf("keys[%d].keyId: %q is keys[%d]'s too: each key has its own kid", i, k.KeyID, j)
			}
		}
		// The tenant with this key alone goes through the checks of a
		// single key, so that both forms are held to the same rules;
		// the fields of the key are named with their place in the list.
		err = firstError(t.WithKey(k).validate(func(env, format string, args ...any) error {
			field := fileFields[env]
			if slices.Contains(keyEnvs, env) {
				field = fmt.Sprintf("keys[%d].%s", i, field)
			}
			return fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...))
		}))
		if err != nil {
			return Tenant{}, err
		}
		t.Keys = append(t.Keys, k)
	}
	return t, nil
}

// firstError is the first of errs, or nil: an error of a tenants file
// names its tenant once, in front, so it says one thing.
func firstError(errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	return errs[0]
}

// keyEnvs are the settings of the environment's tenant that describe its
// key: in the tenants file, each entry of keys has their fields.
var keyEnvs = []string{"DIGITOLL_KEY_FILE", "DIGITOLL_KEY_ID", "DIGITOLL_CERT_FILE", "DIGITOLL_P12_FILE", "DIGITOLL_P12_PASSWORD_FILE"}

// checkKeyFields requires a tenant to have either the single-key fields or
// a keys list, so that a forgotten field cannot leave a key unused.
func (ft fileTenant) checkKeyFields() error {
	var single []string
	for _, f := range []struct{ name, value string }{
		{"keyFile", ft.KeyFile}, {"keyId", ft.KeyID}, {"certFile", ft.CertFile},
		{"p12File", ft.P12File}, {"p12PasswordFile", ft.P12PasswordFile},
	} {
		if f.value != "" {
			single = append(single, f.name)
		}
	}
	switch {
	case ft.Keys != nil && len(ft.Keys) == 0:
		return errors.New("keys: lists no key")
	case len(ft.Keys) > 0 && len(single) > 0:
		return fmt.Errorf("keys: excludes %s at the tenant's level: move the key into an entry of keys", strings.Join(single, ", "))
	case len(ft.Keys) == 0 && ft.KeyFile == "" && ft.P12File == "":
		return errors.New("keyFile: is required (or p12File, or keys: a list of keys, for rotation): the integration's private key")
	}
	return nil
}

// key checks fk's notBefore and turns fk into a TenantKey. Errors start
// with the field's name, for the caller to put the entry's place before.
func (fk fileKey) key(dir string) (TenantKey, error) {
	k := TenantKey{
		KeyFile:         resolve(dir, fk.KeyFile),
		KeyID:           fk.KeyID,
		CertFile:        resolve(dir, fk.CertFile),
		P12File:         resolve(dir, fk.P12File),
		P12PasswordFile: resolve(dir, fk.P12PasswordFile),
	}
	if fk.KeyFile == "" && fk.P12File == "" {
		return TenantKey{}, errors.New("keyFile: is required (or p12File): the key's private key")
	}
	if fk.NotBefore != "" {
		nb, err := time.Parse(time.RFC3339, fk.NotBefore)
		if err != nil {
			return TenantKey{}, fmt.Errorf("notBefore: %q is not an RFC 3339 time such as 2026-03-01T06:00:00+01:00", fk.NotBefore)
		}
		// In UTC, so that two readings of the same file compare equal
		// (a parsed offset makes a new *time.Location each time).
		k.NotBefore = nb.UTC()
	}
	return k, nil
}

// SigningKeys returns t's signing keys: Keys, or else the one key of t's
// single-key fields (with no NotBefore).
func (t Tenant) SigningKeys() []TenantKey {
	if len(t.Keys) > 0 {
		return slices.Clone(t.Keys)
	}
	return []TenantKey{{KeyFile: t.KeyFile, KeyID: t.KeyID, CertFile: t.CertFile,
		P12File: t.P12File, P12PasswordFile: t.P12PasswordFile}}
}

// WithKey returns t with k as its single key and no Keys, so that what
// handles one key (loading a signer, checking key files) serves each key
// of a list.
func (t Tenant) WithKey(k TenantKey) Tenant {
	t.KeyFile, t.KeyID, t.CertFile = k.KeyFile, k.KeyID, k.CertFile
	t.P12File, t.P12PasswordFile = k.P12File, k.P12PasswordFile
	t.Keys = nil
	return t
}

// resolve makes a relative path relative to dir; empty stays empty.
func resolve(dir, path string) string {
	if path == "" || filepath.IsAbs(path) {
		return path
	}
	return filepath.Join(dir, path)
}

// Files lists the files t reads (key, certificate, PKCS#12, password) of
// every key, for watching them for changes.
func (t Tenant) Files() []string {
	var out []string
	for _, k := range t.SigningKeys() {
		for _, f := range []string{k.KeyFile, k.CertFile, k.P12File, k.P12PasswordFile} {
			if f != "" {
				out = append(out, f)
			}
		}
	}
	return out
}

// Fingerprint is a digest of the tenants file at path and of every file
// its tenants read: it changes when a tenant is added, removed or edited,
// and when a key or certificate is replaced in place. Files that cannot
// be read count as empty, so that the reload reports them.
func Fingerprint(path string) [sha256.Size]byte {
	h := sha256.New()
	data, _ := readBounded(path)
	h.Write(data)
	if ts, err := ParseTenants(data, filepath.Dir(path)); err == nil {
		for _, t := range ts {
			for _, f := range t.Files() {
				b, _ := readBounded(f)
				fmt.Fprintf(h, "\x00%s\x00%x", f, sha256.Sum256(b))
			}
		}
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}

// readBounded reads a file of at most MaxTenantsFileSize bytes.
func readBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %w", path, errors.Unwrap(err))
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxTenantsFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %w", path, err)
	}
	if len(data) > MaxTenantsFileSize {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, MaxTenantsFileSize)
	}
	return data, nil
}

// Tenants returns the tenants c serves: those of the tenants file, or the
// single tenant of the environment.
func (c *Config) Tenants() ([]Tenant, error) {
	if c.TenantsFile == "" {
		return []Tenant{c.Tenant}, nil
	}
	return LoadTenants(c.TenantsFile)
}
