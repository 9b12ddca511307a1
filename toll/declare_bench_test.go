package toll

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/samples"
)

// warmTokens is a token source that always has its token, as the token
// cache has between refreshes.
type warmTokens string

func (t warmTokens) Token(context.Context, string) (string, error) { return string(t), nil }
func (warmTokens) Invalidate(string, string)                       {}

// BenchmarkDeclare sends the sample house consignment through the whole
// request path of Declare (token, request, keep-alive connection, reading
// and decoding the 202) to a local server that answers at once, so that
// the figure is the client's own cost. allocs/op is the allocations per
// message on the client side together with the server's; the fake server
// does little beyond reading the body.
func BenchmarkDeclare(b *testing.B) {
	var house json.RawMessage
	all, err := samples.Load(contract.KindRoad)
	if err != nil {
		b.Fatal(err)
	}
	for _, s := range all {
		if s.Name == "03-house.json" {
			var sub struct {
				Declaration json.RawMessage `json:"declaration"`
			}
			if err := json.Unmarshal(s.Body, &sub); err != nil {
				b.Fatal(err)
			}
			house = sub.Declaration
		}
	}
	if house == nil {
		b.Fatal("sample road/03-house.json is missing")
	}
	answer := []byte(`{"requestId":"1bdf0f33-f42e-48e2-b334-3944722e3fe5"}`)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write(answer)
	}))
	b.Cleanup(srv.Close)
	c := &Client{BaseURL: srv.URL + "/api", HTTP: srv.Client(), Tokens: warmTokens("bench-token")}
	api := RoadV2()
	b.SetBytes(int64(len(house)))
	b.ReportAllocs()
	for b.Loop() {
		id, err := c.Declare(b.Context(), api, contract.OpCreate, contract.LevelHouseConsignment, "", house)
		if err != nil {
			b.Fatal(err)
		}
		if id == "" {
			b.Fatal("no requestId")
		}
	}
}
