// Package routing carries Toll's routing feeds into JetStream. For one
// tenant a Poller reads each feed (house-consignment, transport) page by
// page, publishes every signal to digitoll.routing.<feed>.<tenant> in the
// stream DIGITOLL_ROUTING, and remembers where it is in the KV bucket
// digitoll-routing under "<tenant>.<feed>": the routingResult.id of the
// last signal it published, the marker Toll pages on with.
//
// # Every signal exactly once
//
// Toll's feed has no acknowledgement: asking for the page after a marker
// is the only way to move on, so the poller's own records decide what is
// published. It must never publish a signal twice and never skip one,
// whatever crash or restart comes between, even one that outlasts the
// stream's duplicate window (ten minutes), after which a Nats-Msg-Id no
// longer protects against a repeat.
//
// Per page, in order: fetch the page after the marker; publish its signals
// one by one, each only after the previous one's PubAck; then save the
// last signal's id as the marker. Publishing in sequence rather than all
// at once and then waiting costs a round trip per signal, but it
// guarantees that the stream always holds a prefix of the page: an async
// publish that fails in the middle (a leader election, a timeout) could
// leave a later signal stored and an earlier one lost, and the rule below
// would then skip the lost one. Routing feeds carry one signal per
// consignment, a few per second at most, so the round trips do not matter.
//
// A crash can thus leave signals in the stream that the marker does not
// cover: published, but the marker not yet saved. Every message carries
// headers Digitoll-Routing-Id (its signal's id) and Digitoll-Routing-After
// (the marker its page was fetched after, absent for the first page).
// Before the first page and after every error, the poller reads both the
// marker M from KV and the last message L on the feed's subject in the
// stream (GetLastMsgForSubject) and resumes:
//
//   - after M, if there is no L, or L is the signal M names;
//   - after L, if L's page was fetched after M (L's After equals M), or
//     there is no M at all (the bucket was lost; the stream knows more):
//     L and the signals before it on its page were published and the
//     marker save did not happen. The poller saves L's id as the marker
//     first, so that the pages it publishes next again carry the marker
//     that is saved, and the rule holds across repeated crashes;
//   - after M in any other case: L is older than M (messages were removed
//     from the stream, or an operator moved the marker on purpose).
//
// Toll's ids are documented only as opaque, so the poller never compares
// them for order: which of M and L is further along is known from the
// After header alone. Nats-Msg-Id "<tenant>/<id>" is still set, so that a
// repeat within the window (two pollers for one tenant by mistake) is
// dropped by JetStream; the marker is saved with compare-and-set, so such
// a second poller is noticed and both resume from the records.
//
// The routing stream must not allow direct gets from replicas
// (AllowDirect, off in worker.EnsureStreams): GetLastMsgForSubject must
// see every acknowledged message.
//
// # Failures
//
// Transient failures (Toll or NATS unavailable, 5xx, 429, timeouts) are
// retried with exponential backoff, honouring Retry-After, from the
// records, so nothing is lost or repeated. Configuration failures (the
// entry scope not granted, a token Toll refuses, the routing stream
// missing) and permanent ones (a signal without an id) cannot clear by
// retrying: the poller logs one error line saying so, reports the feed in
// Poller.Health (the worker's /readyz) and tries again after
// Poller.ConfigRetryDelay. An operator can move a stopped poller by putting
// a marker into its key.
//
// # A reset feed
//
// A marker Toll answers 400 to (toll.ErrUnknownMarker) belongs to a feed
// that was reset: a restarted simulator, a test environment wiped. Nothing
// after it can be asked for, so the poller logs a warning, saves the empty
// marker and reads the feed from its beginning. Signals it published
// before come again: within the stream's duplicate window their
// Nats-Msg-Id drops them, after it they are stored again, which is the one
// case in which a signal is published twice. If Toll refuses the marker
// of that fresh start too, the feed is not reset but broken, and the
// poller pauses it as a permanent failure instead of reading the start
// again and again.
package routing
