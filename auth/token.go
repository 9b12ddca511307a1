package auth

import (
	"fmt"
	"log/slog"
	"time"
)

// Token is an access token from Maskinporten or Toll. AccessToken is a
// credential: String, GoString and LogValue redact it so that printing or
// logging a Token by accident leaks nothing.
type Token struct {
	// AccessToken is the bearer credential itself.
	AccessToken string
	// TokenType is the server's token_type, normally "Bearer".
	TokenType string
	// Expiry is when the token stops working: the time the request was
	// sent plus the server's expires_in, so it errs on the early side.
	Expiry time.Time
	// Scope is the space-separated scope the server granted, when it says.
	Scope string
}

// String describes the token with AccessToken redacted.
func (t Token) String() string {
	return fmt.Sprintf("auth.Token{AccessToken: %s, TokenType: %q, Expiry: %s, Scope: %q}",
		redacted(t.AccessToken), t.TokenType, t.Expiry.UTC().Format(time.RFC3339), t.Scope)
}

// GoString keeps %#v from printing AccessToken.
func (t Token) GoString() string { return t.String() }

// LogValue implements slog.LogValuer with AccessToken redacted.
func (t Token) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("accessToken", redacted(t.AccessToken)),
		slog.String("tokenType", t.TokenType),
		slog.Time("expiry", t.Expiry),
		slog.String("scope", t.Scope),
	)
}

// redacted says whether a secret is present without revealing any of it.
func redacted(secret string) string {
	if secret == "" {
		return "[empty]"
	}
	return "[redacted]"
}
