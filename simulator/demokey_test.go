package simulator_test

import (
	"crypto/rsa"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/digitoll/digitoll-worker/simulator"
)

func TestWriteDemoKey(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	k, err := simulator.WriteDemoKey(dir, "demo-client")
	if err != nil {
		t.Fatalf("WriteDemoKey: %v", err)
	}
	if k.ClientID != "demo-client" || !regexp.MustCompile(`^demo-[0-9a-f]{8}$`).MatchString(k.KeyID) {
		t.Errorf("ClientID %q KeyID %q", k.ClientID, k.KeyID)
	}
	if pub, ok := k.Certificate.PublicKey.(*rsa.PublicKey); !ok || k.Key.N.BitLen() != 2048 || !pub.Equal(&k.Key.PublicKey) {
		t.Error("not an RSA 2048 key with its certificate")
	}
	info, err := os.Stat(k.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", info.Mode().Perm())
	}
	keyPEM, err := os.ReadFile(k.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^-----BEGIN PRIVATE KEY-----\n`).Match(keyPEM) {
		t.Error("key file is not PKCS#8 PEM")
	}

	again, err := simulator.WriteDemoKey(dir, "demo-client")
	if err != nil {
		t.Fatalf("second WriteDemoKey: %v", err)
	}
	if again.KeyID != k.KeyID || !again.Key.Equal(k.Key) || !again.Certificate.Equal(k.Certificate) {
		t.Error("a second call did not reuse the key")
	}

	if err := os.WriteFile(k.CertFile, []byte("not a certificate"), 0o644); err != nil {
		t.Fatal(err)
	}
	fresh, err := simulator.WriteDemoKey(dir, "demo-client")
	if err != nil {
		t.Fatalf("WriteDemoKey over a broken file: %v", err)
	}
	if fresh.Key.Equal(k.Key) {
		t.Error("a broken certificate file was kept with its key")
	}
	if reread, err := simulator.WriteDemoKey(dir, "demo-client"); err != nil || reread.KeyID != fresh.KeyID {
		t.Errorf("the replacement was not written: %v", err)
	}

	for _, bad := range []string{"", "..", "a/b"} {
		if _, err := simulator.WriteDemoKey(dir, bad); err == nil {
			t.Errorf("client id %q accepted", bad)
		}
	}
}

func TestDemoKeyClient(t *testing.T) {
	k, err := simulator.WriteDemoKey(t.TempDir(), "demo")
	if err != nil {
		t.Fatal(err)
	}
	srv := start(t, simulator.Config{Clients: []simulator.Client{k.Client(scopeRoad)}})
	for name, header := range map[string]map[string]any{
		"kid": {"kid": k.KeyID},
		"x5c": {"x5c": x5c(k.Certificate)},
	} {
		t.Run(name, func(t *testing.T) {
			g := sign(t, jwt.SigningMethodRS256, k.Key, header, claims(srv, "demo", scopeRoad, time.Now()))
			tok := exchange(t, srv, maskinportenToken(t, srv, g))
			if a := call(t, http.MethodGet, road(srv, "test-auth"), tok, nil); a.status != http.StatusOK {
				t.Errorf("test-auth: %d", a.status)
			}
		})
	}
}
