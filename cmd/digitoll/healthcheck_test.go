package main

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

func TestHealthcheck(t *testing.T) {
	var ready atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" {
			http.NotFound(w, r)
			return
		}
		if !ready.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte("road: paused since 2025-01-15T08:00:00Z (config): scope not granted\n"))
			return
		}
		w.Write([]byte("ok\n"))
	}))
	t.Cleanup(srv.Close)
	_, port, err := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		ready      bool
		vars       map[string]string
		args       []string
		wantCode   int
		wantOutput string
	}{
		{"ready, address from the worker's variable", true, map[string]string{"DIGITOLL_HTTP_ADDR": "0.0.0.0:" + port}, nil, 0, "200 OK"},
		{"ready, --url", true, nil, []string{"--url", srv.URL + "/readyz"}, 0, "200 OK"},
		{"not ready", false, nil, []string{"--http-addr", "127.0.0.1:" + port}, 1, "503 Service Unavailable\n  road: paused"},
		{"nothing listening", true, nil, []string{"--url", "http://127.0.0.1:1/readyz"}, 1, "connection refused"},
		{"health off", true, map[string]string{"DIGITOLL_HTTP_ADDR": "off"}, nil, 2, "DIGITOLL_HTTP_ADDR is off"},
		{"not an address", true, nil, []string{"--http-addr", "8081"}, 2, "not host:port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ready.Store(tt.ready)
			env, out, errOut := testEnv(tt.vars)
			code := run(context.Background(), env, append([]string{"healthcheck"}, tt.args...))
			if code != tt.wantCode || !strings.Contains(out.String()+errOut.String(), tt.wantOutput) {
				t.Errorf("exit %d, want %d with %q\nstdout: %s\nstderr: %s", code, tt.wantCode, tt.wantOutput, out, errOut)
			}
		})
	}
}

func TestReadyzURL(t *testing.T) {
	for addr, want := range map[string]string{
		"127.0.0.1:8081": "http://127.0.0.1:8081/readyz",
		"0.0.0.0:8081":   "http://127.0.0.1:8081/readyz",
		":9000":          "http://127.0.0.1:9000/readyz",
		"[::]:8081":      "http://127.0.0.1:8081/readyz",
		"[::1]:8081":     "http://[::1]:8081/readyz",
		"worker:8081":    "http://worker:8081/readyz",
	} {
		if got, err := readyzURL(addr); err != nil || got != want {
			t.Errorf("readyzURL(%q) = %q, %v; want %q", addr, got, err, want)
		}
	}
}
