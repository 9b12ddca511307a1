package toll

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/digitoll/digitoll-worker/auth"
	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/failure"
	"github.com/digitoll/digitoll-worker/internal/buftest"
	"github.com/digitoll/digitoll-worker/simulator"
)

const testMRN = "25NO4TU2HUD59UCBT8"

func TestStatusWithDescendantsAnswers(t *testing.T) {
	tests := []struct {
		name     string
		level    contract.Level
		reply    reply
		wantPath string
		check    func(t *testing.T, tree StatusTree, err error)
	}{
		{"transport tree", contract.LevelTransport, reply{status: 200, body: `{"mrn":"` + testMRN + `","status":"ACCEPTED","identificationNumber":"AB12345",
			"masterConsignments":[{"mrn":"25NOMASTER00000001","documentNumber":"MAWB-1","type":"N741","status":"ACCEPTED","grossMass":1200,
			  "houseConsignments":[{"mrn":"25NOHOUSE000000001","documentNumber":"HWB-1","type":"N750","status":"ACCEPTED","grossMass":120.5}]},
			 {"documentNumber":"MAWB-2","status":"NOT_RECEIVED","houseConsignments":[]}]}`},
			"/api/movement/road/status/v2/transport/" + testMRN + "/status-with-descendants",
			func(t *testing.T, tree StatusTree, err error) {
				if err != nil {
					t.Fatal(err)
				}
				house := Consignment{Level: contract.LevelHouseConsignment, MRN: "25NOHOUSE000000001", Status: "ACCEPTED", DocumentNumber: "HWB-1", DocumentType: "N750", GrossMass: "120.5"}
				want := Consignment{Level: contract.LevelTransport, MRN: testMRN, Status: "ACCEPTED", DocumentNumber: "AB12345", Children: []Consignment{
					{Level: contract.LevelMasterConsignment, MRN: "25NOMASTER00000001", Status: "ACCEPTED", DocumentNumber: "MAWB-1", DocumentType: "N741", GrossMass: "1200", Children: []Consignment{house}},
					{Level: contract.LevelMasterConsignment, Status: "NOT_RECEIVED", DocumentNumber: "MAWB-2"},
				}}
				if !tree.Recognised() || fmt.Sprintf("%+v", tree.Root) != fmt.Sprintf("%+v", want) {
					t.Errorf("root\n%+v\nwant\n%+v", tree.Root, want)
				}
				if len(tree.Raw) == 0 {
					t.Error("Raw is empty")
				}
			}},
		{"master tree with totalGrossMass and a string weight", contract.LevelMasterConsignment, reply{status: 200, body: `{"mrn":"` + testMRN + `","status":"ACCEPTED","documentNumber":"MAWB-1","grossMass":"1200.0",
			"houseConsignments":[{"mrn":"25NOHOUSE000000001","documentNumber":"HWB-1","totalGrossMass":7}]}`},
			"/api/movement/road/status/v2/master-consignment/" + testMRN + "/status-with-descendants",
			func(t *testing.T, tree StatusTree, err error) {
				if err != nil {
					t.Fatal(err)
				}
				if tree.Root.GrossMass != "1200.0" || len(tree.Root.Children) != 1 || tree.Root.Children[0].GrossMass != "7" ||
					tree.Root.Children[0].Level != contract.LevelHouseConsignment {
					t.Errorf("root %+v", tree.Root)
				}
			}},
		{"unknown shape keeps the answer raw", contract.LevelTransport, reply{status: 200, body: `{"transport":{"id":1}}`},
			"/api/movement/road/status/v2/transport/" + testMRN + "/status-with-descendants",
			func(t *testing.T, tree StatusTree, err error) {
				if err != nil || tree.Recognised() || string(tree.Raw) != `{"transport":{"id":1}}` {
					t.Errorf("tree %+v, %v; want unrecognised with the raw answer", tree, err)
				}
			}},
		{"not JSON keeps the answer raw", contract.LevelTransport, reply{status: 200, body: `<html>`},
			"/api/movement/road/status/v2/transport/" + testMRN + "/status-with-descendants",
			func(t *testing.T, tree StatusTree, err error) {
				if err != nil || tree.Recognised() || string(tree.Raw) != `<html>` {
					t.Errorf("tree %+v, %v; want unrecognised with the raw answer", tree, err)
				}
			}},
		{"404 is ErrNotFound", contract.LevelTransport, reply{status: 404, body: `{"status":404}`},
			"/api/movement/road/status/v2/transport/" + testMRN + "/status-with-descendants",
			func(t *testing.T, _ StatusTree, err error) {
				if !errors.Is(err, ErrNotFound) || failure.Classify(err) != failure.Permanent {
					t.Errorf("err = %v, want ErrNotFound, permanent", err)
				}
			}},
		{"503 is transient", contract.LevelTransport, reply{status: 503},
			"/api/movement/road/status/v2/transport/" + testMRN + "/status-with-descendants",
			func(t *testing.T, _ StatusTree, err error) {
				if failure.Classify(err) != failure.Transient || errors.Is(err, ErrNotFound) {
					t.Errorf("err = %v, want transient", err)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake, srv := newFakeToll(t, tt.reply)
			c := newClient(srv, &fakeTokens{}, &buftest.Buffer{})
			tree, err := c.StatusWithDescendants(t.Context(), RoadV2(), tt.level, testMRN)
			if got := fake.seen(); len(got) != 1 || got[0].Method != "GET" || got[0].Path != tt.wantPath {
				t.Errorf("requests %+v, want one GET %s", got, tt.wantPath)
			}
			tt.check(t, tree, err)
		})
	}

	t.Run("a house has no descendants", func(t *testing.T) {
		fake, srv := newFakeToll(t, reply{status: 200})
		c := newClient(srv, &fakeTokens{}, &buftest.Buffer{})
		if _, err := c.StatusWithDescendants(t.Context(), RoadV2(), contract.LevelHouseConsignment, testMRN); failure.Classify(err) != failure.Permanent {
			t.Errorf("err = %v, want permanent", err)
		}
		if _, err := c.StatusWithDescendants(t.Context(), RoadV2(), contract.LevelTransport, ""); failure.Classify(err) != failure.Permanent {
			t.Errorf("no MRN: err = %v, want permanent", err)
		}
		if n := len(fake.seen()); n != 0 {
			t.Errorf("%d requests sent", n)
		}
	})
}

func TestEntryStatusAnswers(t *testing.T) {
	tests := []struct {
		name  string
		reply reply
		check func(t *testing.T, st EntryStatus, err error)
	}{
		{"entered", reply{status: 200, body: `{"validEntry":true,"customsOfficeOfEntry":"NO372001","timeOfEntry":"2025-01-15T14:02:00Z","mrn":"` + testMRN + `"}`},
			func(t *testing.T, st EntryStatus, err error) {
				want := EntryStatus{ValidEntry: true, CustomsOfficeOfEntry: "NO372001", TimeOfEntry: "2025-01-15T14:02:00Z", MRN: testMRN}
				if err != nil || st != want {
					t.Errorf("got %+v, %v; want %+v", st, err, want)
				}
			}},
		{"not entered, MRN filled in", reply{status: 200, body: `{"validEntry":false}`},
			func(t *testing.T, st EntryStatus, err error) {
				if err != nil || st != (EntryStatus{MRN: testMRN}) {
					t.Errorf("got %+v, %v", st, err)
				}
			}},
		{"404 is ErrNotFound", reply{status: 404}, func(t *testing.T, _ EntryStatus, err error) {
			if !errors.Is(err, ErrNotFound) {
				t.Errorf("err = %v, want ErrNotFound", err)
			}
		}},
		{"unreadable answer is transient", reply{status: 200, body: `{"validEntry":"perhaps"}`}, func(t *testing.T, _ EntryStatus, err error) {
			if err == nil || failure.Classify(err) != failure.Transient {
				t.Errorf("err = %v, want transient", err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake, srv := newFakeToll(t, tt.reply)
			c := newClient(srv, &fakeTokens{}, &buftest.Buffer{})
			st, err := c.EntryStatus(t.Context(), AirV1(), testMRN)
			if got := fake.seen(); len(got) != 1 || got[0].Path != "/api/movement/air/status/v1/entry/status/"+testMRN {
				t.Errorf("requests %+v, want one GET of the air entry status", got)
			}
			tt.check(t, st, err)
		})
	}
	t.Run("presentation has no query API", func(t *testing.T) {
		_, srv := newFakeToll(t, reply{status: 200})
		c := newClient(srv, &fakeTokens{}, &buftest.Buffer{})
		if _, err := c.EntryStatus(t.Context(), PresentationV1(), testMRN); failure.Classify(err) != failure.Permanent {
			t.Errorf("err = %v, want permanent", err)
		}
	})
}

// simClient is a Client for a running simulator with the real token
// chain, for a client granted road and entry.
func simClient(t *testing.T) (*Client, *simulator.Server) {
	t.Helper()
	key, err := simulator.WriteDemoKey(t.TempDir(), "toll-test")
	if err != nil {
		t.Fatal(err)
	}
	sim, err := simulator.Start(simulator.Config{
		Clients: []simulator.Client{key.Client(Scope(false, RoadV2().ScopeBase), Scope(false, EntryScopeBase))},
	}, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	signer, err := auth.NewKeySigner(key.Key, key.KeyID)
	if err != nil {
		t.Fatal(err)
	}
	tokens := auth.NewCache(auth.CacheConfig{
		Maskinporten: &auth.Maskinporten{TokenURL: sim.TokenURL(), Issuer: sim.Issuer(), ClientID: key.ClientID, Signer: signer},
		Exchanger:    &auth.Exchanger{URL: sim.TollBaseURL() + "/access/external/oauth/token"},
	})
	t.Cleanup(tokens.Close)
	return &Client{BaseURL: sim.TollBaseURL(), Tokens: tokens, Timeout: 5 * time.Second}, sim
}

// declared creates a road declaration and waits for its MRN.
func declared(t *testing.T, c *Client, level contract.Level, body string) string {
	t.Helper()
	id, err := c.Declare(t.Context(), RoadV2(), contract.OpCreate, level, "", []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		v, err := c.ValidationStatus(ctx, RoadV2(), level, id)
		switch {
		case err == nil && v.Status == ValidationSuccess:
			return v.MRN
		case err == nil:
			t.Fatalf("validation %+v", v)
		case !errors.Is(err, ErrNotReady):
			t.Fatal(err)
		}
		select {
		case <-ctx.Done():
			t.Fatal("no validation result before the deadline")
		case <-tick.C:
		}
	}
}

// The simulator is the one Toll this client can run against in tests: a
// transport, its master and house, presented, read back.
func TestPresentAndQueryTheSimulator(t *testing.T) {
	c, sim := simClient(t)
	transport := declared(t, c, contract.LevelTransport, `{"documentIssueDate":"2025-01-15T08:00:00Z",
 "activeBorderTransportMeans":{"identificationNumber":"AB12345"},"carrier":{"name":"Carrier AS"},
 "customsOfficeOfFirstEntry":{"referenceNumber":"NO372001"},"estimatedDateAndTimeOfArrival":"2025-01-15T14:00:00Z",
 "consignmentMasterLevel":[{"transportDocumentMasterLevel":{"documentNumber":"MAWB-1","type":"N741"}}]}`)
	master := declared(t, c, contract.LevelMasterConsignment, `{"documentIssueDate":"2025-01-15T08:02:00Z",
 "consignmentMasterLevel":{"grossMass":1200,"transportDocumentMasterLevel":{"documentNumber":"MAWB-1","type":"N741"}}}`)
	house := declared(t, c, contract.LevelHouseConsignment, `{"documentIssueDate":"2025-01-15T08:05:00Z",
 "consignmentHouseLevel":{"totalGrossMass":120.5,"goodsDescription":"brake discs",
   "transportDocumentHouseLevel":{"documentNumber":"HWB-1","type":"N750"},
   "consignmentMasterLevel":{"transportDocumentMasterLevel":{"documentNumber":"MAWB-1","type":"N741"}},
   "consignor":{"name":"Sender AB"},"consignee":{"name":"Receiver AS"}}}`)

	tree, err := c.StatusWithDescendants(t.Context(), RoadV2(), contract.LevelTransport, transport)
	if err != nil {
		t.Fatal(err)
	}
	want := Consignment{Level: contract.LevelTransport, MRN: transport, Status: "ACCEPTED", DocumentNumber: "AB12345", Children: []Consignment{
		{Level: contract.LevelMasterConsignment, MRN: master, Status: "ACCEPTED", DocumentNumber: "MAWB-1", DocumentType: "N741", GrossMass: "1200", Children: []Consignment{
			{Level: contract.LevelHouseConsignment, MRN: house, Status: "ACCEPTED", DocumentNumber: "HWB-1", DocumentType: "N750", GrossMass: "120.5"},
		}},
	}}
	if fmt.Sprintf("%+v", tree.Root) != fmt.Sprintf("%+v", want) {
		t.Errorf("tree\n%+v\nwant\n%+v", tree.Root, want)
	}

	st, err := c.EntryStatus(t.Context(), RoadV2(), transport)
	if err != nil || st.ValidEntry {
		t.Fatalf("entry status before presenting: %+v, %v", st, err)
	}
	p := Presentation{RequestID: uuid.NewString(), CustomsOfficeOfPresentation: "NO351001", MRN: transport}
	if err := c.Present(t.Context(), p); err != nil {
		t.Fatal(err)
	}
	if err := c.Present(t.Context(), p); !errors.Is(err, ErrRequestIDUsed) {
		t.Errorf("second presentation with the same requestId: %v, want ErrRequestIDUsed", err)
	}
	st, err = c.EntryStatus(t.Context(), RoadV2(), transport)
	if err != nil || !st.ValidEntry || st.CustomsOfficeOfEntry != "NO351001" || st.TimeOfEntry == "" || st.MRN != transport {
		t.Errorf("entry status after presenting: %+v, %v", st, err)
	}
	if n := sim.Stats().Presentations(transport); n != 1 {
		t.Errorf("Presentations = %d, want 1", n)
	}

	const unknown = "25NOAAAAAAAAAAAAAA"
	if _, err := c.EntryStatus(t.Context(), RoadV2(), unknown); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown MRN entry status: %v, want ErrNotFound", err)
	}
	if _, err := c.StatusWithDescendants(t.Context(), RoadV2(), contract.LevelMasterConsignment, transport); !errors.Is(err, ErrNotFound) {
		t.Errorf("a transport's MRN as master: %v, want ErrNotFound", err)
	}
	err = c.Present(t.Context(), Presentation{RequestID: uuid.NewString(), CustomsOfficeOfPresentation: "NO351001", MRN: unknown})
	var rej *RejectedError
	if !errors.As(err, &rej) || errors.Is(err, ErrRequestIDUsed) || len(rej.Errors) != 1 || rej.Errors[0].Path != "mrn" {
		t.Errorf("unknown MRN presentation: %v, want a rejection about the mrn", err)
	}
}
