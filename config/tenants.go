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
// Without the file the worker serves the single tenant "default" configured
// by the DIGITOLL_CLIENT_ID, DIGITOLL_KEY_FILE, … settings.

// tenantsFile is the file's layout.
type tenantsFile struct {
	Tenants []fileTenant `yaml:"tenants"`
}

// fileTenant is one tenant as written in the file.
type fileTenant struct {
	Name               string   `yaml:"name"`
	OrganisationNumber string   `yaml:"organisationNumber"`
	ClientID           string   `yaml:"clientId"`
	KeyFile            string   `yaml:"keyFile"`
	KeyID              string   `yaml:"keyId"`
	CertFile           string   `yaml:"certFile"`
	P12File            string   `yaml:"p12File"`
	P12PasswordFile    string   `yaml:"p12PasswordFile"`
	Foreign            bool     `yaml:"foreign"`
	Kinds              []string `yaml:"kinds"`
	Concurrency        int      `yaml:"concurrency"`
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
	err := t.validate(func(env, format string, args ...any) error {
		return fmt.Errorf("%s: %s", fileFields[env], fmt.Sprintf(format, args...))
	})
	return t, err
}

// resolve makes a relative path relative to dir; empty stays empty.
func resolve(dir, path string) string {
	if path == "" || filepath.IsAbs(path) {
		return path
	}
	return filepath.Join(dir, path)
}

// Files lists the files t reads (key, certificate, PKCS#12, password),
// for watching them for changes.
func (t Tenant) Files() []string {
	var out []string
	for _, f := range []string{t.KeyFile, t.CertFile, t.P12File, t.P12PasswordFile} {
		if f != "" {
			out = append(out, f)
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
