// Package auth obtains Toll access tokens for one tenant in one
// environment: it signs Maskinporten JWT grants (with a registered key id
// or a business certificate), fetches Maskinporten access tokens,
// exchanges them at Toll, and caches the resulting Toll token per scope.
//
// Nothing in this package ever puts a private key, a grant or an access
// token into an error or a log record; errors from the token endpoints are
// typed (*OAuthError) and classify into the failure package's classes.
package auth

import (
	"bytes"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"software.sslmate.com/src/go-pkcs12"
)

// minRSABits is the smallest RSA key Maskinporten accepts for signing
// grants; refusing smaller keys at load time turns a confusing
// invalid_grant at run time into a clear start-up error.
const minRSABits = 2048

// Mode is how a Signer identifies its key to Maskinporten.
type Mode int

const (
	// ModeKID sends the key id registered on the integration in the
	// grant's "kid" header.
	ModeKID Mode = iota + 1
	// ModeX5C sends the business certificate chain in the grant's "x5c"
	// header (Norwegian virksomhetssertifikat, or a foreign business
	// certificate with its whole chain).
	ModeX5C
)

// String returns "kid" or "x5c", the header each mode sets.
func (m Mode) String() string {
	switch m {
	case ModeKID:
		return "kid"
	case ModeX5C:
		return "x5c"
	default:
		return "unknown"
	}
}

// Signer holds a tenant's RSA private key and how Maskinporten finds the
// matching public key: either a key id or a certificate chain. Build it
// with NewKeySigner or NewCertSigner. A Signer is immutable and safe for
// concurrent use. Its String and LogValue methods never reveal the key.
type Signer struct {
	key   *rsa.PrivateKey
	kid   string
	chain []*x509.Certificate
	// x5c is the chain encoded once for the header: standard base64 DER,
	// leaf first, as RFC 7515 section 4.1.6 requires.
	x5c []string
}

// NewKeySigner returns a Signer that names its key by kid, the key id
// registered on the Maskinporten integration.
func NewKeySigner(key *rsa.PrivateKey, kid string) (*Signer, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	if kid == "" {
		return nil, errors.New("auth: key id (kid) is empty")
	}
	return &Signer{key: key, kid: kid}, nil
}

// NewCertSigner returns a Signer that sends chain (leaf first, then the
// certificates that issued it) in the x5c header. The leaf's public key
// must be key's public key: a mismatch would only surface later as an
// opaque invalid_grant from Maskinporten.
func NewCertSigner(key *rsa.PrivateKey, chain []*x509.Certificate) (*Signer, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	if len(chain) == 0 {
		return nil, errors.New("auth: certificate chain is empty")
	}
	for i, c := range chain {
		if c == nil {
			return nil, fmt.Errorf("auth: certificate %d of the chain is nil", i)
		}
	}
	leaf := chain[0]
	if !key.PublicKey.Equal(leaf.PublicKey) {
		return nil, fmt.Errorf("auth: private key does not match the public key of certificate %q (serial %s)",
			leaf.Subject.String(), leaf.SerialNumber.String())
	}
	x5c := make([]string, len(chain))
	for i, c := range chain {
		x5c[i] = base64.StdEncoding.EncodeToString(c.Raw)
	}
	return &Signer{key: key, chain: append([]*x509.Certificate(nil), chain...), x5c: x5c}, nil
}

// Mode reports whether the Signer sends a kid or an x5c header.
func (s *Signer) Mode() Mode {
	if len(s.chain) > 0 {
		return ModeX5C
	}
	return ModeKID
}

// NotAfter returns the leaf certificate's expiry in x5c mode, so that an
// operator can be warned before the business certificate runs out. In kid
// mode there is no certificate and ok is false.
func (s *Signer) NotAfter() (notAfter time.Time, ok bool) {
	if len(s.chain) == 0 {
		return time.Time{}, false
	}
	return s.chain[0].NotAfter, true
}

// ID names the key the way Maskinporten finds it, for operators: the kid
// in kid mode, the leaf certificate's subject in x5c mode. It is never
// secret.
func (s *Signer) ID() string {
	if len(s.chain) > 0 {
		return s.chain[0].Subject.String()
	}
	return s.kid
}

// String describes the Signer without its key, so that printing one by
// accident (%v, %+v) leaks nothing.
func (s *Signer) String() string {
	if s == nil {
		return "auth.Signer(nil)"
	}
	if s.Mode() == ModeX5C {
		return fmt.Sprintf("auth.Signer{mode: x5c, subject: %q, notAfter: %s}",
			s.chain[0].Subject.String(), s.chain[0].NotAfter.UTC().Format(time.RFC3339))
	}
	return fmt.Sprintf("auth.Signer{mode: kid, kid: %q}", s.kid)
}

// GoString keeps %#v from printing the private key's numbers.
func (s *Signer) GoString() string { return s.String() }

// LogValue implements slog.LogValuer with the same safe description.
func (s *Signer) LogValue() slog.Value {
	if s == nil {
		return slog.StringValue("nil")
	}
	if s.Mode() == ModeX5C {
		return slog.GroupValue(
			slog.String("mode", "x5c"),
			slog.String("subject", s.chain[0].Subject.String()),
			slog.Time("notAfter", s.chain[0].NotAfter),
		)
	}
	return slog.GroupValue(slog.String("mode", "kid"), slog.String("kid", s.kid))
}

