// Command order runs the order service: it places orders, pays them through billing over
// HTTP and announces finished orders on the broker through its outbox. `order migrate`
// applies its migrations and exits; `order healthcheck` asks a running instance whether it
// is ready.
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
	"github.com/order-system/order-system/services/order/internal/billingclient"
	"github.com/order-system/order-system/services/order/internal/config"
	"github.com/order-system/order-system/services/order/internal/httpapi"
	"github.com/order-system/order-system/services/order/internal/order"
	"github.com/order-system/order-system/services/order/internal/postgres"
	"github.com/order-system/order-system/services/order/migrations"
)

func main() {
	log := logger.New(os.Stdout, "order", logger.ParseLevel(os.Getenv("LOG_LEVEL")))
	if err := run(context.Background(), log, os.Args[1:]); err != nil {
		log.Error("order stopped", "err", err)
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
	log.Info("order starting", "command", command, "config", cfg)
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
	reg := metrics.NewRegistry(db.DB, "order")
	stopTracing, err := tracing.Setup(ctx, "order", log)
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
	// The relay's pool is watched like the service's own; the reconciler's backlog is read at
	// every scrape.
	reg.MustRegister(metrics.Pool(relayDB.DB, "order_relay"), postgres.PendingMetrics(db))
	publisher := rabbit.NewPublisher(cfg.AMQPURL, events.Exchange)
	defer publisher.Close()
	relay := outbox.NewRelay(relayDB, rabbit.OutboxPublisher{Publisher: publisher}, outbox.RelayConfig{}, log, reg)

	svc := order.NewService(postgres.NewOrders(db, relay.Wake, cfg.Reconciler.Hold()).WithPayWindow(cfg.PayWindow), billingclient.New(cfg.BillingURL, cfg.BillingTimeout, cfg.Auth, reg), log).
		WithPlaceTimeout(cfg.PlaceTimeout)
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
	g.Background("reconciler", func(ctx context.Context) error { return svc.RunReconciler(ctx, cfg.Reconciler) })
	g.Background("idempotency purge", func(ctx context.Context) error { return keys.RunPurge(ctx, cfg.Idempotency.PurgeInterval, log) })
	g.Go("http", func(ctx context.Context) error { return httpx.Serve(ctx, e, cfg.HTTPAddr, cfg.ShutdownTimeout) })
	log.Info("order started", "addr", cfg.HTTPAddr)
	err = g.Wait()
	log.Info("order stopped")
	return err
}
