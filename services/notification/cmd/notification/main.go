// Command notification runs the notification service: it consumes order events from the
// broker and keeps one notification per finished order for its user. `notification migrate`
// applies its migrations and exits; `notification healthcheck` asks a running instance
// whether it is ready.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/order-system/order-system/pkg/auth"
	"github.com/order-system/order-system/pkg/database"
	"github.com/order-system/order-system/pkg/httpx"
	"github.com/order-system/order-system/pkg/lifecycle"
	"github.com/order-system/order-system/pkg/logger"
	"github.com/order-system/order-system/pkg/metrics"
	"github.com/order-system/order-system/pkg/migrate"
	"github.com/order-system/order-system/pkg/rabbit"
	"github.com/order-system/order-system/pkg/tracing"
	"github.com/order-system/order-system/services/notification/internal/config"
	"github.com/order-system/order-system/services/notification/internal/consumer"
	"github.com/order-system/order-system/services/notification/internal/httpapi"
	"github.com/order-system/order-system/services/notification/internal/postgres"
	"github.com/order-system/order-system/services/notification/migrations"
)

func main() {
	log := logger.New(os.Stdout, "notification", logger.ParseLevel(os.Getenv("LOG_LEVEL")))
	if err := run(context.Background(), log, os.Args[1:]); err != nil {
		log.Error("notification stopped", "err", err)
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
	log.Info("notification starting", "command", command, "config", cfg)
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
	reg := metrics.NewRegistry(db.DB, "notification")
	stopTracing, err := tracing.Setup(ctx, "notification", log)
	if err != nil {
		return err
	}
	defer stopTracing() // after the inputs and workers stopped: their last spans go out too

	store := postgres.NewStore(db)
	orders := rabbit.NewConsumer(cfg.AMQPURL, consumer.Queue(), consumer.Handler(store, cfg.Lang, log), log, reg)

	e := httpapi.New(store, auth.NewGuard(cfg.Auth), map[string]httpx.Check{"database": db.PingContext, "broker": httpx.Degraded(orders.Check)}, log, reg)
	if cfg.Pprof {
		httpx.Pprof(e)
	}

	g := lifecycle.NewGroup(ctx)
	g.Go("orders consumer", orders.Run)
	g.Go("http", func(ctx context.Context) error { return httpx.Serve(ctx, e, cfg.HTTPAddr, cfg.ShutdownTimeout) })
	log.Info("notification started", "addr", cfg.HTTPAddr)
	err = g.Wait()
	log.Info("notification stopped")
	return err
}
