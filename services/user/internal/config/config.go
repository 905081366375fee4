// Package config reads the user service's configuration from the environment.
package config

import (
	"time"

	"github.com/order-system/order-system/pkg/env"
)

// Config is the user service's configuration.
type Config struct {
	env.Common
	BillingURL     string
	BillingTimeout time.Duration
	IdempotencyTTL time.Duration
	PurgeInterval  time.Duration
}

// Load reads the configuration; defaults suit a developer machine.
func Load() (Config, error) {
	common, err := env.LoadCommon("user_service", "users", "8081")
	if err != nil {
		return Config{}, err
	}
	cfg := Config{Common: common, BillingURL: env.String("BILLING_URL", "http://127.0.0.1:8082")}
	if cfg.BillingTimeout, err = env.Duration("BILLING_TIMEOUT", 3*time.Second); err != nil {
		return Config{}, err
	}
	if cfg.IdempotencyTTL, err = env.Duration("IDEMPOTENCY_TTL", 24*time.Hour); err != nil {
		return Config{}, err
	}
	if cfg.PurgeInterval, err = env.Duration("IDEMPOTENCY_PURGE_INTERVAL", 10*time.Minute); err != nil {
		return Config{}, err
	}
	return cfg, nil
}
