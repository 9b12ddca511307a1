package app

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/digitoll/digitoll-worker/auth"
	"github.com/digitoll/digitoll-worker/config"
	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/failure"
	"github.com/digitoll/digitoll-worker/internal/clocktest"
	"github.com/digitoll/digitoll-worker/internal/promtest"
	"github.com/digitoll/digitoll-worker/simulator"
	"github.com/digitoll/digitoll-worker/telemetry"
)

// rotationKeys makes an old and a new key for one integration, as a
// customer rotating its key holds them.
func rotationKeys(t *testing.T, dir, client string) (old, next simulator.DemoKey) {
	t.Helper()
	var err error
	if old, err = simulator.WriteDemoKey(filepath.Join(dir, "old"), client); err != nil {
		t.Fatal(err)
	}
	if next, err = simulator.WriteDemoKey(filepath.Join(dir, "new"), client); err != nil {
		t.Fatal(err)
	}
	return old, next
}

// withBothKeys is old's integration with next registered too, as
// Maskinporten holds it while the customer rotates.
func withBothKeys(old, next simulator.DemoKey, scopes ...string) simulator.Client {
	c := old.Client(scopes...)
	c.MoreKeys = []simulator.RegisteredKey{{KeyID: next.KeyID, PublicKey: &next.Key.PublicKey}}
	return c
}

// lastGrantKid is the kid of the last grant the simulator received.
func lastGrantKid(t *testing.T, sim *simulator.Server) string {
	t.Helper()
	grants := sim.ReceivedGrants()
	if len(grants) == 0 {
		t.Fatal("the simulator received no grant")
	}
	tok, _, err := jwt.NewParser().ParseUnverified(grants[len(grants)-1], jwt.MapClaims{})
	if err != nil {
		t.Fatal(err)
	}
	kid, _ := tok.Header["kid"].(string)
	return kid
}

// keysEntry is a tenant's keys list in the tenants file: old from the
// start, next from nextFrom.
func keysEntry(dir string, old, next simulator.DemoKey, nextFrom time.Time) string {
	rel := func(p string) string { r, _ := filepath.Rel(dir, p); return r }
	return fmt.Sprintf("    keys:\n      - keyFile: %s\n        keyId: %s\n      - keyFile: %s\n        keyId: %s\n        notBefore: %s\n",
		rel(old.KeyFile), old.KeyID, rel(next.KeyFile), next.KeyID, nextFrom.Format(time.RFC3339))
}

