package toll

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/digitoll/digitoll-worker/failure"
)

// DefaultTimeout bounds one HTTP exchange with Toll when Client.Timeout
// is zero.
const DefaultTimeout = 30 * time.Second

// maxResponseBody bounds how much of a response the client reads: Toll's
// answers are small JSON documents.
const maxResponseBody = 1 << 20

// Client calls Toll's movement APIs for one environment and one business.
// BaseURL and Tokens are required; the other fields have usable zero
// values. A Client is safe for concurrent use if its Tokens and HTTP
// client are.
type Client struct {
	// BaseURL is the Toll API root, e.g. "https://api-test.toll.no/api".
	BaseURL string
	// HTTP sends the requests; nil means http.DefaultClient. The client
	// never changes it: deadlines come from the context and Timeout.
	HTTP *http.Client
	// Tokens gives a bearer token per scope.
	Tokens Tokens
	// Foreign selects the "toll:eu/" scopes of foreign businesses.
	Foreign bool
	// Timeout bounds each HTTP exchange (one attempt, including reading
	// the answer) on top of the caller's context, so that a silent Toll
	// cannot hold a call forever when the caller set no deadline. Zero
	// means DefaultTimeout.
	Timeout time.Duration
	// Logger receives one debug line per exchange; nil discards.
	Logger *slog.Logger
	// Limiter, when set, is waited on before each exchange, before its
	// token is taken (see ratelimit.Transport with CallerWaits).
	Limiter Limiter
}

// Limiter paces calls to Toll.
type Limiter interface {
	// Wait blocks until a request to u may be sent, or fails with an
	// error that says when to try again.
	Wait(ctx context.Context, u *url.URL) error
}

// response is a Toll answer read in full.
type response struct {
	status int
	header http.Header
	body   []byte
}

// payload is the body of a call. open gives a fresh reader of it for
// each attempt, since a 401 is answered by sending it again. The zero
// value is no body.
type payload struct {
	open func() (io.ReadCloser, error)
	// size is the body's length, or -1 if unknown (sent chunked).
	size        int64
	contentType string
	// expectContinue sends "Expect: 100-continue": Toll answers a refused
	// token before the body is sent, so a large body is not sent only
	// to be answered 401, and the 401 is not lost to a connection the
	// server closed while the body was still being written.
	expectContinue bool
}

// jsonPayload is a JSON body held in memory; nil means no body.
func jsonPayload(body []byte) payload {
	if body == nil {
		return payload{}
	}
	return payload{
		open:        func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil },
		size:        int64(len(body)),
		contentType: "application/json",
	}
}

// do sends one call to Toll with a bearer token for api's scope and
// returns the answer when its status is 2xx or one of handled; any other
// status becomes an *HTTPError that classifies itself.
//
// A 401 is answered once by dropping the token, fetching a fresh one and
// sending the same bytes again (body is a []byte, so it can be re-sent). A
// second 401 means Toll does not accept the tokens this integration gets:
// configuration, not bad luck, so it is marked failure.ErrConfig.
func (c *Client) do(ctx context.Context, api API, method, path string, body []byte, handled ...int) (*response, error) {
	return c.doPayload(ctx, api, method, path, jsonPayload(body), handled...)
}

// doPayload is do for any body; the body is opened anew for each attempt.
func (c *Client) doPayload(ctx context.Context, api API, method, path string, body payload, handled ...int) (*response, error) {
	if c.Tokens == nil || c.BaseURL == "" {
		return nil, fmt.Errorf("toll: client needs BaseURL and Tokens: %w", failure.ErrConfig)
	}
	scope := Scope(c.Foreign, api.ScopeBase)
	resp, token, err := c.attempt(ctx, scope, method, path, body)
	if err != nil {
		return nil, err
	}
	if resp.status == http.StatusUnauthorized {
		c.logger().DebugContext(ctx, "toll refused the token, fetching a fresh one", "scope", scope, "method", method, "path", path)
		c.Tokens.Invalidate(scope, token)
		resp, _, err = c.attempt(ctx, scope, method, path, body)
		if err != nil {
			return nil, err
		}
		if resp.status == http.StatusUnauthorized {
			e := newHTTPError(method, path, resp.status, resp.header, resp.body, time.Now())
			e.reason = "Toll refused a freshly issued token for scope " + scope
			return nil, e
		}
	}
	if resp.status/100 == 2 || slices.Contains(handled, resp.status) {
		return resp, nil
	}
	return nil, newHTTPError(method, path, resp.status, resp.header, resp.body, time.Now())
}

