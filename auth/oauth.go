package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/digitoll/digitoll-worker/failure"
)

const (
	// maxBody bounds how much of a token endpoint's answer is read; real
	// answers are well under 10 KiB.
	maxBody = 1 << 20
	// maxDescription bounds an error description so that a verbose error
	// page cannot flood logs or result messages.
	maxDescription = 200
	// defaultHTTPTimeout applies when no *http.Client is configured, so
	// that a hung endpoint cannot hold a fetch forever.
	defaultHTTPTimeout = 30 * time.Second
)

// OAuthError is an unsuccessful answer from a token endpoint (Maskinporten
// or Toll's exchange): an OAuth error response, an error status, or a
// success status whose body is not a usable token response.
//
// It classifies itself for the failure package through Is:
// server_error, temporarily_unavailable, 5xx, 408, 429 and malformed
// success bodies are failure.ErrTransient; every other answer (4xx,
// invalid_grant, invalid_scope, invalid_client, unauthorized_client, and
// invalid_grant for clock skew, redirects) is failure.ErrConfig, because
// retrying the same configuration cannot succeed. Description is one line,
// bounded, and has any grant or token removed.
type OAuthError struct {
	// Endpoint is the token URL without credentials or query.
	Endpoint string
	// StatusCode is the HTTP status of the answer.
	StatusCode int
	// Code is the OAuth "error" value, e.g. "invalid_grant"; empty when
	// the body carried none.
	Code string
	// Description is the OAuth "error_description", or the start of a
	// non-OAuth body, sanitised.
	Description string

	retryAfter time.Duration
}

// Error describes the failure; it never contains a grant or token.
func (e *OAuthError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "auth: token endpoint %s: HTTP %d", e.Endpoint, e.StatusCode)
	if e.Code != "" {
		b.WriteString(": ")
		b.WriteString(e.Code)
	}
	if e.Description != "" {
		b.WriteString(": ")
		b.WriteString(e.Description)
	}
	return b.String()
}

// Is maps the answer to failure.ErrTransient or failure.ErrConfig.
func (e *OAuthError) Is(target error) bool {
	switch target {
	case failure.ErrTransient:
		return e.class() == failure.Transient
	case failure.ErrConfig:
		return e.class() == failure.Config
	}
	return false
}

// RetryAfter is the delay the endpoint asked for with a Retry-After
// header, or 0 when it sent none (failure.RetryAfter reads it).
func (e *OAuthError) RetryAfter() time.Duration { return e.retryAfter }

func (e *OAuthError) class() failure.Class {
	switch e.Code {
	case "server_error", "temporarily_unavailable":
		return failure.Transient
	}
	switch {
	case e.StatusCode >= 500, e.StatusCode == http.StatusTooManyRequests, e.StatusCode == http.StatusRequestTimeout:
		return failure.Transient
	case e.StatusCode >= 300:
		// 4xx, and 3xx which we never follow: a token endpoint that
		// redirects is a wrong URL. Named OAuth codes such as
		// invalid_grant (including clock skew), invalid_scope,
		// invalid_client and unauthorized_client all arrive as 4xx.
		return failure.Config
	default:
		// A 2xx without a usable token: a glitch in a proxy or the
		// server, worth another try.
		return failure.Transient
	}
}

// tokenResponse is the union of Maskinporten's and Toll's success bodies.
type tokenResponse struct {
	AccessToken     string  `json:"access_token"`
	TokenType       string  `json:"token_type"`
	ExpiresIn       seconds `json:"expires_in"`
	Scope           string  `json:"scope"`
	IssuedTokenType string  `json:"issued_token_type"`
}

// token is the response as a Token whose lifetime started at sent, the
// moment the request went out (so the expiry errs on the early side).
func (tr tokenResponse) token(sent time.Time) Token {
	return Token{
		AccessToken: tr.AccessToken,
		TokenType:   tr.TokenType,
		Expiry:      sent.Add(time.Duration(tr.ExpiresIn) * time.Second),
		Scope:       tr.Scope,
	}
}

// seconds accepts expires_in as a JSON number or a numeric string; some
// OAuth servers send the latter and nothing is gained by refusing it.
type seconds int64

func (s *seconds) UnmarshalJSON(b []byte) error {
	raw := strings.Trim(string(b), `"`)
	if raw == "null" || raw == "" {
		*s = 0
		return nil
	}
	f, err := strconv.ParseFloat(raw, 64)
	if err != nil {
		return errors.New("expires_in is not a number")
	}
	*s = seconds(f)
	return nil
}

