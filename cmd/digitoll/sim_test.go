package main

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/digitoll/digitoll-worker/handlers"
	"github.com/digitoll/digitoll-worker/toll"
)

// With a public URL the simulator advertises the name its clients reach
// it by, in what it prints and in its Maskinporten metadata, whatever
// address it listens on; a URL that cannot be a base is refused naming
// the variable.
func TestSimAdvertisesItsPublicURL(t *testing.T) {
	listen := "127.0.0.1:" + freePort(t)
	env, out, errOut := testEnv(map[string]string{
		"DIGITOLL_SIM_LISTEN":     listen,
		"DIGITOLL_SIM_PUBLIC_URL": "http://simulator:8090/",
		"DIGITOLL_SIM_DIR":        t.TempDir(),
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- run(ctx, env, []string{"sim"}) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	waitFor(t, 10*time.Second, "the simulator to start", func() bool { return strings.Contains(out.String(), "Toll base URL") })
	for _, want := range []string{
		"digitoll simulator listening on http://simulator:8090\n",
		"Maskinporten issuer:     http://simulator:8090/maskinporten/\n",
		"Maskinporten token URL:  http://simulator:8090/maskinporten/token\n",
		"Toll base URL:           http://simulator:8090/toll/api\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s%s", want, out, errOut)
		}
	}
	// Asked where it listens, the metadata names the public URL.
	resp, err := http.Get("http://" + listen + "/maskinporten/.well-known/oauth-authorization-server")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var meta struct {
		Issuer        string `json:"issuer"`
		TokenEndpoint string `json:"token_endpoint"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&meta); err != nil {
		t.Fatal(err)
	}
	if meta.Issuer != "http://simulator:8090/maskinporten/" || meta.TokenEndpoint != "http://simulator:8090/maskinporten/token" {
		t.Errorf("metadata %+v, want the public URL's issuer and token endpoint", meta)
	}
}

func TestSimPublicURLMustBeABaseURL(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"", "", true},
		{"http://simulator:8090", "http://simulator:8090", true},
		{"https://sim.example.org/", "https://sim.example.org", true},
		{"simulator:8090", "", false},
		{"http://simulator:8090/maskinporten/", "", false},
		{"ftp://simulator", "", false},
		{"http://simulator:8090?x=1", "", false},
		{"http://user:pw@simulator:8090", "", false},
	} {
		got, err := simPublicURL(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("simPublicURL(%q) = %q, %v; want %q, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "DIGITOLL_SIM_PUBLIC_URL") {
			t.Errorf("simPublicURL(%q): %v does not name the variable", tc.in, err)
		}
	}
}

// The simulator's client is granted the scope of every kind by default,
// so that `digitoll sim` and the demo serve a new kind without flags.
func TestSimGrantsEveryKindsScope(t *testing.T) {
	for _, s := range handlers.Kinds() {
		if scope := toll.Scope(false, s.API.ScopeBase); !slices.Contains(splitList(simScopes), scope) {
			t.Errorf("kind %s: simScopes lacks %s", s.Kind(), scope)
		}
	}
}
