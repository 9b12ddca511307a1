// Package chaos holds the delivery-guarantee tests of digitoll-worker: real
// `digitoll run` processes, built once per test run, against real embedded
// NATS servers and the Maskinporten/Toll simulator, while the tests kill the
// workers with SIGKILL, restart NATS, shut down a cluster node, let Toll and
// Maskinporten fail, and feed the worker malformed messages. After each
// scenario they check the invariants of docs/contract.md from the outside: every
// submission id has exactly one result in DIGITOLL_RESULTS; no Toll POST was
// repeated for an id once its requestId was known (the simulator lists every
// POST it processed, in order); no declaration Toll accepted is reported
// rejected (it is accepted with Toll's MRN, or unresolved where Toll offers
// no lookup), also when Toll's answers are lost on purpose; the DLQ holds
// exactly the messages that could not be processed.
//
// The package has no code of its own outside its tests. The default run is
// short (about a minute on two cores):
//
//	go test -race -count=1 ./chaos/
//
// The long versions (1,000+ messages, more kills, two worker processes
// sharing the consumer, a 60 s storm) carry the build tag soak:
//
//	go test -tags soak -race -count=1 -run Soak -timeout 20m -v ./chaos/
//
// DIGITOLL_CHAOS_SEED=<n> repeats the random choices (kill moments, which
// worker dies) of an earlier run; every test logs the seed it used.
package chaos
