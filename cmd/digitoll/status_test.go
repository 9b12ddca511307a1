package main

import (
	"context"
	"flag"
	"github.com/digitoll/digitoll-worker/app"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/digitoll/digitoll-worker/config"
	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/handlers"
	"github.com/digitoll/digitoll-worker/samples"
	"github.com/digitoll/digitoll-worker/simulator"
	"github.com/digitoll/digitoll-worker/toll"
)

// statusVars configures a tenant, as for Toll's test environment, against
// a simulator that knows its key and grants road and entry.
func statusVars(t *testing.T) (map[string]string, *simulator.Server) {
	t.Helper()
	dir := t.TempDir()
	key, err := simulator.WriteDemoKey(dir, config.SimClientID)
	if err != nil {
		t.Fatal(err)
	}
	sim, err := simulator.Start(simulator.Config{
		Clients: []simulator.Client{key.Client("toll:movement/road/v2", "toll:movement/entry")},
	}, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	return map[string]string{
		"DIGITOLL_ENV":                    "test",
		"DIGITOLL_MASKINPORTEN_ISSUER":    sim.Issuer(),
		"DIGITOLL_MASKINPORTEN_TOKEN_URL": sim.TokenURL(),
		"DIGITOLL_TOLL_BASE_URL":          sim.TollBaseURL(),
		"DIGITOLL_CLIENT_ID":              key.ClientID,
		"DIGITOLL_KEY_FILE":               key.KeyFile,
		"DIGITOLL_CERT_FILE":              key.CertFile,
	}, sim
}

// declareSamples declares the road samples that Toll accepts, with the
// tenant's own client, and returns their MRNs by level.
func declareSamples(t *testing.T, vars map[string]string) (map[contract.Level]string, *toll.Client) {
	t.Helper()
	cfg, err := config.Load(flag.NewFlagSet("test", flag.ContinueOnError), nil, func(k string) string { return vars[k] })
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.DiscardHandler)
	client, err := app.NewTollClient(cfg, app.HTTPClient(cfg.Worker), logger)
	if err != nil {
		t.Fatal(err)
	}
	if c, ok := client.Tokens.(interface{ Close() }); ok {
		t.Cleanup(c.Close)
	}
	h := &handlers.Movement{API: toll.RoadV2(), Toll: client,
		Poll: handlers.PollPolicy{Initial: 5 * time.Millisecond, Max: 50 * time.Millisecond, Timeout: 10 * time.Second}}
	all, err := samples.Load(contract.KindRoad)
	if err != nil {
		t.Fatal(err)
	}
	mrns := map[contract.Level]string{}
	for _, s := range all[:3] { // transport, master, house; the fourth is broken on purpose
		sub, err := contract.ParseSubmission(contract.KindRoad, s.Body)
		if err != nil {
			t.Fatal(err)
		}
		out, err := h.Handle(t.Context(), handlers.Request{Tenant: contract.DefaultTenant, Kind: contract.KindRoad, Submission: sub, Delivery: 1, ReceivedAt: time.Now()})
		if err != nil || out.Status != contract.StatusAccepted {
			t.Fatalf("%s: %+v, %v", s.Name, out, err)
		}
		mrns[sub.Level] = out.MRN
	}
	return mrns, client
}

func runCmd(t *testing.T, vars map[string]string, args ...string) (int, string, string) {
	t.Helper()
	env, out, errOut := testEnv(vars)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	code := run(ctx, env, append([]string{"status"}, args...))
	return code, out.String(), errOut.String()
}

