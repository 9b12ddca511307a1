package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/digitoll/digitoll-worker/config"
	"github.com/digitoll/digitoll-worker/contract"
)

func TestParseTenants(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "acme.key.pem")
	writeFile(t, dir, "acme.cert.pem")
	writeFile(t, dir, "acme.p12")
	writeFile(t, dir, "acme.pw")
	const kid = `tenants:
  - name: acme
    organisationNumber: "912345678"
    clientId: acme-client
    keyFile: acme.key.pem
    keyId: acme-2025
    kinds: [road, entry, road]
    concurrency: 4
`
	ts, err := config.ParseTenants([]byte(kid), dir)
	if err != nil {
		t.Fatal(err)
	}
	want := config.Tenant{Name: "acme", OrgNumber: "912345678", ClientID: "acme-client",
		KeyFile: filepath.Join(dir, "acme.key.pem"), KeyID: "acme-2025",
		Kinds: []contract.Kind{contract.KindRoad, contract.KindEntry}, Concurrency: 4}
	if len(ts) != 1 || ts[0].Name != want.Name || ts[0].OrgNumber != want.OrgNumber || ts[0].KeyFile != want.KeyFile ||
		ts[0].KeyID != want.KeyID || len(ts[0].Kinds) != 2 || ts[0].Concurrency != 4 {
		t.Errorf("got %+v, want %+v", ts, want)
	}

	// The JSON form, x5c with a PKCS#12 file, a foreign business without
	// a Norwegian organisation number.
	const js = `{"tenants":[{"name":"eu-1","clientId":"c","p12File":"acme.p12","p12PasswordFile":"acme.pw","foreign":true,"kinds":["road"]}]}`
	ts, err = config.ParseTenants([]byte(js), dir)
	if err != nil {
		t.Fatal(err)
	}
	if !ts[0].Foreign || ts[0].P12File != filepath.Join(dir, "acme.p12") {
		t.Errorf("got %+v", ts[0])
	}

	tenant := func(fields string) string {
		return "tenants:\n  - name: acme\n    organisationNumber: \"912345678\"\n    clientId: c\n    kinds: [road]\n" + fields
	}
	bad := []struct {
		name, file, want string
	}{
		{"empty", "", "is empty"},
		{"no tenants", "tenants: []\n", "lists no tenant"},
		{"unknown field", tenant("    keyFile: acme.key.pem\n    keyId: k\n    kid: k\n"), "field kid not found"},
		{"bad name", strings.Replace(tenant("    keyFile: acme.key.pem\n    keyId: k\n"), "name: acme", "name: Acme_AS", 1), `tenant "Acme_AS": name:`},
		{"no name", strings.Replace(tenant("    keyFile: acme.key.pem\n    keyId: k\n"), "name: acme", "name: \"\"", 1), "tenant #1: name:"},
		{"org number", strings.Replace(tenant("    keyFile: acme.key.pem\n    keyId: k\n"), "912345678", "91234567", 1), `tenant "acme": organisationNumber: "91234567" is not nine digits`},
		{"org number missing", strings.Replace(tenant("    keyFile: acme.key.pem\n    keyId: k\n"), "    organisationNumber: \"912345678\"\n", "", 1), `tenant "acme": organisationNumber: is required`},
		{"client id", strings.Replace(tenant("    keyFile: acme.key.pem\n    keyId: k\n"), "clientId: c", "clientId: \"\"", 1), `tenant "acme": clientId: is required`},
		{"no key", tenant(""), `tenant "acme": keyFile: is required`},
		{"kid and cert", tenant("    keyFile: acme.key.pem\n    keyId: k\n    certFile: acme.cert.pem\n"), `tenant "acme": keyId: set exactly one`},
		{"neither kid nor cert", tenant("    keyFile: acme.key.pem\n"), `tenant "acme": keyId: set exactly one`},
		{"missing key file", tenant("    keyFile: nope.pem\n    keyId: k\n"), `tenant "acme": keyFile: cannot read`},
		{"p12 and key", tenant("    p12File: acme.p12\n    keyFile: acme.key.pem\n"), `tenant "acme": p12File: excludes`},
		{"bad kind", strings.Replace(tenant("    keyFile: acme.key.pem\n    keyId: k\n"), "[road]", "[ship]", 1), `tenant "acme": kinds:`},
		{"no kinds", strings.Replace(tenant("    keyFile: acme.key.pem\n    keyId: k\n"), "[road]", "[]", 1), `tenant "acme": kinds: names no kind`},
		{"concurrency", tenant("    keyFile: acme.key.pem\n    keyId: k\n    concurrency: -1\n"), `tenant "acme": concurrency: -1 is negative`},
		{"twice", tenant("    keyFile: acme.key.pem\n    keyId: k\n") + "  - name: acme\n    organisationNumber: \"912345678\"\n    clientId: d\n    keyFile: acme.key.pem\n    keyId: k\n    kinds: [road]\n", `tenant "acme": name: listed twice`},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.ParseTenants([]byte(tc.file), dir)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// With DIGITOLL_TENANTS_FILE the file's tenants are served and the
// environment's single tenant needs no client id; a bad file stops
// start-up naming the setting and the tenant.
func TestValidateWithTenantsFile(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "k.pem")
	file := filepath.Join(dir, "tenants.yaml")
	good := "tenants:\n  - name: acme\n    organisationNumber: \"912345678\"\n    clientId: c\n    keyFile: k.pem\n    keyId: k\n    kinds: [road]\n"
	if err := os.WriteFile(file, []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(newFlagSet(), nil, env(map[string]string{"DIGITOLL_TENANTS_FILE": file}))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	ts, err := c.Tenants()
	if err != nil || len(ts) != 1 || ts[0].Name != "acme" {
		t.Fatalf("Tenants() = %+v, %v", ts, err)
	}
	if err := os.WriteFile(file, []byte(strings.Replace(good, "keyId: k", "keyId: \"\"", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	err = c.Validate()
	if !errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), "DIGITOLL_TENANTS_FILE") || !strings.Contains(err.Error(), `tenant "acme": keyId`) {
		t.Errorf("Validate() = %v", err)
	}
	// Without the file, the environment's tenant, as before.
	c, err = config.Parse(newFlagSet(), nil, env(map[string]string{}))
	if err != nil {
		t.Fatal(err)
	}
	if ts, err := c.Tenants(); err != nil || len(ts) != 1 || ts[0].Name != contract.DefaultTenant {
		t.Errorf("Tenants() = %+v, %v", ts, err)
	}
}

// The fingerprint changes with the file and with a key it names.
func TestFingerprint(t *testing.T) {
	dir := t.TempDir()
	key := writeFile(t, dir, "k.pem")
	file := filepath.Join(dir, "tenants.yaml")
	good := "tenants:\n  - name: acme\n    organisationNumber: \"912345678\"\n    clientId: c\n    keyFile: k.pem\n    keyId: k\n    kinds: [road]\n"
	if err := os.WriteFile(file, []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}
	a := config.Fingerprint(file)
	if b := config.Fingerprint(file); a != b {
		t.Fatal("fingerprint of an unchanged file changed")
	}
	if err := os.WriteFile(key, []byte("y"), 0o600); err != nil {
		t.Fatal(err)
	}
	b := config.Fingerprint(file)
	if a == b {
		t.Error("replacing the key left the fingerprint unchanged")
	}
	if err := os.WriteFile(file, []byte(strings.Replace(good, "clientId: c", "clientId: d", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if c := config.Fingerprint(file); c == b {
		t.Error("editing the file left the fingerprint unchanged")
	}
}
