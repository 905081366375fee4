// Package config reads the order service's configuration from the environment.
package config

import (
	"time"

	"github.com/order-system/order-system/pkg/env"
	"github.com/order-system/order-system/services/order/internal/order"
)

// Config is the order service's configuration.
type Config struct {
	env.Common
	BillingURL     string
	BillingTimeout time.Duration
	Idempotency    env.Idempotency
	Reconciler     order.ReconcilerConfig
}

// Load reads the configuration; defaults suit a developer machine.
func Load() (Config, error) {
	common, err := env.LoadCommon("order_service", "orders", "8083")
	if err != nil {
		return Config{}, err
	}
	cfg := Config{Common: common, BillingURL: env.String("BILLING_URL", "http://127.0.0.1:8082")}
	if cfg.BillingTimeout, err = env.Duration("BILLING_TIMEOUT", 3*time.Second); err != nil {
		return Config{}, err
	}
	if cfg.Idempotency, err = env.LoadIdempotency(); err != nil {
		return Config{}, err
	}
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
	cfg.Reconciler = r
	return cfg, nil
}
