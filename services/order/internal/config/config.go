// Package config reads the order service's configuration from the environment.
package config

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/order-system/order-system/pkg/auth"
	"github.com/order-system/order-system/pkg/env"
	"github.com/order-system/order-system/pkg/idempotency"
	"github.com/order-system/order-system/services/order/internal/order"
)

// localDatabase is the service's database on a developer machine: its role, in its schema
// of the order_system database that deploy/postgres/setup.sql creates.
const localDatabase = "postgres://order_service:order_service@127.0.0.1:5432/order_system?sslmode=disable&search_path=orders"

// Config is the order service's configuration.
type Config struct {
	env.Common
	// Auth is sign-in (AUTH, AUTH_ISSUER, ...): off unless AUTH=oidc.
	Auth           auth.Config
	BillingURL     string
	BillingTimeout time.Duration
	Idempotency    idempotency.Config
	// PlaceTimeout bounds placing an order: order.DefaultPlaceTimeout, but never longer than
	// the Idempotency-Key lease, which the request takes in its first statement. A keyed
	// request that outlived its lease would let a retry run beside it instead of being
	// told 409.
	PlaceTimeout time.Duration
	// PayWindow is how long after it is placed an order may be paid (order.PayWindow of the
	// key TTL).
	PayWindow  time.Duration
	Reconciler order.ReconcilerConfig
}

// Load reads the configuration; defaults suit a developer machine.
func Load() (Config, error) {
	common, err := env.LoadCommon(":8083", localDatabase)
	if err != nil {
		return Config{}, err
	}
	cfg := Config{Common: common, BillingURL: env.String("BILLING_URL", "http://127.0.0.1:8082")}
	if cfg.BillingTimeout, err = env.Duration("BILLING_TIMEOUT", 3*time.Second); err != nil {
		return Config{}, err
	}
	if cfg.Idempotency, err = idempotency.LoadConfig(); err != nil {
		return Config{}, err
	}
	cfg.PlaceTimeout = min(order.DefaultPlaceTimeout, cfg.Idempotency.Lease)
	r := order.DefaultReconcilerConfig()
	if r.Interval, err = env.Duration("RECONCILE_INTERVAL", r.Interval); err != nil {
		return Config{}, err
	}
	if r.BaseBackoff, err = env.Duration("RECONCILE_BACKOFF", r.BaseBackoff); err != nil {
		return Config{}, err
	}
	if r.MaxBackoff, err = env.Duration("RECONCILE_MAX_BACKOFF", r.MaxBackoff); err != nil {
		return Config{}, err
	}
	if r.MaxAttempts, err = env.Int("RECONCILE_MAX_ATTEMPTS", r.MaxAttempts); err != nil {
		return Config{}, err
	}
	r.CallTimeout = cfg.BillingTimeout
	cfg.Reconciler = r
	cfg.PayWindow = order.PayWindow(cfg.Idempotency.TTL)
	// The pay deadline is what keeps one key from paying for two orders, whatever the
	// schedule. A schedule longer than the window would void orders by the deadline
	// before their attempts ran out: a setting that cannot mean what it says.
	if h := r.PayHorizon(); cfg.PayWindow <= h {
		return Config{}, fmt.Errorf("IDEMPOTENCY_TTL %v leaves a pay window of %v, shorter than the %v in which the reconciler's schedule pays an order (RECONCILE_MAX_ATTEMPTS, RECONCILE_BACKOFF, RECONCILE_MAX_BACKOFF, BILLING_TIMEOUT)",
			cfg.Idempotency.TTL, cfg.PayWindow, h)
	}
	if cfg.Auth, err = auth.LoadConfig(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// LogValue is the configuration as the start-up log shows it, passwords masked.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(append(c.Common.Attrs(), slog.Any("auth", c.Auth),
		slog.String("billing_url", c.BillingURL),
		slog.String("billing_timeout", c.BillingTimeout.String()),
		slog.Any("idempotency", c.Idempotency),
		slog.String("place_timeout", c.PlaceTimeout.String()),
		slog.String("pay_window", c.PayWindow.String()),
		slog.Group("reconciler", slog.String("interval", c.Reconciler.Interval.String()), slog.Int("max_attempts", c.Reconciler.MaxAttempts),
			slog.String("base_backoff", c.Reconciler.BaseBackoff.String()), slog.String("max_backoff", c.Reconciler.MaxBackoff.String())))...)
}
