package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/digitoll/digitoll-worker/failure"
)

// MetadataPath is where an issuer publishes its authorization server
// metadata (RFC 8414), relative to the issuer with its trailing slash:
// https://maskinporten.no/.well-known/oauth-authorization-server.
const MetadataPath = ".well-known/oauth-authorization-server"

// Defaults of Discovery.
const (
	// DefaultMetadataMaxAge is how long read metadata is used before it
	// is read again. Maskinporten's endpoints change with its releases,
	// not by the hour.
	DefaultMetadataMaxAge = 24 * time.Hour
	// DefaultMetadataRetry is how long the fallback (or the last metadata
	// read) is used after a failed read before the next try, so that an
	// unreachable metadata endpoint costs one attempt per interval, not
	// one per token.
	DefaultMetadataRetry = 5 * time.Minute
	// metadataTimeout bounds one read of the metadata: a slow metadata
	// endpoint must not hold a token request for long, since the
	// fallback works.
	metadataTimeout = 10 * time.Second
)

// Metadata is what the worker needs of an authorization server's metadata.
type Metadata struct {
	// Issuer is the issuer identifier, the grant's aud.
	Issuer string `json:"issuer"`
	// TokenEndpoint is where grants are posted.
	TokenEndpoint string `json:"token_endpoint"`
}

// Discover reads issuer's metadata at issuer + MetadataPath and checks it:
// the document must name exactly issuer (RFC 8414 section 3.3: metadata
// that names another issuer must not be used), and a token endpoint that
// is an absolute URL, https when the issuer is. Network failures and 5xx
// answers are failure.ErrTransient; any other failure is failure.ErrConfig.
// client nil means a client with a 30 s timeout; redirects are not
// followed.
func Discover(ctx context.Context, client *http.Client, issuer string) (Metadata, error) {
	issuer = issuerWithSlash(issuer)
	where := redactURL(issuer + MetadataPath)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, issuer+MetadataPath, nil)
	if err != nil {
		return Metadata{}, failure.Mark(fmt.Errorf("auth: metadata %s: %w", where, err), failure.Config)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := noRedirects(client).Do(req)
	if err != nil {
		return Metadata{}, failure.Mark(fmt.Errorf("auth: metadata %s: %w", where, err), failure.Transient)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return Metadata{}, failure.Mark(fmt.Errorf("auth: metadata %s: reading answer: %w", where, err), failure.Transient)
	}
	if resp.StatusCode != http.StatusOK {
		class := failure.Config
		if resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests {
			class = failure.Transient
		}
		return Metadata{}, failure.Mark(fmt.Errorf("auth: metadata %s: HTTP %d", where, resp.StatusCode), class)
	}
	var md Metadata
	if err := json.Unmarshal(body, &md); err != nil {
		return Metadata{}, failure.Mark(fmt.Errorf("auth: metadata %s: not JSON metadata: %w", where, err), failure.Config)
	}
	if err := md.check(issuer); err != nil {
		return Metadata{}, failure.Mark(fmt.Errorf("auth: metadata %s: %w", where, err), failure.Config)
	}
	return md, nil
}

func (md Metadata) check(issuer string) error {
	if md.Issuer != issuer {
		return fmt.Errorf("names issuer %q, not %q", md.Issuer, issuer)
	}
	u, err := url.Parse(md.TokenEndpoint)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return fmt.Errorf("token_endpoint %q is not an http(s) URL", md.TokenEndpoint)
	}
	if strings.HasPrefix(issuer, "https://") && u.Scheme != "https" {
		return fmt.Errorf("token_endpoint %q is not https like the issuer", md.TokenEndpoint)
	}
	return nil
}

// MetadataSource gives the issuer and token endpoint to use now; it
// cannot fail (a source that cannot read the metadata falls back on what
// it knows). *Discovery is one.
type MetadataSource interface {
	Metadata(ctx context.Context) Metadata
}

// Discovery keeps an issuer's metadata for Maskinporten.Endpoints: read
// at first use, read again when older than MaxAge, and Fallback (the
// configured pair) until a read succeeds. After a failed read the last
// good metadata, or Fallback, stays in use for RetryAfter. Set the fields
// before first use; safe for concurrent use after.
type Discovery struct {
	// Issuer is the configured issuer, with its trailing slash.
	Issuer string
	// Fallback is used until the metadata has been read.
	Fallback Metadata
	// HTTP reads the metadata; nil means a client with a 30 s timeout.
	HTTP *http.Client
	// MaxAge defaults to DefaultMetadataMaxAge; RetryAfter to
	// DefaultMetadataRetry.
	MaxAge     time.Duration
	RetryAfter time.Duration
	// Logger receives a line when the endpoints read differ from the
	// fallback and when a read fails; nil discards.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	mu      sync.Mutex
	current Metadata
	read    bool
	next    time.Time
}

// Metadata returns the issuer and token endpoint to use now. It never
// fails: when the metadata cannot be read it returns what was last read,
// or Fallback.
func (d *Discovery) Metadata(ctx context.Context) Metadata {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	if !d.next.IsZero() && now.Before(d.next) {
		return d.inUse()
	}
	ctx, cancel := context.WithTimeout(ctx, metadataTimeout)
	defer cancel()
	md, err := Discover(ctx, d.HTTP, d.Issuer)
	if err != nil {
		d.next = now.Add(orDefault(d.RetryAfter, DefaultMetadataRetry))
		d.logger().Warn("Maskinporten metadata unavailable; using the last endpoints known",
			"issuer", d.Issuer, "tokenEndpoint", d.inUse().TokenEndpoint, "retryIn", orDefault(d.RetryAfter, DefaultMetadataRetry), "error", err)
		return d.inUse()
	}
	if md != d.inUse() {
		d.logger().Info("Maskinporten metadata read", "issuer", md.Issuer, "tokenEndpoint", md.TokenEndpoint,
			"configuredTokenEndpoint", d.Fallback.TokenEndpoint)
	}
	d.current, d.read = md, true
	d.next = now.Add(orDefault(d.MaxAge, DefaultMetadataMaxAge))
	return md
}

// inUse is the metadata read last, or the fallback. d.mu is held.
func (d *Discovery) inUse() Metadata {
	if d.read {
		return d.current
	}
	return d.Fallback
}

func (d *Discovery) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

func (d *Discovery) logger() *slog.Logger {
	if d.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return d.Logger
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// errNoEndpoints reports a Maskinporten whose Endpoints returned an empty
// pair: a Discovery without a Fallback that never read the metadata.
var errNoEndpoints = errors.New("auth: maskinporten client: Endpoints gave no issuer or token endpoint")
