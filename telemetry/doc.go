// Package telemetry is what the worker tells operators besides its logs:
// Prometheus metrics and OpenTelemetry traces.
//
// Metrics live in a registry of their own (never the global default one),
// served by Metrics.Handler. The packages that do the work do not import
// this one: each declares the small observer interface it calls (for
// instance worker.Observer, handlers.Observer, routing.Observer) and
// *Metrics implements all of them; what can be read at scrape time (token
// caches, certificate expiry, consumer backlogs) is read by collectors
// registered with Watch* methods. Every label value comes from a fixed
// set (kinds, operations, outcomes, reasons, path templates, status
// codes, scopes, feeds), never from message contents, so the number of
// series stays bounded whatever upstream sends. The one value taken from
// the wire, a submission subject's tenant, is labelled only when it is
// among a limited number of configured tenants (see SetTenants).
//
// Traces follow a submission from the producer's traceparent through the
// worker's span, the validation polling and each HTTP call to Toll and
// Maskinporten. Transport makes the HTTP spans (and the HTTP metrics) with
// the tracer provider of the span in the request's context, so only calls
// made on behalf of a traced message are traced. NewTracerProvider
// returns a no-op provider unless an OTLP endpoint is configured.
package telemetry
