package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	neturl "net/url"
	"strings"
	"time"
)

const healthcheckSynopsis = `[--url URL] [--timeout 3s]

Asks the worker's /readyz (or --url) and exits 0 when it answers 200, 1
otherwise, printing why. It is the health check of the container image,
which has no shell and no curl: in docker-compose,
  healthcheck: {test: ["CMD", "/usr/local/bin/digitoll", "healthcheck"]}
Without --url it asks http://<DIGITOLL_HTTP_ADDR>/readyz, with 127.0.0.1
for an unspecified host (0.0.0.0, ::).`

func runHealthcheck(ctx context.Context, env *environment, args []string) error {
	fs := newFlagSet(env, "healthcheck", healthcheckSynopsis)
	target := fs.String("url", "", "URL to ask; default /readyz at --http-addr")
	addr := fs.String("http-addr", "127.0.0.1:8081", "address the worker serves /readyz on ($DIGITOLL_HTTP_ADDR)")
	timeout := fs.Duration("timeout", 3*time.Second, "how long to wait for the answer")
	if err := applyEnv(env, fs); err != nil {
		return err
	}
	if err := parseFlags(env, fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError(env, fs, fmt.Sprintf("unexpected argument %q", fs.Arg(0)))
	}
	url := *target
	if url == "" {
		u, err := readyzURL(*addr)
		if err != nil {
			return usageError(env, fs, err.Error())
		}
		url = u
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return usageError(env, fs, fmt.Sprintf("--url: %v", err))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", url, unwrapURLError(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %s%s", url, resp.Status, firstLines(resp.Body, 5))
	}
	fmt.Fprintf(env.stdout, "%s: %s\n", url, resp.Status)
	return nil
}

// readyzURL is the /readyz URL of a listen address, asked on loopback
// when the address listens on every interface.
func readyzURL(addr string) (string, error) {
	if addr == "off" {
		return "", errors.New("DIGITOLL_HTTP_ADDR is off: the worker serves no /readyz; pass --url")
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("--http-addr: %q is not host:port", addr)
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/readyz", nil
}

// unwrapURLError drops the method and URL *url.Error repeats.
func unwrapURLError(err error) error {
	var ue *neturl.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// firstLines returns up to n lines of r, indented on lines of their own,
// for the reason a check failed.
func firstLines(r io.Reader, n int) string {
	var b strings.Builder
	sc := bufio.NewScanner(io.LimitReader(r, 8<<10))
	for i := 0; i < n && sc.Scan(); i++ {
		if line := strings.TrimSpace(sc.Text()); line != "" {
			b.WriteString("\n  " + line)
		}
	}
	return b.String()
}