func checkKey(key *rsa.PrivateKey) error {
	if key == nil {
		return errors.New("auth: private key is nil")
	}
	if bits := key.N.BitLen(); bits < minRSABits {
		return fmt.Errorf("auth: RSA key has %d bits, Maskinporten requires at least %d", bits, minRSABits)
	}
	return nil
}

// LoadPEMKey reads an RSA private key from a PEM file holding either a
// PKCS#1 "RSA PRIVATE KEY" or a PKCS#8 "PRIVATE KEY" block. Other blocks
// (certificates in a combined file) are skipped. Errors name the file but
// never quote its contents.
func LoadPEMKey(path string) (*rsa.PrivateKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("auth: reading key file: %w", err)
	}
	key, err := ParsePEMKey(data)
	if err != nil {
		return nil, fmt.Errorf("auth: key file %s: %w", path, err)
	}
	return key, nil
}

// ParsePEMKey parses the first private key block in PEM data; see
// LoadPEMKey. Encrypted keys are refused: use a PKCS#12 file when the key
// must be protected by a password.
func ParsePEMKey(data []byte) (*rsa.PrivateKey, error) {
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, errors.New("no PEM private key block found (want \"RSA PRIVATE KEY\" or \"PRIVATE KEY\")")
		}
		if _, encrypted := block.Headers["Proc-Type"]; encrypted {
			return nil, fmt.Errorf("PEM block %q is encrypted; decrypt it or use a PKCS#12 file", block.Type)
		}
		switch block.Type {
		case "RSA PRIVATE KEY":
			key, err := x509.ParsePKCS1PrivateKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("parsing PKCS#1 RSA private key: %w", err)
			}
			return key, nil
		case "PRIVATE KEY":
			parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("parsing PKCS#8 private key: %w", err)
			}
			key, ok := parsed.(*rsa.PrivateKey)
			if !ok {
				return nil, fmt.Errorf("PKCS#8 private key is %s, Maskinporten grants need RSA", keyTypeName(parsed))
			}
			return key, nil
		case "EC PRIVATE KEY":
			return nil, errors.New("key is an EC key, Maskinporten grants need RSA")
		case "ENCRYPTED PRIVATE KEY":
			return nil, errors.New("PKCS#8 key is encrypted; decrypt it or use a PKCS#12 file")
		}
	}
}

// LoadPEMCertificates reads every "CERTIFICATE" block of a PEM chain file,
// in file order, which must be leaf first. Other blocks are skipped so that
// a file holding key and certificates together works.
func LoadPEMCertificates(path string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("auth: reading certificate file: %w", err)
	}
	var certs []*x509.Certificate
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("auth: certificate file %s: certificate %d: %w", path, len(certs), err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("auth: certificate file %s: no PEM \"CERTIFICATE\" block found", path)
	}
	return certs, nil
}

// LoadPKCS12 reads a PKCS#12 (.p12/.pfx) file, the format business
// certificates (virksomhetssertifikat) are delivered in, and returns its
// RSA key and certificate chain, leaf first.
//
// PKCS#12 does not order its certificates, so the leaf is the certificate
// whose public key matches the private key, followed by its issuers as far
// as the file holds them. Certificates that do not belong to that chain
// are left out: x5c must be a chain, and an unrelated certificate there
// would make Maskinporten reject the grant.
func LoadPKCS12(path string, password string) (*rsa.PrivateKey, []*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("auth: reading PKCS#12 file: %w", err)
	}
	parsed, first, others, err := pkcs12.DecodeChain(data, password)
	if err != nil {
		return nil, nil, fmt.Errorf("auth: PKCS#12 file %s: %w", path, err)
	}
	key, ok := parsed.(*rsa.PrivateKey)
	if !ok {
		return nil, nil, fmt.Errorf("auth: PKCS#12 file %s: private key is %s, Maskinporten grants need RSA", path, keyTypeName(parsed))
	}
	chain, err := orderChain(key, append([]*x509.Certificate{first}, others...))
	if err != nil {
		return nil, nil, fmt.Errorf("auth: PKCS#12 file %s: %w", path, err)
	}
	return key, chain, nil
}

// orderChain picks the certificate for key as the leaf and follows issuer
// links from there. Each step checks the signature, not only the names,
// so that two CAs with the same name cannot be confused.
func orderChain(key *rsa.PrivateKey, certs []*x509.Certificate) ([]*x509.Certificate, error) {
	leafAt := -1
	for i, c := range certs {
		if key.PublicKey.Equal(c.PublicKey) {
			leafAt = i
			break
		}
	}
	if leafAt < 0 {
		return nil, errors.New("no certificate matches the private key")
	}
	used := make([]bool, len(certs))
	used[leafAt] = true
	chain := []*x509.Certificate{certs[leafAt]}
	// Each pass appends at most one certificate, so len(certs) passes bound the walk.
	for range certs {
		last := chain[len(chain)-1]
		if bytes.Equal(last.RawIssuer, last.RawSubject) && last.CheckSignatureFrom(last) == nil {
			break // self-signed root: the chain ends here
		}
		next := -1
		for i, c := range certs {
			if !used[i] && bytes.Equal(last.RawIssuer, c.RawSubject) && last.CheckSignatureFrom(c) == nil {
				next = i
				break
			}
		}
		if next < 0 {
			break
		}
		used[next] = true
		chain = append(chain, certs[next])
	}
	return chain, nil
}

func keyTypeName(k any) string {
	if k == nil {
		return "missing"
	}
	return fmt.Sprintf("%T", k)
}
