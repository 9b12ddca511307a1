package simulator

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// demoCertLifetime is how long a demo certificate is valid; a demo
// directory kept for years gets a fresh key when it expires.
const demoCertLifetime = 5 * 365 * 24 * time.Hour

// DemoKey is a signing key and self-signed certificate for a demo client,
// kept in files so that the worker can be configured with them.
type DemoKey struct {
	// ClientID is the integration id the key belongs to.
	ClientID string
	// KeyID is the kid under which the key is registered: "demo-" and
	// the first 8 hex digits of the SHA-256 of the public key (PKIX DER).
	KeyID string
	// KeyFile holds the private key, PKCS#8 PEM, mode 0600.
	KeyFile string
	// CertFile holds the self-signed certificate, PEM.
	CertFile string
	// Key is the private key.
	Key *rsa.PrivateKey
	// Certificate is the self-signed certificate of Key.
	Certificate *x509.Certificate
}

// Client is the integration that accepts grants signed with k, in both
// kid and x5c mode, with the given scopes.
func (k DemoKey) Client(scopes ...string) Client {
	return Client{
		ID:          k.ClientID,
		KeyID:       k.KeyID,
		PublicKey:   &k.Key.PublicKey,
		Certificate: k.Certificate,
		Scopes:      slices.Clone(scopes),
	}
}

// WriteDemoKey makes an RSA 2048 key and a self-signed certificate for
// clientID in dir, as <clientID>.key.pem and <clientID>.cert.pem. Files
// already there are reused when they hold a matching key and a certificate
// valid now, so that a restarted demo keeps its key; otherwise they are
// replaced. clientID must be usable as a file name.
func WriteDemoKey(dir, clientID string) (DemoKey, error) {
	if clientID == "" || clientID != filepath.Base(clientID) || clientID == "." || clientID == ".." {
		return DemoKey{}, fmt.Errorf("simulator: demo key: client id %q is not a plain file name", clientID)
	}
	k := DemoKey{
		ClientID: clientID,
		KeyFile:  filepath.Join(dir, clientID+".key.pem"),
		CertFile: filepath.Join(dir, clientID+".cert.pem"),
	}
	if key, cert, err := loadDemoKey(k.KeyFile, k.CertFile); err == nil {
		k.Key, k.Certificate = key, cert
		return k.withKeyID()
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return DemoKey{}, fmt.Errorf("simulator: demo key: %w", err)
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return DemoKey{}, fmt.Errorf("simulator: demo key: generate: %w", err)
	}
	cert, err := selfSign(key, clientID)
	if err != nil {
		return DemoKey{}, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return DemoKey{}, fmt.Errorf("simulator: demo key: marshal: %w", err)
	}
	if err := writeFileAtomic(k.KeyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return DemoKey{}, err
	}
	if err := writeFileAtomic(k.CertFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o644); err != nil {
		return DemoKey{}, err
	}
	k.Key, k.Certificate = key, cert
	return k.withKeyID()
}

func (k DemoKey) withKeyID() (DemoKey, error) {
	pub, err := x509.MarshalPKIXPublicKey(&k.Key.PublicKey)
	if err != nil {
		return DemoKey{}, fmt.Errorf("simulator: demo key: marshal public key: %w", err)
	}
	sum := sha256.Sum256(pub)
	k.KeyID = "demo-" + hex.EncodeToString(sum[:4])
	return k, nil
}

// loadDemoKey reads a demo key pair, refusing one that is unusable.
func loadDemoKey(keyFile, certFile string) (*rsa.PrivateKey, *x509.Certificate, error) {
	keyDER, err := readPEM(keyFile, "PRIVATE KEY")
	if err != nil {
		return nil, nil, err
	}
	parsed, err := x509.ParsePKCS8PrivateKey(keyDER)
	if err != nil {
		return nil, nil, err
	}
	key, ok := parsed.(*rsa.PrivateKey)
	if !ok {
		return nil, nil, errors.New("not an RSA key")
	}
	certDER, err := readPEM(certFile, "CERTIFICATE")
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(certDER)
	if err != nil {
		return nil, nil, err
	}
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok || !pub.Equal(&key.PublicKey) {
		return nil, nil, errors.New("certificate does not match key")
	}
	if now := time.Now(); now.Before(cert.NotBefore) || now.After(cert.NotAfter) {
		return nil, nil, errors.New("certificate not valid now")
	}
	return key, cert, nil
}

func readPEM(file, typ string) ([]byte, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != typ {
		return nil, fmt.Errorf("%s: no %s PEM block", file, typ)
	}
	return block.Bytes, nil
}

func selfSign(key *rsa.PrivateKey, clientID string) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("simulator: demo key: serial: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: clientID, Organization: []string{"digitoll simulator demo"}},
		// An hour back, so that a client clock slightly behind accepts it.
		NotBefore: now.Add(-time.Hour),
		NotAfter:  now.Add(demoCertLifetime),
		KeyUsage:  x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("simulator: demo key: certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("simulator: demo key: certificate: %w", err)
	}
	return cert, nil
}

// writeFileAtomic writes data with mode perm through a temporary file, so
// that a crash leaves the old file or the new one, never half of one.
func writeFileAtomic(file string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(file), ".tmp-"+filepath.Base(file)+"-*")
	if err != nil {
		return fmt.Errorf("simulator: demo key: %w", err)
	}
	defer os.Remove(tmp.Name()) // fails harmlessly once renamed
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return fmt.Errorf("simulator: demo key: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("simulator: demo key: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("simulator: demo key: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("simulator: demo key: %w", err)
	}
	if err := os.Rename(tmp.Name(), file); err != nil {
		return fmt.Errorf("simulator: demo key: %w", err)
	}
	return nil
}
