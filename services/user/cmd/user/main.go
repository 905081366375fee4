// Command user runs the user service: it registers users, opens their billing accounts
// and announces new users on the broker through its outbox. `user migrate` applies its
// migrations and exits; `user healthcheck` asks a running instance whether it is ready.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/order-system/order-system/api/events"
	"github.com/order-system/order-system/pkg/auth"
	"github.com/order-system/order-system/pkg/database"
	"github.com/order-system/order-system/pkg/httpx"
	"github.com/order-system/order-system/pkg/idempotency"
	"github.com/order-system/order-system/pkg/lifecycle"
	"github.com/order-system/order-system/pkg/logger"
	"github.com/order-system/order-system/pkg/metrics"
	"github.com/order-system/order-system/pkg/migrate"
	"github.com/order-system/order-system/pkg/outbox"
	"github.com/order-system/order-system/pkg/rabbit"
	"github.com/order-system/order-system/pkg/tracing"
	"github.com/order-system/order-system/services/user/internal/billingclient"
	"github.com/order-system/order-system/services/user/internal/config"
	"github.com/order-system/order-system/services/user/internal/httpapi"
	"github.com/order-system/order-system/services/user/internal/postgres"
	"github.com/order-system/order-system/services/user/internal/user"
	"github.com/order-system/order-system/services/user/migrations"
)

func main() {
	log := logger.New(os.Stdout, "user", logger.ParseLevel(os.Getenv("LOG_LEVEL")))
	if err := run(context.Background(), log, os.Args[1:]); err != nil {
		log.Error("user stopped", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, log *slog.Logger, args []string) error {
	cfg, err := config.Load()
	if err != nil {
		return fmt.Errorf("load config: %w", err)
	}
	command, err := lifecycle.Command(args)
	if err != nil {
		return err
	}
	if command == lifecycle.Healthcheck {
		return httpx.Probe(cfg.HTTPAddr)
	}
	log.Info("user starting", "command", command, "config", cfg)
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	dbConfig := database.Config{URL: cfg.DatabaseURL, MaxOpenConns: cfg.DBMaxOpenConns}
	if command == lifecycle.Migrate {
		return migrate.Command(ctx, log, dbConfig, migrations.FS, args[1:])
	}
	db, err := migrate.Open(ctx, dbConfig, migrations.FS)
	if err != nil {
		return err
	}
	defer db.Close()
	// Serving needs this service's own credential for billing's internal API; migrating
	// (an init container, which has no use for it) does not.
	if err := cfg.Auth.RequireClient(); err != nil {
		return err
	}
	reg := metrics.NewRegistry(db.DB, "user")
	stopTracing, err := tracing.Setup(ctx, "user", log)
	if err != nil {
		return err
	}
	defer stopTracing() // after the inputs and workers stopped: their last spans go out too

	// The outbox relay reads through a small pool of its own, which commits asynchronously:
	// losing the mark "published" in a crash only republishes events, which consumers
	// deduplicate. Nothing dials the broker before the publisher runs, so a broker that is
	// down does not keep the service from starting.
	relayDB, err := database.Open(ctx, database.Config{URL: cfg.DatabaseURL, MaxOpenConns: cfg.DBRelayMaxOpenConns, AsyncCommit: true})
	if err != nil {
		return err
	}
	defer relayDB.Close()
	reg.MustRegister(metrics.Pool(relayDB.DB, "user_relay"))
	publisher := rabbit.NewPublisher(cfg.AMQPURL, events.Exchange)
	defer publisher.Close()
	relay := outbox.NewRelay(relayDB, rabbit.OutboxPublisher{Publisher: publisher}, outbox.RelayConfig{}, log, reg)

	svc := user.NewService(postgres.NewUsers(db, relay.Wake), billingclient.New(cfg.BillingURL, cfg.BillingTimeout, cfg.Auth), log)
	keys := idempotency.NewStore(db, cfg.Idempotency.TTL, cfg.Idempotency.Lease)

	e := httpapi.New(svc, auth.NewGuard(cfg.Auth), keys, map[string]httpx.Check{
		"database": db.PingContext,
		"broker":   httpx.Degraded(publisher.Check),
	}, log, reg)
	if cfg.Pprof {
		httpx.Pprof(e)
	}

	g := lifecycle.NewGroup(ctx)
	g.Background("event publisher", publisher.Run) // keeps the connection up, so that the readiness check need not dial
	g.Background("outbox relay", relay.Run)
	g.Background("idempotency purge", func(ctx context.Context) error { return keys.RunPurge(ctx, cfg.Idempotency.PurgeInterval, log) })
	g.Go("http", func(ctx context.Context) error { return httpx.Serve(ctx, e, cfg.HTTPAddr, cfg.ShutdownTimeout) })
	log.Info("user started", "addr", cfg.HTTPAddr)
	err = g.Wait()
	log.Info("user stopped")
	return err
}
