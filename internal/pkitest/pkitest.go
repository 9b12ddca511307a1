// Package pkitest makes certificate authorities, certificates and private
// keys for tests, written to PEM files the way an operator would hold
// them: for TLS between NATS clients and servers, and for the business
// certificates and registered keys of Maskinporten grants.
package pkitest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// CA is a self-signed certificate authority whose certificate is in
// CertFile.
type CA struct {
	Cert     *x509.Certificate
	Key      crypto.Signer
	CertFile string
	dir      string
	serial   int64
}

// NewCA makes a certificate authority valid from an hour ago for a year,
// with its files in a temporary directory of t.
func NewCA(t testing.TB, name string) *CA {
	t.Helper()
	key := ecKey(t)
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(365 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	cert := create(t, tmpl, tmpl, key.Public(), key)
	dir := t.TempDir()
	ca := &CA{Cert: cert, Key: key, dir: dir, serial: 1}
	ca.CertFile = filepath.Join(dir, name+".ca.pem")
	WriteCerts(t, ca.CertFile, cert)
	return ca
}

// LeafOptions shape a certificate issued by a CA.
type LeafOptions struct {
	// Server adds the names 127.0.0.1 and localhost and the server
	// authentication usage; Client adds client authentication. Neither
	// gives a certificate for signing only (a business certificate).
	Server, Client bool
	// RSA makes an RSA 2048 key (what Maskinporten grants need) instead
	// of a quicker ECDSA P-256 one.
	RSA bool
	// NotBefore and NotAfter default to an hour ago and 90 days ahead.
	NotBefore, NotAfter time.Time
	// Key, when set, is certified instead of a new key.
	Key crypto.Signer
}

// Leaf is a certificate with its key. CertFile holds the certificate
// alone, ChainFile the certificate followed by its CA's, KeyFile the key
// (PKCS#8, mode 0600).
type Leaf struct {
	Cert      *x509.Certificate
	Key       crypto.Signer
	CertFile  string
	ChainFile string
	KeyFile   string
}

// Issue makes a key (unless o.Key is set) and a certificate for it named
// name, signed by ca, and writes both to files in ca's directory.
func (ca *CA) Issue(t testing.TB, name string, o LeafOptions) *Leaf {
	t.Helper()
	key := o.Key
	if key == nil {
		if o.RSA {
			key = rsaKey(t)
		} else {
			key = ecKey(t)
		}
	}
	now := time.Now()
	if o.NotBefore.IsZero() {
		o.NotBefore = now.Add(-time.Hour)
	}
	if o.NotAfter.IsZero() {
		o.NotAfter = now.Add(90 * 24 * time.Hour)
	}
	ca.serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(ca.serial),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    o.NotBefore,
		NotAfter:     o.NotAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	if o.Server {
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
		tmpl.DNSNames = []string{"localhost"}
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
	}
	if o.Client {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
	}
	cert := create(t, tmpl, ca.Cert, key.Public(), ca.Key)
	l := &Leaf{
		Cert:      cert,
		Key:       key,
		CertFile:  filepath.Join(ca.dir, name+".cert.pem"),
		ChainFile: filepath.Join(ca.dir, name+".chain.pem"),
		KeyFile:   filepath.Join(ca.dir, name+".key.pem"),
	}
	WriteCerts(t, l.CertFile, cert)
	WriteCerts(t, l.ChainFile, cert, ca.Cert)
	WriteKey(t, l.KeyFile, key)
	return l
}

// WriteCerts writes certs to path as PEM, mode 0644.
func WriteCerts(t testing.TB, path string, certs ...*x509.Certificate) {
	t.Helper()
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
}

// WriteKey writes key to path as PKCS#8 PEM, mode 0600.
func WriteKey(t testing.TB, path string, key crypto.Signer) {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func create(t testing.TB, tmpl, parent *x509.Certificate, pub crypto.PublicKey, signer crypto.Signer) *x509.Certificate {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func ecKey(t testing.TB) crypto.Signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func rsaKey(t testing.TB) crypto.Signer {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
