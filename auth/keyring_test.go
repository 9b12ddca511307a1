package auth_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/digitoll/digitoll-worker/auth"
	"github.com/digitoll/digitoll-worker/failure"
)

// certSignerValid is an x5c signer of the shared leaf key whose
// certificate is valid from notBefore to notAfter.
func certSignerValid(t *testing.T, cn string, notBefore, notAfter time.Time) *auth.Signer {
	t.Helper()
	p := pki(t)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(notBefore.UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &p.leafKey.PublicKey, p.leafKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	s, err := auth.NewCertSigner(p.leafKey, []*x509.Certificate{cert})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func kid(t *testing.T, id string) *auth.Signer {
	t.Helper()
	s, err := auth.NewKeySigner(pki(t).leafKey, id)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// grantKey is the kid, or the x5c leaf's subject, in a grant's header.
func grantKey(t *testing.T, grant string) string {
	t.Helper()
	tok, _, err := jwt.NewParser().ParseUnverified(grant, jwt.MapClaims{})
	if err != nil {
		t.Fatal(err)
	}
	if k, ok := tok.Header["kid"].(string); ok {
		return k
	}
	x5c, _ := tok.Header["x5c"].([]any)
	if len(x5c) == 0 {
		t.Fatalf("grant header has neither kid nor x5c: %v", tok.Header)
	}
	der, err := base64.StdEncoding.DecodeString(x5c[0].(string))
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert.Subject.String()
}

// The key that signs is the eligible one with the latest notBefore, the
// first listed among equals; a certificate outside its validity is passed
// over; with none eligible the grant fails as configuration.
func TestKeyRingSelection(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 6, 0, 0, 0, time.UTC)
	old := auth.RingKey{Signer: kid(t, "old")}
	next := auth.RingKey{Signer: kid(t, "new"), NotBefore: t0.Add(time.Hour)}
	expired := auth.RingKey{Signer: certSignerValid(t, "expired", t0.Add(-48*time.Hour), t0.Add(-time.Hour)), NotBefore: t0.Add(-30 * time.Minute)}
	valid := auth.RingKey{Signer: certSignerValid(t, "valid", t0.Add(-48*time.Hour), t0.Add(48*time.Hour)), NotBefore: t0.Add(-30 * time.Minute)}
	early := auth.RingKey{Signer: certSignerValid(t, "early", t0.Add(time.Hour), t0.Add(48*time.Hour))}

	tests := []struct {
		name string
		keys []auth.RingKey
		now  time.Time
		// want is the index of the key in use, -1 for none.
		want int
		// wantKey is the kid or subject the grant names.
		wantKey string
	}{
		{"before the new key's notBefore", []auth.RingKey{old, next}, t0, 0, "old"},
		{"at the new key's notBefore", []auth.RingKey{old, next}, t0.Add(time.Hour), 1, "new"},
		{"after it", []auth.RingKey{old, next}, t0.Add(48 * time.Hour), 1, "new"},
		{"listed first, it still wins by notBefore", []auth.RingKey{next, old}, t0.Add(2 * time.Hour), 0, "new"},
		{"expired certificate skipped", []auth.RingKey{old, expired}, t0, 0, "old"},
		{"valid certificate used", []auth.RingKey{old, valid}, t0, 1, "CN=valid"},
		{"certificate not yet valid skipped", []auth.RingKey{old, early}, t0, 0, "old"},
		{"certificate valid once its time comes", []auth.RingKey{old, early}, t0.Add(2 * time.Hour), 0, "old"},
		{"ties without notBefore: first listed", []auth.RingKey{{Signer: kid(t, "a")}, {Signer: kid(t, "b")}}, t0, 0, "a"},
		{"ties with notBefore: first listed", []auth.RingKey{{Signer: kid(t, "a"), NotBefore: t0}, {Signer: kid(t, "b"), NotBefore: t0}}, t0, 0, "a"},
		{"only a later one", []auth.RingKey{next}, t0.Add(time.Hour), 0, "new"},
		{"none eligible", []auth.RingKey{next, expired}, t0, -1, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ring, err := auth.NewKeyRing("acme", tc.keys)
			if err != nil {
				t.Fatal(err)
			}
			i, err := ring.InUse(tc.now)
			grant, gerr := ring.Grant(testClientID, "https://test.maskinporten.no/", []string{"toll:movement/road/v2"}, tc.now)
			if tc.want < 0 {
				for _, e := range []error{err, gerr} {
					if !errors.Is(e, auth.ErrNoEligibleKey) || failure.Classify(e) != failure.Config {
						t.Fatalf("err = %v, want ErrNoEligibleKey marked as configuration", e)
					}
				}
				for _, w := range []string{"acme", `kid "new": not before 2026-03-01T07:00:00Z`, `x5c "CN=expired": certificate expired at`} {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not say %q", err, w)
					}
				}
				if grant != "" {
					t.Error("a grant was signed with no key eligible")
				}
				return
			}
			if err != nil || gerr != nil {
				t.Fatalf("InUse: %v; Grant: %v", err, gerr)
			}
			if i != tc.want {
				t.Errorf("InUse = %d, want %d", i, tc.want)
			}
			if got := grantKey(t, grant); got != tc.wantKey {
				t.Errorf("grant names %q, want %q", got, tc.wantKey)
			}
		})
	}
}