type errorResponse struct {
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
}

// postForm sends form to a token endpoint and returns the parsed token
// answer. secrets are values the request carries (grant, subject token):
// they are scrubbed from anything the server echoes back into an error.
// The form goes in the body only; the URL never carries a credential.
func postForm(ctx context.Context, client *http.Client, endpoint string, form url.Values, secrets []string, now time.Time) (tokenResponse, error) {
	shown := redactURL(endpoint)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return tokenResponse{}, failure.Mark(fmt.Errorf("auth: token endpoint %s: building request: %w", shown, err), failure.Config)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")

	resp, err := noRedirects(client).Do(req)
	if err != nil {
		// *url.Error names the URL (password stripped by net/http) and the
		// cause; the body with the credential is not part of it.
		return tokenResponse{}, failure.Mark(fmt.Errorf("auth: token endpoint %s: %w", shown, err), failure.Transient)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return tokenResponse{}, failure.Mark(fmt.Errorf("auth: token endpoint %s: reading answer (HTTP %d): %w", shown, resp.StatusCode, err), failure.Transient)
	}

	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		oe := &OAuthError{Endpoint: shown, StatusCode: resp.StatusCode, retryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), now)}
		var er errorResponse
		if json.Unmarshal(body, &er) == nil && er.Error != "" {
			oe.Code = sanitize(er.Error, secrets)
			oe.Description = sanitize(er.ErrorDescription, secrets)
		} else {
			oe.Description = sanitize(string(body), secrets)
		}
		return tokenResponse{}, oe
	}

	var tr tokenResponse
	malformed := func(why string) error {
		return &OAuthError{Endpoint: shown, StatusCode: resp.StatusCode, Description: "malformed token response: " + sanitize(why, secrets)}
	}
	if err := json.Unmarshal(body, &tr); err != nil {
		return tokenResponse{}, malformed(err.Error())
	}
	if tr.AccessToken == "" {
		return tokenResponse{}, malformed("no access_token")
	}
	if tr.ExpiresIn <= 0 {
		// Without a lifetime the token cannot be cached safely, and
		// guessing one is how stale tokens get used.
		return tokenResponse{}, malformed("no positive expires_in")
	}
	return tr, nil
}

// noRedirects returns a copy of client that does not follow redirects: a
// 307 would resend the form, credential included, to wherever the
// redirect points.
func noRedirects(client *http.Client) *http.Client {
	var c http.Client
	if client != nil {
		c = *client
	} else {
		c.Timeout = defaultHTTPTimeout
	}
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &c
}

// redactURL drops user info, query and fragment from a URL for messages.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(invalid URL)"
	}
	u.User = nil
	u.RawQuery = ""
	u.Fragment = ""
	return u.String()
}

// parseRetryAfter reads a Retry-After header in either of its forms
// (delay seconds or HTTP date); anything else counts as absent.
func parseRetryAfter(h string, now time.Time) time.Duration {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0
	}
	if n, err := strconv.Atoi(h); err == nil {
		if n <= 0 {
			return 0
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}

// jwtLike matches anything shaped like a JWS compact serialisation, so an
// echoed grant or token is removed even if it is not one we sent.
var jwtLike = regexp.MustCompile(`eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*`)

// sanitize makes server text safe for an error: it removes secrets and
// JWT-shaped strings first (so truncation cannot leave half of one), then
// keeps the first non-empty line, drops control characters and bounds the
// length.
func sanitize(s string, secrets []string) string {
	for _, sec := range secrets {
		if sec == "" {
			continue
		}
		// Also the form-encoded spelling, in case the server echoes the
		// raw request body.
		s = strings.ReplaceAll(s, sec, "[redacted]")
		s = strings.ReplaceAll(s, url.QueryEscape(sec), "[redacted]")
	}
	s = jwtLike.ReplaceAllString(s, "[redacted]")
	line := ""
	for l := range strings.Lines(s) {
		if l = strings.TrimSpace(l); l != "" {
			line = l
			break
		}
	}
	line = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, line)
	if len(line) > maxDescription {
		cut := maxDescription
		for cut > 0 && !utf8.RuneStart(line[cut]) {
			cut--
		}
		line = line[:cut] + "…"
	}
	return line
}
