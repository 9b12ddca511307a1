package auth_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"software.sslmate.com/src/go-pkcs12"

	"github.com/digitoll/digitoll-worker/auth"
)

func pemBytes(t *testing.T, typ string, der []byte) []byte {
	t.Helper()
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func pkcs8(t *testing.T, key any) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestParsePEMKey(t *testing.T) {
	p := pki(t)
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, err := x509.MarshalECPrivateKey(ecKey)
	if err != nil {
		t.Fatal(err)
	}
	pkcs1 := pemBytes(t, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(p.leafKey))
	encrypted := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY",
		Headers: map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-256-CBC,00"}, Bytes: []byte{1, 2, 3}})

	tests := []struct {
		name    string
		data    []byte
		wantErr string // empty: must parse to p.leafKey
	}{
		{"PKCS#1", pkcs1, ""},
		{"PKCS#8", pemBytes(t, "PRIVATE KEY", pkcs8(t, p.leafKey)), ""},
		{"certificate before key", append(pemBytes(t, "CERTIFICATE", p.leaf.Raw), pkcs1...), ""},
		{"PKCS#8 EC key", pemBytes(t, "PRIVATE KEY", pkcs8(t, ecKey)), "need RSA"},
		{"SEC1 EC key", pemBytes(t, "EC PRIVATE KEY", ecDER), "need RSA"},
		{"legacy encrypted", encrypted, "encrypted"},
		{"encrypted PKCS#8", pemBytes(t, "ENCRYPTED PRIVATE KEY", []byte{1, 2, 3}), "encrypted"},
		{"corrupt PKCS#1", pemBytes(t, "RSA PRIVATE KEY", []byte{0x30, 0x03, 1, 2, 3}), "PKCS#1"},
		{"no PEM", []byte("not a key"), "no PEM private key block"},
		{"only a certificate", pemBytes(t, "CERTIFICATE", p.leaf.Raw), "no PEM private key block"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			key, err := auth.ParsePEMKey(tc.data)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if !key.Equal(p.leafKey) {
					t.Fatal("parsed a different key")
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestLoadPEMKey(t *testing.T) {
	p := pki(t)
	good := writeFile(t, "key.pem", pemBytes(t, "PRIVATE KEY", pkcs8(t, p.leafKey)))
	key, err := auth.LoadPEMKey(good)
	if err != nil {
		t.Fatal(err)
	}
	if !key.Equal(p.leafKey) {
		t.Fatal("loaded a different key")
	}

	missing := filepath.Join(t.TempDir(), "missing.pem")
	if _, err := auth.LoadPEMKey(missing); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing file: err = %v, want it to name %s", err, missing)
	}

	// A damaged key: the error names the file but quotes none of it.
	body := x509.MarshalPKCS1PrivateKey(p.leafKey)
	damaged := pemBytes(t, "RSA PRIVATE KEY", body[:len(body)/2])
	bad := writeFile(t, "bad.pem", damaged)
	_, err = auth.LoadPEMKey(bad)
	if err == nil || !strings.Contains(err.Error(), bad) {
		t.Fatalf("damaged file: err = %v, want it to name %s", err, bad)
	}
	lines := strings.Split(string(damaged), "\n")
	for _, l := range lines[1 : len(lines)-2] {
		if strings.Contains(err.Error(), l) {
			t.Fatalf("error quotes key material: %v", err)
		}
	}
}

func TestLoadPEMCertificates(t *testing.T) {
	p := pki(t)
	var data []byte
	for _, c := range []*x509.Certificate{p.leaf, p.inter, p.root} {
		data = append(data, pemBytes(t, "CERTIFICATE", c.Raw)...)
	}
	data = append(data, pemBytes(t, "PRIVATE KEY", pkcs8(t, p.leafKey))...)
	certs, err := auth.LoadPEMCertificates(writeFile(t, "chain.pem", data))
	if err != nil {
		t.Fatal(err)
	}
	if len(certs) != 3 || !certs[0].Equal(p.leaf) || !certs[1].Equal(p.inter) || !certs[2].Equal(p.root) {
		t.Fatalf("got %d certificates, want leaf, intermediate, root in file order", len(certs))
	}

	empty := writeFile(t, "empty.pem", pemBytes(t, "PRIVATE KEY", pkcs8(t, p.leafKey)))
	if _, err := auth.LoadPEMCertificates(empty); err == nil || !strings.Contains(err.Error(), empty) {
		t.Errorf("file without certificates: err = %v", err)
	}
}

func TestLoadPKCS12(t *testing.T) {
	p := pki(t)
	unrelatedKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	unrelated, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: p.root.SerialNumber, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour),
	}, p.root, &unrelatedKey.PublicKey, p.rootKey)
	if err != nil {
		t.Fatal(err)
	}
	unrelatedCert, err := x509.ParseCertificate(unrelated)
	if err != nil {
		t.Fatal(err)
	}
	const password = "hemmelig-passord"

	tests := []struct {
		name    string
		enc     *pkcs12.Encoder
		key     any
		cert    *x509.Certificate
		cas     []*x509.Certificate
		open    string
		want    []*x509.Certificate
		wantErr string
	}{
		{name: "modern, CAs out of order", enc: pkcs12.Modern, key: p.leafKey, cert: p.leaf,
			cas: []*x509.Certificate{p.root, p.inter}, open: password, want: []*x509.Certificate{p.leaf, p.inter, p.root}},
		{name: "legacy DES", enc: pkcs12.LegacyDES, key: p.leafKey, cert: p.leaf,
			cas: []*x509.Certificate{p.inter, p.root}, open: password, want: []*x509.Certificate{p.leaf, p.inter, p.root}},
		{name: "leaf only", enc: pkcs12.Modern, key: p.leafKey, cert: p.leaf, open: password, want: []*x509.Certificate{p.leaf}},
		{name: "unrelated certificate dropped", enc: pkcs12.Modern, key: p.leafKey, cert: p.leaf,
			cas: []*x509.Certificate{unrelatedCert, p.inter}, open: password, want: []*x509.Certificate{p.leaf, p.inter}},
		{name: "wrong password", enc: pkcs12.Modern, key: p.leafKey, cert: p.leaf, open: "wrong", wantErr: "password"},
		{name: "EC key", enc: pkcs12.Modern, key: unrelatedKey, cert: unrelatedCert, open: password, wantErr: "need RSA"},
		{name: "key matches no certificate", enc: pkcs12.Modern, key: p.interKey, cert: p.leaf, open: password, wantErr: "no certificate matches"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			der, err := tc.enc.Encode(tc.key, tc.cert, tc.cas, password)
			if err != nil {
				t.Fatal(err)
			}
			path := writeFile(t, "cert.p12", der)
			key, chain, err := auth.LoadPKCS12(path, tc.open)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), path) {
					t.Fatalf("err = %v, want one naming the file and containing %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), password) {
					t.Fatalf("error contains the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !key.Equal(tc.key) {
				t.Fatal("loaded a different key")
			}
			if len(chain) != len(tc.want) {
				t.Fatalf("chain has %d certificates, want %d", len(chain), len(tc.want))
			}
			for i := range chain {
				if !chain[i].Equal(tc.want[i]) {
					t.Errorf("chain[%d] = %s, want %s", i, chain[i].Subject, tc.want[i].Subject)
				}
			}
			if _, err := auth.NewCertSigner(key, chain); err != nil {
				t.Errorf("loaded key and chain make no signer: %v", err)
			}
		})
	}
}

