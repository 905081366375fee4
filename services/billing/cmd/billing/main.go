// Command billing runs the billing service: the ledger of user accounts, deposits and the
// payments the order service makes. `billing migrate` applies its migrations and exits;
// `billing healthcheck` asks a running instance whether it is ready.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/order-system/order-system/pkg/httpx"
	"github.com/order-system/order-system/pkg/idempotency"
	"github.com/order-system/order-system/pkg/lifecycle"
	"github.com/order-system/order-system/pkg/logger"
	"github.com/order-system/order-system/pkg/rabbit"
	"github.com/order-system/order-system/pkg/startup"
	"github.com/order-system/order-system/services/billing/internal/billing"
	"github.com/order-system/order-system/services/billing/internal/config"
	"github.com/order-system/order-system/services/billing/internal/consumer"
	"github.com/order-system/order-system/services/billing/internal/httpapi"
	billingpg "github.com/order-system/order-system/services/billing/internal/postgres"
	"github.com/order-system/order-system/services/billing/migrations"
)

func main() {
	log := logger.New(os.Stdout, "billing", logger.ParseLevel(os.Getenv("LOG_LEVEL")))
	if err := run(context.Background(), log, os.Args[1:]); err != nil {
		log.Error("billing stopped", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, log *slog.Logger, args []string) error {
	cfg, err := config.Load()
	if err != nil {
		return fmt.Errorf("load config: %w", err)
	}
	command, err := startup.Command(args)
	if err != nil {
		return err
	}
	if command == startup.Healthcheck {
		return httpx.Probe(cfg.HTTPAddr)
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	db, err := startup.Database(ctx, cfg.DatabaseURL, migrations.FS)
	if err != nil {
		return err
	}
	defer db.Close()
	if command == startup.Migrate {
		log.Info("migrations applied")
		return nil
	}
	reg := startup.Registry(db, "billing")

	svc := billing.NewService(billingpg.NewLedger(db))
	keys := idempotency.NewStore(db, cfg.IdempotencyTTL, idempotency.DefaultLease)
	users := rabbit.NewConsumer(cfg.AMQPURL, consumer.Queue(), consumer.Handler(svc), log)

	e := httpapi.New(svc, keys, map[string]httpx.Check{
		"database": db.PingContext,
		"broker":   users.Check,
	}, log, reg)
	if cfg.Pprof {
		httpx.Pprof(e)
	}

	g := lifecycle.NewGroup(ctx)
	g.Go("users consumer", users.Run)
	g.Go("idempotency purge", func(ctx context.Context) error { return keys.RunPurge(ctx, idempotency.PurgeInterval, log) })
	g.Go("http", func(ctx context.Context) error { return httpx.Serve(ctx, e, cfg.HTTPAddr, cfg.ShutdownTimeout) })
	log.Info("billing started", "addr", cfg.HTTPAddr)
	err = g.Wait()
	log.Info("billing stopped")
	return err
}