func TestNewKeyRingRefusesEmpty(t *testing.T) {
	if _, err := auth.NewKeyRing("acme", nil); err == nil {
		t.Error("a ring without keys was made")
	}
	if _, err := auth.NewKeyRing("acme", []auth.RingKey{{NotBefore: time.Now()}}); err == nil {
		t.Error("a ring with a key without signer was made")
	}
}

// Maskinporten signs each grant with the ring's key in force at its own
// clock, so the switch needs no rebuild; a ring with no key in force
// fails the token as configuration, before any request.
func TestMaskinportenWithKeyRing(t *testing.T) {
	clock := newClock()
	d := newIDP(t, clock, &pki(t).leafKey.PublicKey)
	var seen []string
	ring, err := auth.NewKeyRing("acme", []auth.RingKey{
		{Signer: kidSigner(t)},
		{Signer: kid(t, "test-kid-2"), NotBefore: clock.Now().Add(time.Hour)},
	})
	if err != nil {
		t.Fatal(err)
	}
	mp, _ := d.clients(kidSigner(t))
	mp.Signer = ring
	mp.HTTP = &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return nil, err
		}
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, err
		}
		seen = append(seen, grantKey(t, form.Get("assertion")))
		r.Body = io.NopCloser(bytes.NewReader(body))
		return d.srv.Client().Transport.RoundTrip(r)
	})}
	if _, err := mp.Token(context.Background(), "toll:movement/road/v2"); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Hour)
	if _, err := mp.Token(context.Background(), "toll:movement/road/v2"); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(seen) != "[test-kid test-kid-2]" {
		t.Errorf("grants named %v, want the first key, then the second", seen)
	}

	late, err := auth.NewKeyRing("acme", []auth.RingKey{{Signer: kidSigner(t), NotBefore: clock.Now().Add(time.Hour)}})
	if err != nil {
		t.Fatal(err)
	}
	mp.Signer = late
	_, err = mp.Token(context.Background(), "toll:movement/road/v2")
	if !errors.Is(err, auth.ErrNoEligibleKey) || failure.Classify(err) != failure.Config {
		t.Errorf("err = %v, want a configuration error wrapping ErrNoEligibleKey", err)
	}
	if len(seen) != 2 {
		t.Errorf("a request was sent without a key in force: %d grants", len(seen))
	}

	var none *auth.KeyRing
	mp.Signer = none
	if _, err := mp.Token(context.Background(), "toll:movement/road/v2"); failure.Classify(err) != failure.Config || !strings.Contains(err.Error(), "Signer") {
		t.Errorf("nil ring: err = %v, want a configuration error naming Signer", err)
	}
}

// roundTripFunc is an http.RoundTripper made of a function.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// A ring printed or logged names its keys and shows no key material.
func TestKeyRingDoesNotPrintKey(t *testing.T) {
	p := pki(t)
	ring, err := auth.NewKeyRing("acme", []auth.RingKey{
		{Signer: kidSigner(t)},
		{Signer: certSignerValid(t, "ACME AS", time.Now().Add(-time.Hour), time.Now().Add(time.Hour)), NotBefore: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)},
	})
	if err != nil {
		t.Fatal(err)
	}
	var logged strings.Builder
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("ring", "signer", ring)
	holder := struct{ Ring *auth.KeyRing }{ring}
	for _, out := range []string{
		fmt.Sprintf("%v", ring), fmt.Sprintf("%+v", ring), fmt.Sprintf("%#v", ring),
		fmt.Sprintf("%+v", holder), fmt.Sprintf("%#v", ring.Keys()), logged.String(),
	} {
		if strings.Contains(out, p.leafKey.D.String()) || strings.Contains(out, p.leafKey.Primes[0].String()) {
			t.Fatalf("printed ring contains the private key: %.80s…", out)
		}
		if !strings.Contains(out, "test-kid") || !strings.Contains(out, "ACME AS") || !strings.Contains(out, "2026") {
			t.Errorf("printed ring %q does not name its keys", out)
		}
	}
}
