package simulator_test

import (
	"net/http"
	"slices"
	"testing"

	"github.com/digitoll/digitoll-worker/simulator"
)

// Every grant presented and every token issued is listed, refused grants
// too, so that tests can look for them where they must never appear.
func TestIssuedTokensAndReceivedGrants(t *testing.T) {
	srv := start(t, simulator.Config{})
	grant := kidGrant(t, srv, scopeRoad)
	mp := maskinportenToken(t, srv, grant)
	toll := exchange(t, srv, mp)
	if a := postForm(t, srv.TokenURL(), grantForm("not-a-jwt")); a.status == http.StatusOK {
		t.Fatalf("a malformed grant was accepted: %s", a.raw)
	}
	if got := srv.IssuedTokens(); !slices.Equal(got, []string{mp, toll}) {
		t.Errorf("IssuedTokens() = %v, want the Maskinporten and the Toll token", got)
	}
	if got := srv.ReceivedGrants(); !slices.Equal(got, []string{grant, "not-a-jwt"}) {
		t.Errorf("ReceivedGrants() = %v, want the valid and the malformed grant", got)
	}
}
