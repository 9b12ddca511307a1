package app

import (
	"fmt"

	"github.com/digitoll/digitoll-worker/auth"
	"github.com/digitoll/digitoll-worker/config"
)

// LoadKeyRing loads every signing key of t, from its keys list or its
// single key, into a ring that signs each grant with the key in force at
// the time (see auth.KeyRing): a tenant rotating its key switches to the
// new one at its notBefore, without a reload. Each key is loaded as
// LoadSigner loads a single key; an error names the key's place in the
// list and the file that is wrong.
func LoadKeyRing(t config.Tenant) (*auth.KeyRing, error) {
	keys := t.SigningKeys()
	ring := make([]auth.RingKey, 0, len(keys))
	for i, k := range keys {
		s, err := LoadSigner(t.WithKey(k))
		if err != nil {
			if len(t.Keys) > 0 {
				return nil, fmt.Errorf("keys[%d]: %w", i, err)
			}
			return nil, err
		}
		ring = append(ring, auth.RingKey{Signer: s, NotBefore: k.NotBefore})
	}
	return auth.NewKeyRing(t.Name, ring)
}
