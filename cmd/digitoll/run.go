package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"time"

	"github.com/digitoll/digitoll-worker/app"
	"github.com/digitoll/digitoll-worker/config"
	"github.com/digitoll/digitoll-worker/health"
	"github.com/digitoll/digitoll-worker/natsconn"
)

func runWorker(ctx context.Context, env *environment, args []string) error {
	fs := newFlagSet(env, "run", "[flags]\n\nEvery flag can also be set by the environment variable named in its description.")
	prepareHelp(env, fs, args)
	cfg, err := config.Load(fs, args, env.getenv)
	if errors.Is(err, config.ErrArgument) {
		fmt.Fprintln(env.stderr, err)
		fs.Usage()
		return errUsage
	}
	if err = parseError(err); err != nil {
		printUnknownVariables(env) // a typo is often why a setting is missing
		return err
	}
	if cfg.Pprof && cfg.HTTPAddr == "" {
		return errors.New("DIGITOLL_PPROF: the profiles are served on DIGITOLL_HTTP_ADDR, which is off")
	}
	logger := newLogger(env, cfg.Log)
	logConfigAtStart(env, cfg, logger)

	conn, err := natsconn.Connect(cfg.NATS, "digitoll-worker", logger)
	if err != nil {
		return err
	}
	defer conn.Close()
	if conn.Embedded != nil {
		fmt.Fprintf(env.stdout, "embedded NATS with JetStream at %s (store %s); point the nats CLI at it with --server %s\n",
			conn.Embedded.ClientURL(), cfg.NATS.EmbeddedDir, conn.Embedded.ClientURL())
	}
	if err := app.EnsureStreams(ctx, conn.JS, cfg.NATS); err != nil {
		return err
	}
	svc, err := app.NewServices(ctx, cfg, conn.JS, logger)
	if err != nil {
		return err
	}
	defer flushTraces(ctx, svc, logger)
	if cfg.HTTPAddr != "" {
		extra := map[string]http.Handler{"GET /metrics": svc.Telemetry.Metrics.Handler()}
		if cfg.Pprof {
			maps.Copy(extra, health.Profiles())
		}
		srv, err := health.Listen(cfg.HTTPAddr, health.Handler(readinessChecks(conn, svc.Worker, svc.RoutingHealth), extra), logger)
		if err != nil {
			return fmt.Errorf("DIGITOLL_HTTP_ADDR: %w", err)
		}
		defer func() {
			ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(ctx)
		}()
		fmt.Fprintf(env.stdout, "health at http://%s/healthz, readiness at http://%s/readyz, metrics at http://%s/metrics\n", srv.Addr(), srv.Addr(), srv.Addr())
		if cfg.Pprof {
			fmt.Fprintf(env.stdout, "profiles at http://%s/debug/pprof/\n", srv.Addr())
		}
	}
	if cfg.TenantsFile != "" {
		logger.Info("digitoll-worker configured", "env", cfg.Env, "toll", cfg.TollBaseURL, "tenants_file", cfg.TenantsFile,
			"concurrency", cfg.Worker.Concurrency)
	} else {
		logger.Info("digitoll-worker configured", "env", cfg.Env, "toll", cfg.TollBaseURL, "kinds", cfg.Tenant.Kinds,
			"tenant", cfg.Tenant.Name, "concurrency", cfg.Worker.Concurrency)
	}
	if err := svc.Run(ctx); err != nil {
		return err
	}
	logger.Info("worker stopped")
	return nil
}

// flushTraces exports the spans still buffered when the services stop.
func flushTraces(ctx context.Context, svc *app.Services, logger *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := svc.Shutdown(ctx); err != nil {
		logger.Warn("exporting the last traces failed", "error", err)
	}
}
