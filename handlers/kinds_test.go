package handlers

import (
	"context"
	"slices"
	"testing"

	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/toll"
)

// probeClient records which API a probe asked a token or test-auth for.
type probeClient struct {
	Client
	calls []string
}

func (c *probeClient) TestAuth(_ context.Context, api toll.API) error {
	c.calls = append(c.calls, "test-auth "+api.Path)
	return nil
}

func (c *probeClient) Authorize(_ context.Context, api toll.API) error {
	c.calls = append(c.calls, "authorize "+api.Path)
	return nil
}

// Every kind of the contract has a handler, in the same order, and no
// handler serves a kind the contract lacks; each handler's probe asks
// for its spec's API, by test-auth where the spec says so.
func TestEveryKindHasAHandler(t *testing.T) {
	var got []contract.Kind
	for _, s := range Kinds() {
		got = append(got, s.Kind())
	}
	if want := contract.Kinds(); !slices.Equal(got, want) {
		t.Fatalf("handlers for %v, want the contract's kinds %v", got, want)
	}
	for _, s := range Kinds() {
		if spec, ok := KindOf(s.Kind()); !ok || spec.API != s.API {
			t.Errorf("KindOf(%s) = %+v, %v", s.Kind(), spec.API, ok)
		}
		c := &probeClient{}
		h := s.New(Deps{Toll: c})
		p, ok := h.(interface{ Probe(context.Context) error })
		if !ok {
			t.Errorf("%s: the %T has no Probe", s.Kind(), h)
			continue
		}
		if err := p.Probe(t.Context()); err != nil {
			t.Fatal(err)
		}
		want := "authorize " + s.API.Path
		if s.TestAuth {
			want = "test-auth " + s.API.Path
		}
		if !slices.Equal(c.calls, []string{want}) {
			t.Errorf("%s: probe made %v, want [%s]", s.Kind(), c.calls, want)
		}
	}
	if _, ok := KindOf("sea"); ok {
		t.Error("KindOf(sea) found a handler")
	}
}