// attempt gets a token for scope and makes one exchange. It returns the
// token it used so that a 401 invalidates exactly that one.
func (c *Client) attempt(ctx context.Context, scope, method, path string, body payload) (*response, string, error) {
	// The address is made once for the limiter and the request.
	target := strings.TrimRight(c.BaseURL, "/") + "/" + path
	if c.Limiter != nil {
		// Wait for the rate limit before taking a token: a token taken
		// first could expire during a long wait (a Retry-After hold),
		// and Toll's 401 for it would read as a configuration fault.
		u, err := url.Parse(target)
		if err == nil {
			if err := c.Limiter.Wait(ctx, u); err != nil {
				return nil, "", fmt.Errorf("toll: %s %s: %w: %w", method, path, ErrNotSent, err)
			}
		}
	}
	token, err := c.Tokens.Token(ctx, scope)
	if err != nil {
		// Token errors carry their own failure class (auth marks them).
		return nil, "", fmt.Errorf("toll: %s %s: token for scope %s: %w: %w", method, path, scope, ErrNotSent, err)
	}
	if err := RunBeforeSend(ctx); err != nil {
		return nil, "", fmt.Errorf("toll: %s %s: %w: %w", method, path, ErrNotSent, err)
	}
	resp, err := c.send(ctx, token, method, path, target, body)
	return resp, token, err
}

// beforeSendKey carries the hook of WithBeforeSend.
type beforeSendKey struct{}

// WithBeforeSend returns a context whose Toll calls run hook right before
// each exchange can leave: after the rate limiter's wait and the token,
// which only the client sees (a 401 answered with a fresh token makes a
// second exchange and a second call of hook). An error from hook ends the
// call with an error wrapping ErrNotSent and hook's error.
//
// A caller that must record "this call may reach Toll" before it does
// (the worker's send journal) records it here, so that neither a long
// rate-limit wait nor a token failure leaves such a record behind for a
// call that never left.
func WithBeforeSend(ctx context.Context, hook func(context.Context) error) context.Context {
	return context.WithValue(ctx, beforeSendKey{}, hook)
}

// RunBeforeSend runs the hook WithBeforeSend put in ctx, if any. The
// Client calls it; another implementation of a Toll API (a test's fake)
// calls it where its request would leave.
func RunBeforeSend(ctx context.Context) error {
	if hook, ok := ctx.Value(beforeSendKey{}).(func(context.Context) error); ok {
		return hook(ctx)
	}
	return nil
}

// send makes one HTTP exchange. A transport failure becomes a
// *NetworkError whose Written field says, from httptrace's WroteRequest,
// whether the whole request had reached the connection: only then can
// Toll have acted on it (see ErrAmbiguous).
func (c *Client) send(ctx context.Context, token, method, path, target string, body payload) (*response, error) {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	// WroteRequest runs once per attempt the transport makes (it retries
	// on a stale keep-alive connection only when nothing was written for
	// non-idempotent methods). A write that failed half way does not
	// count: Toll cannot act on a request with a truncated body. Once any
	// attempt wrote in full, the flag stays set.
	var written atomic.Bool
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		WroteRequest: func(info httptrace.WroteRequestInfo) {
			if info.Err == nil {
				written.Store(true)
			}
		},
	})

	req, err := http.NewRequestWithContext(ctx, method, target, nil)
	if err != nil {
		return nil, fmt.Errorf("toll: %s %s: bad base URL: %w: %w", method, path, err, failure.ErrConfig)
	}
	// The header values share one array rather than a slice each.
	vals := make([]string, 0, 4)
	setHeader := func(key, value string) {
		vals = append(vals, value)
		req.Header[key] = vals[len(vals)-1 : len(vals) : len(vals)]
	}
	setHeader("Authorization", "Bearer "+token)
	setHeader("Accept", "application/json")
	if body.open != nil {
		rd, err := body.open()
		if err != nil {
			return nil, fmt.Errorf("toll: %s %s: opening the request body: %w", method, path, err)
		}
		// The transport closes the body, also on errors. GetBody lets it
		// re-send a request that failed before anything was written.
		req.Body, req.GetBody, req.ContentLength = rd, body.open, body.size
		if body.size == 0 {
			rd.Close()
			req.Body, req.GetBody = http.NoBody, func() (io.ReadCloser, error) { return http.NoBody, nil }
		}
		setHeader("Content-Type", body.contentType)
		if body.expectContinue {
			setHeader("Expect", "100-continue")
		}
	}

	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	start := time.Now()
	res, err := hc.Do(req)
	if err != nil {
		// *url.Error repeats method and URL; the path is in our message
		// already. Its cause keeps context errors reachable by errors.Is.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		c.logger().DebugContext(ctx, "toll call failed", "method", method, "path", path, "written", written.Load(), "error", err.Error(), "duration", time.Since(start))
		return nil, &NetworkError{Method: method, Path: path, Written: written.Load(), Err: err}
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, maxResponseBody))
	if err != nil && res.StatusCode/100 == 2 {
		// Toll answered yes but the answer (the requestId) was lost: it
		// has the request and we cannot follow it.
		return nil, &NetworkError{Method: method, Path: path, Written: true, Err: fmt.Errorf("reading the HTTP %d answer: %w", res.StatusCode, err)}
	}
	// For other statuses the status decides and a partial body is enough
	// for the error text.
	if log := c.logger(); log.Enabled(ctx, slog.LevelDebug) {
		// Guarded: the arguments alone cost allocations on every call.
		log.LogAttrs(ctx, slog.LevelDebug, "toll call", slog.String("method", method), slog.String("path", path),
			slog.Int("status", res.StatusCode), slog.Duration("duration", time.Since(start)))
	}
	return &response{status: res.StatusCode, header: res.Header, body: data}, nil
}

func (c *Client) logger() *slog.Logger {
	if c.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Logger
}
