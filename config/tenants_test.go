package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

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

// A tenant rotating its key lists several under keys: each entry is
// checked like a single key, named by its place in the list; the list
// excludes the single-key fields.
func TestParseTenantKeys(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"old.pem", "new.pem", "new.cert.pem", "next.p12", "next.pw"} {
		writeFile(t, dir, f)
	}
	head := "tenants:\n  - name: acme\n    organisationNumber: \"912345678\"\n    clientId: c\n    kinds: [road]\n"
	const rotation = `    keys:
      - keyFile: old.pem
        keyId: acme-2025
      - keyFile: new.pem
        certFile: /abs/new.cert.pem
        notBefore: 2026-03-01T06:00:00+01:00
      - p12File: next.p12
        p12PasswordFile: next.pw
        notBefore: 2027-01-01T00:00:00Z
`
	abs := filepath.Join(dir, "new.cert.pem")
	ts, err := config.ParseTenants([]byte(head+strings.Replace(rotation, "/abs/new.cert.pem", abs, 1)), dir)
	if err != nil {
		t.Fatal(err)
	}
	got := ts[0]
	want := []config.TenantKey{
		{KeyFile: filepath.Join(dir, "old.pem"), KeyID: "acme-2025"},
		{KeyFile: filepath.Join(dir, "new.pem"), CertFile: abs, NotBefore: time.Date(2026, 3, 1, 5, 0, 0, 0, time.UTC)},
		{P12File: filepath.Join(dir, "next.p12"), P12PasswordFile: filepath.Join(dir, "next.pw"), NotBefore: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)},
	}
	if !reflect.DeepEqual(got.Keys, want) {
		t.Errorf("Keys = %+v\nwant %+v", got.Keys, want)
	}
	if got.KeyFile != "" || got.KeyID != "" || got.CertFile != "" || got.P12File != "" {
		t.Errorf("single-key fields set with a keys list: %+v", got)
	}
	if !reflect.DeepEqual(got.SigningKeys(), want) {
		t.Errorf("SigningKeys() = %+v", got.SigningKeys())
	}
	wantFiles := []string{filepath.Join(dir, "old.pem"), filepath.Join(dir, "new.pem"), abs, filepath.Join(dir, "next.p12"), filepath.Join(dir, "next.pw")}
	if !slices.Equal(got.Files(), wantFiles) {
		t.Errorf("Files() = %v, want %v", got.Files(), wantFiles)
	}
	// Two readings of the same file are equal, so that a reload keeps the
	// tenant (and its cached tokens) when another tenant changed.
	again, err := config.ParseTenants([]byte(head+strings.Replace(rotation, "/abs/new.cert.pem", abs, 1)), dir)
	if err != nil || !reflect.DeepEqual(again, ts) {
		t.Errorf("a second reading differs: %+v, %v", again, err)
	}
	// WithKey gives the tenant one key of the list as its single key.
	one := got.WithKey(got.Keys[1])
	if one.KeyFile != want[1].KeyFile || one.CertFile != abs || one.Keys != nil || one.Name != "acme" || one.ClientID != "c" {
		t.Errorf("WithKey = %+v", one)
	}
	// A single-key tenant's SigningKeys is its one key.
	single := config.Tenant{KeyFile: "k.pem", KeyID: "k"}
	if sk := single.SigningKeys(); len(sk) != 1 || sk[0].KeyFile != "k.pem" || sk[0].KeyID != "k" || !sk[0].NotBefore.IsZero() {
		t.Errorf("single SigningKeys() = %+v", sk)
	}
	if !slices.Equal(single.Files(), []string{"k.pem"}) {
		t.Errorf("single Files() = %v", single.Files())
	}

	bad := []struct {
		name, fields, want string
	}{
		{"keys and keyFile", "    keyFile: old.pem\n    keyId: k\n    keys:\n      - keyFile: new.pem\n        keyId: n\n",
			`tenant "acme": keys: excludes keyFile, keyId at the tenant's level`},
		{"keys and p12File", "    p12File: next.p12\n    keys:\n      - keyFile: new.pem\n        keyId: n\n",
			`tenant "acme": keys: excludes p12File`},
		{"neither", "", `tenant "acme": keyFile: is required (or p12File, or keys:`},
		{"empty list", "    keys: []\n", `tenant "acme": keys: lists no key`},
		{"bad notBefore", "    keys:\n      - keyFile: old.pem\n        keyId: o\n      - keyFile: new.pem\n        keyId: n\n        notBefore: 2026-03-01\n",
			`tenant "acme": keys[1].notBefore: "2026-03-01" is not an RFC 3339 time`},
		{"entry without kid or cert", "    keys:\n      - keyFile: old.pem\n        keyId: o\n      - keyFile: new.pem\n",
			`tenant "acme": keys[1].keyId: set exactly one`},
		{"entry without key", "    keys:\n      - keyId: o\n", `tenant "acme": keys[0].keyFile: is required (or p12File)`},
		{"entry key missing", "    keys:\n      - keyFile: nope.pem\n        keyId: o\n", `tenant "acme": keys[0].keyFile: cannot read`},
		{"entry p12 and key", "    keys:\n      - p12File: next.p12\n        keyFile: old.pem\n", `tenant "acme": keys[0].p12File: excludes`},
		{"entry password missing", "    keys:\n      - p12File: next.p12\n        p12PasswordFile: nope.pw\n", `tenant "acme": keys[0].p12PasswordFile: cannot read`},
		{"kid twice", "    keys:\n      - keyFile: old.pem\n        keyId: k\n      - keyFile: new.pem\n        keyId: k\n",
			`tenant "acme": keys[1].keyId: "k" is keys[0]'s too`},
		{"unknown entry field", "    keys:\n      - keyFile: old.pem\n        keyId: k\n        notAfter: 2027-01-01T00:00:00Z\n", "field notAfter not found"},
		{"tenant fields still checked", "    concurrency: -2\n    keys:\n      - keyFile: old.pem\n        keyId: k\n", `tenant "acme": concurrency: -2 is negative`},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.ParseTenants([]byte(head+tc.fields), dir)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
	// The client id and the kinds are the tenant's, named without a key.
	noClient := strings.Replace(head, "clientId: c", "clientId: \"\"", 1) + "    keys:\n      - keyFile: old.pem\n        keyId: k\n"
	if _, err := config.ParseTenants([]byte(noClient), dir); err == nil || !strings.Contains(err.Error(), `tenant "acme": clientId: is required`) {
		t.Errorf("no client id: %v", err)
	}
}

// Replacing any key of a list changes the fingerprint, so that the
// worker rebuilds the tenant.
func TestFingerprintSeesEveryKey(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "old.pem")
	next := writeFile(t, dir, "new.pem")
	file := filepath.Join(dir, "tenants.yaml")
	content := "tenants:\n  - name: acme\n    organisationNumber: \"912345678\"\n    clientId: c\n    kinds: [road]\n" +
		"    keys:\n      - keyFile: old.pem\n        keyId: o\n      - keyFile: new.pem\n        keyId: n\n        notBefore: 2026-03-01T00:00:00Z\n"
	if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	a := config.Fingerprint(file)
	if err := os.WriteFile(next, []byte("y"), 0o600); err != nil {
		t.Fatal(err)
	}
	if config.Fingerprint(file) == a {
		t.Error("replacing the second key left the fingerprint unchanged")
	}
}
