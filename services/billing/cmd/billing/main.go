// Command billing runs the billing service: the ledger of user accounts, deposits and the
// payments the order service makes. `billing migrate` applies its migrations and exits;
// `billing healthcheck` asks a running instance whether it is ready; `billing verify` checks
// the ledger's invariants on the database and exits non-zero listing any violation.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/order-system/order-system/pkg/auth"
	"github.com/order-system/order-system/pkg/database"
	"github.com/order-system/order-system/pkg/httpx"
	"github.com/order-system/order-system/pkg/idempotency"
	"github.com/order-system/order-system/pkg/lifecycle"
	"github.com/order-system/order-system/pkg/logger"
	"github.com/order-system/order-system/pkg/metrics"
	"github.com/order-system/order-system/pkg/migrate"
	"github.com/order-system/order-system/pkg/rabbit"
	"github.com/order-system/order-system/pkg/tracing"
	"github.com/order-system/order-system/services/billing/internal/billing"
	"github.com/order-system/order-system/services/billing/internal/config"
	"github.com/order-system/order-system/services/billing/internal/consumer"
	"github.com/order-system/order-system/services/billing/internal/httpapi"
	"github.com/order-system/order-system/services/billing/internal/postgres"
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
	command, err := lifecycle.Command(args, "verify")
	if err != nil {
		return err
	}
	if command == lifecycle.Healthcheck {
		return httpx.Probe(cfg.HTTPAddr)
	}
	log.Info("billing starting", "command", command, "config", cfg)
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
	ledger := postgres.NewLedger(db)
	if command == "verify" {
		return verify(ctx, ledger)
	}
	reg := metrics.NewRegistry(db.DB, "billing")
	stopTracing, err := tracing.Setup(ctx, "billing", log)
	if err != nil {
		return err
	}
	defer stopTracing() // after the inputs and workers stopped: their last spans go out too

	svc := billing.NewService(ledger, log)
	keys := idempotency.NewStore(db, cfg.Idempotency.TTL, cfg.Idempotency.Lease)
	users := rabbit.NewConsumer(cfg.AMQPURL, consumer.Queue(), rabbit.OneByOne(consumer.Handler(svc)), log, reg)

	e := httpapi.New(svc, auth.NewGuard(cfg.Auth), keys, map[string]httpx.Check{
		"database": db.PingContext,
		"broker":   httpx.Degraded(users.Check),
	}, log, reg)
	if cfg.Pprof {
		httpx.Pprof(e)
	}

	g := lifecycle.NewGroup(ctx)
	g.Go("users consumer", users.Run)
	g.Background("idempotency purge", func(ctx context.Context) error { return keys.RunPurge(ctx, cfg.Idempotency.PurgeInterval, log) })
	g.Go("http", func(ctx context.Context) error { return httpx.Serve(ctx, e, cfg.HTTPAddr, cfg.ShutdownTimeout) })
	log.Info("billing started", "addr", cfg.HTTPAddr)
	err = g.Wait()
	log.Info("billing stopped")
	return err
}

// verify prints every ledger violation as a JSON line on stdout and fails if there is one.
func verify(ctx context.Context, ledger *postgres.Ledger) error {
	violations, err := ledger.Verify(ctx)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(os.Stdout)
	for _, v := range violations {
		if err := enc.Encode(map[string]string{"invariant": v.Invariant, "subject": v.Subject, "detail": v.Detail}); err != nil {
			return err
		}
	}
	if len(violations) > 0 {
		return fmt.Errorf("ledger verification found %d violations", len(violations))
	}
	fmt.Fprintln(os.Stderr, "ledger verified: no violations")
	return nil
}