// A tenant with two keys signs with the first until the second's
// notBefore and with the second from then on, without being rebuilt;
// Maskinporten accepts both while both are registered, and refuses the
// new one until it is.
func TestKeyRingRotation(t *testing.T) {
	dir := t.TempDir()
	clk := clocktest.New(time.Now().Truncate(time.Second))
	sim, err := simulator.Start(simulator.Config{Now: clk.Now}, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	old, next := rotationKeys(t, filepath.Join(dir, "keys"), "client-acme")
	switchAt := clk.Now().Add(time.Hour)
	file := filepath.Join(dir, "tenants.yaml")
	content := "tenants:\n  - name: acme\n    organisationNumber: \"912345678\"\n    clientId: client-acme\n    kinds: [road]\n" +
		keysEntry(dir, old, next, switchAt)
	if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	ts, err := config.LoadTenants(file)
	if err != nil {
		t.Fatal(err)
	}
	ring, err := LoadKeyRing(ts[0])
	if err != nil {
		t.Fatal(err)
	}
	if keys := ring.Keys(); len(keys) != 2 || keys[0].Signer.ID() != old.KeyID || !keys[1].NotBefore.Equal(switchAt) {
		t.Fatalf("ring = %v", ring)
	}
	mp := &auth.Maskinporten{TokenURL: sim.TokenURL(), Issuer: sim.Issuer(), ClientID: "client-acme", Signer: ring, Now: clk.Now}

	// The new key is not registered yet: the old one signs, and works.
	sim.AddClient(old.Client(roadScope))
	if _, err := mp.Token(t.Context(), roadScope); err != nil {
		t.Fatalf("before the switch: %v", err)
	}
	if kid := lastGrantKid(t, sim); kid != old.KeyID {
		t.Errorf("before the switch the grant names %q, want the old key %q", kid, old.KeyID)
	}
	// Had the operator set a notBefore before the customer registered
	// the new key, Maskinporten would refuse it: a configuration error.
	clk.Advance(time.Hour)
	_, err = mp.Token(t.Context(), roadScope)
	var oerr *auth.OAuthError
	if !errors.As(err, &oerr) || oerr.Code != "invalid_grant" || failure.Classify(err) != failure.Config {
		t.Errorf("new key not registered: err = %v, want invalid_grant, a configuration error", err)
	}
	if kid := lastGrantKid(t, sim); kid != next.KeyID {
		t.Errorf("after the switch the grant names %q, want the new key %q", kid, next.KeyID)
	}

	// With both registered, both are accepted, each in its time.
	sim.AddClient(withBothKeys(old, next, roadScope))
	if _, err := mp.Token(t.Context(), roadScope); err != nil {
		t.Fatalf("after the switch: %v", err)
	}
	if kid := lastGrantKid(t, sim); kid != next.KeyID {
		t.Errorf("after the switch the grant names %q, want the new key %q", kid, next.KeyID)
	}
	older, err := LoadKeyRing(ts[0].WithKey(ts[0].Keys[0]))
	if err != nil {
		t.Fatal(err)
	}
	mp.Signer = older
	if _, err := mp.Token(t.Context(), roadScope); err != nil {
		t.Errorf("the old key, still registered: %v", err)
	}
	if kid := lastGrantKid(t, sim); kid != old.KeyID {
		t.Errorf("a ring of the old key alone signed with %q", kid)
	}
	if st := sim.Stats(); st.Grants("client-acme", roadScope) != 3 {
		t.Errorf("Maskinporten issued %d tokens, want 3", st.Grants("client-acme", roadScope))
	}
}

// A key that does not load is named by its place in the list.
func TestLoadKeyRingNamesTheKey(t *testing.T) {
	dir := t.TempDir()
	old, next := rotationKeys(t, dir, "client-acme")
	bad := filepath.Join(dir, "bad.pem")
	if err := os.WriteFile(bad, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	tenant := config.Tenant{Name: "acme", ClientID: "client-acme", Keys: []config.TenantKey{
		{KeyFile: old.KeyFile, KeyID: old.KeyID},
		{KeyFile: bad, KeyID: next.KeyID},
	}}
	_, err := LoadKeyRing(tenant)
	if err == nil || !strings.Contains(err.Error(), "keys[1]: DIGITOLL_KEY_FILE") || !strings.Contains(err.Error(), bad) {
		t.Errorf("err = %v, want one naming keys[1] and its file", err)
	}
	// The single key of a tenant without a list makes a ring of one.
	ring, err := LoadKeyRing(config.Tenant{Name: "acme", KeyFile: next.KeyFile, CertFile: next.CertFile})
	if err != nil {
		t.Fatal(err)
	}
	if keys := ring.Keys(); len(keys) != 1 || keys[0].Signer.Mode() != auth.ModeX5C || !keys[0].NotBefore.IsZero() {
		t.Errorf("single key: ring = %v", ring)
	}
}

// The worker's tenants sign with their key rings: a tenant whose new key
// is not yet in force signs with the old one, a tenant past its switch
// with the new one, and a tenant none of whose keys is in force yet
// fails its token as configuration; messages of the first are accepted.
func TestTenantsSignWithKeyRing(t *testing.T) {
	f := newTenantsFixture(t)
	old, next := rotationKeys(t, filepath.Join(f.dir, "keys"), "client-shared")
	now := time.Now()
	for _, tc := range []struct {
		name      string
		nextFrom  time.Time
		firstFrom time.Time
	}{
		{name: "waiting", nextFrom: now.Add(time.Hour)},
		{name: "switched", nextFrom: now.Add(-time.Minute)},
		{name: "early", nextFrom: now.Add(2 * time.Hour), firstFrom: now.Add(time.Hour)},
	} {
		c := withBothKeys(old, next, roadScope)
		c.ID = clientID(tc.name)
		f.sim.AddClient(c)
		entry := keysEntry(f.dir, old, next, tc.nextFrom)
		if !tc.firstFrom.IsZero() {
			entry = strings.Replace(entry, "keyId: "+old.KeyID+"\n", "keyId: "+old.KeyID+"\n        notBefore: "+tc.firstFrom.Format(time.RFC3339)+"\n", 1)
		}
		f.lines = append(f.lines, fmt.Sprintf("  - name: %s\n    organisationNumber: \"912345678\"\n    clientId: %s\n    kinds: [road]\n%s",
			tc.name, clientID(tc.name), entry))
	}
	f.write(t)
	svc := f.start(t)
	tab := svc.tenants.table.Load()
	tokenKid := func(name string) (string, error) {
		_, err := tab.byName[name].tokens.Token(t.Context(), roadScope)
		if err != nil {
			return "", err
		}
		return lastGrantKid(t, f.sim), nil
	}
	if kid, err := tokenKid("waiting"); err != nil || kid != old.KeyID {
		t.Errorf("waiting: kid %q, %v; want the old key %q", kid, err, old.KeyID)
	}
	if kid, err := tokenKid("switched"); err != nil || kid != next.KeyID {
		t.Errorf("switched: kid %q, %v; want the new key %q", kid, err, next.KeyID)
	}
	_, err := tokenKid("early")
	if !errors.Is(err, auth.ErrNoEligibleKey) || failure.Classify(err) != failure.Config ||
		!strings.Contains(err.Error(), old.KeyID) || !strings.Contains(err.Error(), next.KeyID) {
		t.Errorf("early: err = %v, want a configuration error naming both kids", err)
	}

	results := f.collect(t)
	key := "waiting/" + f.publish(t, contract.KindRoad, "waiting", 0)
	if r := results.wait(t, key)[key]; r.Status != contract.StatusAccepted {
		t.Errorf("waiting's message: %s (%s %v)", r.Status, r.Note, r.Errors)
	}
	// It reused the token got with the old key.
	if g := f.sim.Stats().Grants(clientID("waiting"), roadScope); g != 1 {
		t.Errorf("waiting: %d grants, want 1", g)
	}
}

// Every tenant signing with a business certificate (x5c) reports its
// expiry, from a tenants file as from the environment; a key registered
// by kid does not expire and reports none.
func TestCertificateExpiryOfEveryTenant(t *testing.T) {
	f := newTenantsFixture(t)
	f.addTenant(t, 0, "acme", "road", roadScope) // kid
	f.addTenant(t, 1, "beta", "road", roadScope) // x5c
	f.write(t)
	vars := f.vars("4")
	vars["DIGITOLL_TENANTS_FILE"] = f.file
	cfg, err := config.Load(flag.NewFlagSet("test", flag.ContinueOnError), nil, func(k string) string { return vars[k] })
	if err != nil {
		t.Fatal(err)
	}
	m := telemetry.NewMetrics()
	if _, err := newServices(t.Context(), cfg, f.js, Telemetry{Metrics: m}, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(m.Handler())
	t.Cleanup(srv.Close)
	s, _ := promtest.Scrape(t, srv.URL)
	if v, ok := s[promtest.Key("digitoll_certificate_expiry_seconds", "tenant", "beta")]; !ok || v <= 0 {
		t.Errorf("beta's certificate expiry: %v (present %v), want the seconds left", v, ok)
	}
	if v, ok := s[promtest.Key("digitoll_certificate_expiry_seconds", "tenant", "acme")]; ok {
		t.Errorf("acme signs with a registered key, yet reports a certificate expiry of %v s", v)
	}
}
