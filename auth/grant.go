package auth

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
)

// grantLifetime is exp - iat of a grant. Maskinporten accepts at most
// 120 s; staying below leaves room for our clock running slightly behind.
const grantLifetime = 100 * time.Second

// Grant signs a fresh Maskinporten JWT grant (RFC 7523) asking for scopes
// on behalf of clientID. audience is Maskinporten's issuer identifier,
// trailing slash included (e.g. "https://maskinporten.no/").
//
// The grant carries exactly the claims Maskinporten allows — aud, iss,
// scope, iat, exp and jti — because it answers 400 "invalid assertion" to
// any other. Each call makes a new jti: Maskinporten refuses a grant it has
// seen before, so a grant must never be reused, not even for a retry.
//
// The returned string is a credential: never log it or put it in an error.
func (s *Signer) Grant(clientID, audience string, scopes []string, now time.Time) (string, error) {
	if clientID == "" {
		return "", errors.New("auth: grant: client id is empty")
	}
	if audience == "" {
		return "", errors.New("auth: grant: audience (Maskinporten issuer) is empty")
	}
	if len(scopes) == 0 {
		return "", errors.New("auth: grant: no scope requested")
	}
	for _, sc := range scopes {
		if sc == "" || strings.ContainsAny(sc, " \t\r\n") {
			return "", fmt.Errorf("auth: grant: invalid scope %q", sc)
		}
	}
	jti, err := uuid.NewRandom()
	if err != nil {
		return "", fmt.Errorf("auth: grant: generating jti: %w", err)
	}
	iat := now.Unix()
	// A literal map rather than jwt.RegisteredClaims: RegisteredClaims
	// encodes aud as an array unless a package-global switch is flipped,
	// and has room for nbf and sub. The map is exactly what is sent.
	claims := jwt.MapClaims{
		"aud":   audience,
		"iss":   clientID,
		"scope": strings.Join(scopes, " "),
		"iat":   iat,
		"exp":   iat + int64(grantLifetime/time.Second),
		"jti":   jti.String(),
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	if s.Mode() == ModeX5C {
		tok.Header["x5c"] = s.x5c
	} else {
		tok.Header["kid"] = s.kid
	}
	signed, err := tok.SignedString(s.key)
	if err != nil {
		return "", fmt.Errorf("auth: grant: signing: %w", err)
	}
	return signed, nil
}