func TestStatusShowsTheTreeAndEntry(t *testing.T) {
	vars, _ := statusVars(t)
	mrns, client := declareSamples(t, vars)
	transport, master, house := mrns[contract.LevelTransport], mrns[contract.LevelMasterConsignment], mrns[contract.LevelHouseConsignment]

	code, out, errOut := runCmd(t, vars, transport)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	want := "transport  AB12345  MRN " + transport + "  ACCEPTED\n" +
		"  master-consignment  MAWB-DEMO-0001 (N741)  MRN " + master + "  ACCEPTED  gross mass 1200 kg\n" +
		"    house-consignment  HWB-DEMO-0001 (N750)  MRN " + house + "  ACCEPTED  gross mass 120.5 kg\n" +
		"entry: not yet presented\n"
	if out != want {
		t.Errorf("stdout\n%s\nwant\n%s", out, want)
	}

	if err := client.Present(t.Context(), toll.Presentation{RequestID: uuid.NewString(), CustomsOfficeOfPresentation: "NO351001", MRN: transport}); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = runCmd(t, vars, "--kind", "road", "--level", "master-consignment", master)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if !strings.HasPrefix(out, "master-consignment  MAWB-DEMO-0001 (N741)  MRN "+master) || !strings.Contains(out, "\n  house-consignment  HWB-DEMO-0001") {
		t.Errorf("master tree:\n%s", out)
	}
	if !strings.Contains(out, "entry: not yet presented") {
		t.Errorf("the master was not presented, the transport was:\n%s", out)
	}

	_, out, _ = runCmd(t, vars, transport)
	if !regexp.MustCompile(`(?m)^entry: presented at NO351001 at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$`).MatchString(out) {
		t.Errorf("after presenting:\n%s", out)
	}
}

func TestStatusErrors(t *testing.T) {
	vars, _ := statusVars(t)
	const unknown = "25NOAAAAAAAAAAAAAA"
	tests := []struct {
		name       string
		vars       map[string]string
		args       []string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{"help", vars, []string{"--help"}, 0, "-level string", ""},
		{"help lists the worker's settings", nil, []string{"--help"}, 0, "DIGITOLL_CLIENT_ID", ""},
		{"no MRN", vars, nil, 2, "", "name the MRN"},
		{"no MRN and no configuration", nil, []string{"--kind", "air"}, 2, "", "name the MRN"},
		{"not an MRN", vars, []string{"truck"}, 2, "", `"truck" is not an MRN`},
		{"two MRNs", vars, []string{unknown, unknown}, 2, "", "want one MRN after the flags"},
		{"flags after the MRN", vars, []string{unknown, "--kind", "air"}, 2, "", "want one MRN after the flags"},
		{"bad kind", vars, []string{"--kind", "sea", unknown}, 2, "", `--kind: "sea" is not a kind with a query API (road or air)`},
		{"a kind without a query API", vars, []string{"--kind", "entry", unknown}, 2, "", `--kind: "entry" is not a kind with a query API (road or air)`},
		{"bad level", vars, []string{"--level", "house-consignment", unknown}, 2, "", "--level"},
		{"bad flag", vars, []string{"--bogus", unknown}, 2, "", "flag provided but not defined: -bogus"},
		{"missing configuration names the setting", nil, []string{unknown}, 1, "", "DIGITOLL_CLIENT_ID"},
		{"unknown MRN", vars, []string{unknown}, 1, "", "no road transport declaration " + unknown},
		{"after --", vars, []string{"--", unknown}, 1, "", "no road transport declaration " + unknown},
		{"air scope not granted", vars, []string{"--kind", "air", unknown}, 1, "", "toll:movement/air"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCmd(t, tt.vars, tt.args...)
			if code != tt.wantCode {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.wantCode, out, errOut)
			}
			if !strings.Contains(out, tt.wantStdout) {
				t.Errorf("stdout lacks %q:\n%s", tt.wantStdout, out)
			}
			if !strings.Contains(errOut, tt.wantStderr) {
				t.Errorf("stderr lacks %q:\n%s", tt.wantStderr, errOut)
			}
		})
	}
}

func TestPrintTreeOfAnUnknownShape(t *testing.T) {
	var b strings.Builder
	printTree(&b, contract.LevelTransport, "25NOAAAAAAAAAAAAAA", toll.StatusTree{Raw: []byte(`{"transport":{"id":1}}`)})
	want := "transport 25NOAAAAAAAAAAAAAA: Toll's answer, in a shape this version does not read:\n  {\n    \"transport\": {\n      \"id\": 1\n    }\n  }\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
	var e strings.Builder
	printEntry(&e, toll.EntryStatus{ValidEntry: true})
	if e.String() != "entry: presented at an office Toll did not name at a time Toll did not give\n" {
		t.Errorf("entry without details: %q", e.String())
	}
}
