package app

import (
	"log/slog"
	"net/http"

	"github.com/digitoll/digitoll-worker/auth"
	"github.com/digitoll/digitoll-worker/config"
	"github.com/digitoll/digitoll-worker/ratelimit"
	"github.com/digitoll/digitoll-worker/toll"
)

// endpoints is where the tenant's Maskinporten client finds its issuer and
// token endpoint: the issuer's metadata, read through hc and cached, with
// the configured pair as fallback; nil (the configured pair) when
// discovery is off.
func endpoints(cfg *config.Config, hc *http.Client, logger *slog.Logger) auth.MetadataSource {
	if !cfg.Maskinporten.Discovery {
		return nil
	}
	return &auth.Discovery{
		Issuer:   cfg.Maskinporten.Issuer,
		Fallback: auth.Metadata{Issuer: cfg.Maskinporten.Issuer, TokenEndpoint: cfg.Maskinporten.TokenURL},
		HTTP:     hc,
		Logger:   logger.With("component", "maskinporten-discovery"),
	}
}

// limitTollCalls puts the per-API rate limit of cfg in front of next, for
// the requests below the Toll base URL, and returns the limiter the Toll
// client waits on before taking a token (the transport itself then only
// watches for 429); next alone and no limiter when the rate is 0.
func limitTollCalls(cfg *config.Config, next http.RoundTripper, logger *slog.Logger) (http.RoundTripper, toll.Limiter, error) {
	if cfg.Limits.TollRate <= 0 {
		return next, nil, nil
	}
	t, err := ratelimit.New(next, ratelimit.Config{
		Base:        cfg.TollBaseURL,
		Rate:        cfg.Limits.TollRate,
		Burst:       cfg.Limits.TollBurst,
		Logger:      logger.With("component", "ratelimit"),
		CallerWaits: true,
	})
	if err != nil {
		return nil, nil, err
	}
	return t, t, nil
}