func TestSigners(t *testing.T) {
	p := pki(t)
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("kid", func(t *testing.T) {
		s := kidSigner(t)
		if s.Mode() != auth.ModeKID {
			t.Errorf("mode = %v", s.Mode())
		}
		if _, ok := s.NotAfter(); ok {
			t.Error("kid signer reports a certificate expiry")
		}
	})
	t.Run("x5c", func(t *testing.T) {
		s, err := auth.NewCertSigner(p.leafKey, []*x509.Certificate{p.leaf, p.inter})
		if err != nil {
			t.Fatal(err)
		}
		if s.Mode() != auth.ModeX5C {
			t.Errorf("mode = %v", s.Mode())
		}
		if na, ok := s.NotAfter(); !ok || !na.Equal(p.leaf.NotAfter) {
			t.Errorf("NotAfter = %v, %v; want %v", na, ok, p.leaf.NotAfter)
		}
	})

	errTests := []struct {
		name    string
		make    func() (*auth.Signer, error)
		wantErr string
	}{
		{"certificate of another key", func() (*auth.Signer, error) {
			return auth.NewCertSigner(p.interKey, []*x509.Certificate{p.leaf})
		}, "does not match"},
		{"empty chain", func() (*auth.Signer, error) { return auth.NewCertSigner(p.leafKey, nil) }, "empty"},
		{"nil certificate", func() (*auth.Signer, error) {
			return auth.NewCertSigner(p.leafKey, []*x509.Certificate{p.leaf, nil})
		}, "nil"},
		{"empty kid", func() (*auth.Signer, error) { return auth.NewKeySigner(p.leafKey, "") }, "kid"},
		{"nil key", func() (*auth.Signer, error) { return auth.NewKeySigner(nil, "k") }, "nil"},
		{"short key", func() (*auth.Signer, error) { return auth.NewKeySigner(small, "k") }, "1024 bits"},
	}
	for _, tc := range errTests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := tc.make()
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("signer %v, err = %v; want an error containing %q", s, err, tc.wantErr)
			}
		})
	}
}

// A Signer printed or logged by accident shows no key material.
func TestSignerDoesNotPrintKey(t *testing.T) {
	p := pki(t)
	cert, err := auth.NewCertSigner(p.leafKey, []*x509.Certificate{p.leaf})
	if err != nil {
		t.Fatal(err)
	}
	secret := p.leafKey.D.String()
	for _, s := range []*auth.Signer{kidSigner(t), cert} {
		var logged strings.Builder
		slog.New(slog.NewJSONHandler(&logged, nil)).Info("signer", "signer", s)
		holder := struct{ Signer *auth.Signer }{s}
		for _, out := range []string{
			//lint:ignore S1025 each formatting verb is what is under test
			fmt.Sprintf("%v", s), fmt.Sprintf("%+v", s), fmt.Sprintf("%#v", s), fmt.Sprintf("%s", s),
			fmt.Sprintf("%+v", holder), logged.String(),
		} {
			if strings.Contains(out, secret) || strings.Contains(out, p.leafKey.Primes[0].String()) {
				t.Fatalf("printed signer contains the private key: %.80s…", out)
			}
			if !strings.Contains(out, s.Mode().String()) {
				t.Errorf("printed signer %q does not say its mode", out)
			}
		}
	}
}
