package bench

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/simulator"
)

// tokensValidationDelay keeps the token scenario short; what it counts
// does not depend on it.
const tokensValidationDelay = 100 * time.Millisecond

// tokens publishes submissions of all four kinds at once, with the
// routing poller running as in production, and counts what the simulator
// issued: within one Toll token lifetime each scope should cost one
// Maskinporten grant and one token exchange, however many messages need
// it at the same moment.
func tokens(ctx context.Context, r *runner) ([]Figure, error) {
	k := r.cfg.Sizes.TokenDeclarationsPerKind
	st, err := r.newStage(ctx, stageOptions{
		kinds:       []contract.Kind{contract.KindRoad, contract.KindAir, contract.KindEntry, contract.KindDocument},
		concurrency: 64, validationDelay: tokensValidationDelay,
	})
	if err != nil {
		return nil, err
	}
	defer st.close()
	road, err := variants(contract.KindRoad, "01-transport.json", "tokens-road", k, transportDocPath, nil)
	if err != nil {
		return nil, err
	}
	air, err := variants(contract.KindAir, "01-flight.json", "tokens-air", k, transportDocPath, nil)
	if err != nil {
		return nil, err
	}
	// Each presentation presents one of the road transports, with the
	// MRN of its result.
	entry, err := variants(contract.KindEntry, "01-present-truck.json", "tokens-entry", k, "", func(i int, sub map[string]any) {
		sub["after"] = road[i].id
	})
	if err != nil {
		return nil, err
	}
	docs, err := variants(contract.KindDocument, "01-invoice.json", "tokens-document", k, "", nil)
	if err != nil {
		return nil, err
	}
	msgs := slices.Concat(road, air, entry, docs)

	svc, err := st.services(ctx, r)
	if err != nil {
		return nil, err
	}
	watch, err := st.watchResults(len(msgs))
	if err != nil {
		return nil, err
	}
	defer watch.stop()
	run := start(ctx, svc.Run)
	if err := st.publish(ctx, msgs); err != nil {
		_ = run.stop()
		return nil, err
	}
	_, err = watch.wait(ctx, run)
	if stopErr := run.stop(); err == nil {
		err = stopErr
	}
	if err != nil {
		return nil, fmt.Errorf("worker: %w", err)
	}
	if err := st.verify(ctx, msgs); err != nil {
		return nil, fmt.Errorf("worker: %w", err)
	}

	stats := st.sim.Stats()
	names := []string{"road", "air", "entry", "document"}
	var grants, exchanges []string
	worst := 0
	economical := true
	for i, scope := range allScopes() {
		g, e := stats.Grants(r.key.ClientID, scope), stats.Exchanges(r.key.ClientID, scope)
		grants = append(grants, fmt.Sprintf("%s %d", names[i], g))
		exchanges = append(exchanges, fmt.Sprintf("%s %d", names[i], e))
		worst = max(worst, g, e)
		economical = economical && g == 1 && e == 1
	}
	verdict := Pass
	if !economical {
		verdict = Below
	}
	note := fmt.Sprintf("tokens: %d submissions of each kind published at once, 64 in flight, with the routing poller (entry scope) running; "+
		"all within one Toll token lifetime (%s).", k, simulator.DefaultTollTokenLifetime)
	return []Figure{
		{
			Scenario: "tokens", Metric: "Maskinporten grants per scope",
			Measured: strings.Join(grants, ", "), Value: float64(worst),
			Target: "exactly 1 each", Verdict: verdict, Note: note,
		},
		{
			Scenario: "tokens", Metric: "token exchanges per scope",
			Measured: strings.Join(exchanges, ", "), Value: float64(worst),
			Target: "exactly 1 each", Verdict: verdict,
		},
	}, nil
}
