package auth

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/digitoll/digitoll-worker/failure"
)

// ErrNoEligibleKey is wrapped by the error of a KeyRing none of whose keys
// may sign at the time asked: every key waits for its NotBefore, or holds
// a certificate that is expired or not yet valid. The error is marked
// failure.ErrConfig: only the operator can fix it, by adding a key.
var ErrNoEligibleKey = errors.New("auth: no signing key may sign now")

// RingKey is one key of a KeyRing.
type RingKey struct {
	// Signer signs with the key; required.
	Signer *Signer
	// NotBefore is when the key starts signing; zero means from the
	// start.
	NotBefore time.Time
}

// Eligible reports whether k may sign at now: nil if it may, else why not.
// A key waits for its NotBefore. A certificate (x5c) key also needs its
// certificate valid at now, since Maskinporten refuses a grant whose x5c
// certificate is expired or not yet valid.
func (k RingKey) Eligible(now time.Time) error {
	if !k.NotBefore.IsZero() && now.Before(k.NotBefore) {
		return fmt.Errorf("not before %s", k.NotBefore.UTC().Format(time.RFC3339))
	}
	if len(k.Signer.chain) > 0 {
		leaf := k.Signer.chain[0]
		if now.After(leaf.NotAfter) {
			return fmt.Errorf("certificate expired at %s", leaf.NotAfter.UTC().Format(time.RFC3339))
		}
		if now.Before(leaf.NotBefore) {
			return fmt.Errorf("certificate not valid before %s", leaf.NotBefore.UTC().Format(time.RFC3339))
		}
	}
	return nil
}

// String names the key and its NotBefore, never the key itself.
func (k RingKey) String() string {
	if k.NotBefore.IsZero() {
		return describeKey(k.Signer)
	}
	return describeKey(k.Signer) + " from " + k.NotBefore.UTC().Format(time.RFC3339)
}

// describeKey names s as an operator knows it: `kid "acme-2025"` or
// `x5c "CN=…"`.
func describeKey(s *Signer) string {
	if s == nil {
		return "nil"
	}
	return s.Mode().String() + " " + strconv.Quote(s.ID())
}

// KeyRing holds the keys of one integration while its key is rotated: the
// customer registers a new key on the integration, the provider adds it to
// the ring with a NotBefore, and from then on each grant is signed with
// the key in force (see InUse). The switch needs no reload, as every grant
// chooses anew; Toll tokens already cached, got with the old key, stay in
// use until the cache refreshes them, so the old key may be removed from
// the integration once they have been refreshed, and from the ring after.
//
// A KeyRing is immutable and safe for concurrent use; it implements
// GrantSigner. Its String and LogValue name the keys, never their material.
type KeyRing struct {
	// name is whose keys they are (the tenant), for errors.
	name string
	keys []RingKey
}

// NewKeyRing returns a ring of keys, in the order given: of keys with the
// same NotBefore, the first signs. name says whose keys they are (the
// tenant) in errors.
func NewKeyRing(name string, keys []RingKey) (*KeyRing, error) {
	if len(keys) == 0 {
		return nil, fmt.Errorf("auth: key ring of %s: no key", name)
	}
	for i, k := range keys {
		if k.Signer == nil {
			return nil, fmt.Errorf("auth: key ring of %s: key %d has no signer", name, i)
		}
	}
	return &KeyRing{name: name, keys: slices.Clone(keys)}, nil
}

// Keys returns the ring's keys in the order given.
func (r *KeyRing) Keys() []RingKey { return slices.Clone(r.keys) }

// InUse returns the index in Keys of the key that signs at now: of the
// eligible keys (see RingKey.Eligible), the one whose NotBefore is the
// latest, the first listed among equals. When no key is eligible the error
// wraps ErrNoEligibleKey, is marked failure.ErrConfig and says, for each
// key by its kid or certificate subject, why it may not sign.
func (r *KeyRing) InUse(now time.Time) (int, error) {
	best := -1
	var why []string
	for i, k := range r.keys {
		if err := k.Eligible(now); err != nil {
			why = append(why, describeKey(k.Signer)+": "+err.Error())
			continue
		}
		if best < 0 || k.NotBefore.After(r.keys[best].NotBefore) {
			best = i
		}
	}
	if best < 0 {
		return -1, failure.Mark(fmt.Errorf("%w: key ring of %s at %s: %s", ErrNoEligibleKey, r.name,
			now.UTC().Format(time.RFC3339), strings.Join(why, "; ")), failure.Config)
	}
	return best, nil
}

// Grant signs a grant with the key in use at now; see InUse and
// Signer.Grant.
func (r *KeyRing) Grant(clientID, audience string, scopes []string, now time.Time) (string, error) {
	i, err := r.InUse(now)
	if err != nil {
		return "", err
	}
	return r.keys[i].Signer.Grant(clientID, audience, scopes, now)
}

// String describes the ring by its keys, never their material.
func (r *KeyRing) String() string {
	if r == nil {
		return "auth.KeyRing(nil)"
	}
	keys := make([]string, len(r.keys))
	for i, k := range r.keys {
		keys[i] = k.String()
	}
	return fmt.Sprintf("auth.KeyRing{name: %q, keys: [%s]}", r.name, strings.Join(keys, ", "))
}

// GoString keeps %#v from printing the keys' numbers.
func (r *KeyRing) GoString() string { return r.String() }

// LogValue implements slog.LogValuer with the same safe description.
func (r *KeyRing) LogValue() slog.Value {
	if r == nil {
		return slog.StringValue("nil")
	}
	keys := make([]string, len(r.keys))
	for i, k := range r.keys {
		keys[i] = k.String()
	}
	return slog.GroupValue(slog.String("name", r.name), slog.Any("keys", keys))
}
