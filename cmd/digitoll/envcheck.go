package main

import (
	"fmt"
	"log/slog"

	"github.com/digitoll/digitoll-worker/config"
	"github.com/digitoll/digitoll-worker/natsconn"
)

// commandVariables are the DIGITOLL_* variables that are not worker
// settings but are read all the same: by the flags of other commands
// (those whose usage names "($DIGITOLL_…)"), and by the test suites.
// Any other DIGITOLL_* variable is reported as unknown.
var commandVariables = []string{
	// digitoll sim
	"DIGITOLL_SIM_LISTEN", "DIGITOLL_SIM_PUBLIC_URL", "DIGITOLL_SIM_CLIENT_ID", "DIGITOLL_SIM_CLIENT_KEY_ID", "DIGITOLL_SIM_CLIENT_PUBLIC_KEY",
	"DIGITOLL_SIM_CLIENT_CERT", "DIGITOLL_SIM_SCOPES", "DIGITOLL_SIM_TOKEN_LIFETIME", "DIGITOLL_SIM_VALIDATION_DELAY",
	// digitoll publish, results, dlq
	"DIGITOLL_PUBLISH_KIND", "DIGITOLL_TENANT",
	// the test suites
	"DIGITOLL_CHAOS_SEED", "DIGITOLL_CHAOS_LOGS", "DIGITOLL_BENCH_TEST_NATS_DIR",
}

// unknownVariables warns about the DIGITOLL_* variables of the process
// that nothing reads.
func unknownVariables(env *environment) []string {
	if env.environ == nil {
		return nil
	}
	return config.UnknownVariables(env.environ(), commandVariables...)
}

// printUnknownVariables prints the unknown-variable warnings on stderr,
// for a start-up that stops before its logger exists.
func printUnknownVariables(env *environment) {
	for _, w := range unknownVariables(env) {
		fmt.Fprintln(env.stderr, "warning:", w)
	}
}

// logConfigAtStart logs, once at start-up, what in the configuration has
// no effect or is risky without being wrong, and where NATS and the traces
// go when a convention of the ecosystem (NATS_URL, a nats context, OTEL_*)
// rather than a setting said so.
func logConfigAtStart(env *environment, cfg *config.Config, logger *slog.Logger) {
	for _, w := range unknownVariables(env) {
		logger.Warn(w)
	}
	for _, w := range cfg.Warnings() {
		logger.Warn(w)
	}
	switch n := cfg.NATS; {
	case n.URL == "":
		logger.Info("NATS: the embedded server (DIGITOLL_NATS_URL, NATS_URL and a nats context name none)")
	default:
		logger.Info("NATS: "+natsconn.RedactURL(n.URL), "from", n.Source)
	}
	if from := cfg.BorrowedFrom("DIGITOLL_OTLP_ENDPOINT"); from != "" {
		logger.Info("traces: "+cfg.Tracing.OTLPEndpoint, "from", from)
	}
}
