// Package config reads the billing service's configuration from the environment.
package config

import (
	"time"

	"github.com/order-system/order-system/pkg/env"
)

// Config is the billing service's configuration.
type Config struct {
	env.Common
	IdempotencyTTL time.Duration
	PurgeInterval  time.Duration
}

// Load reads the configuration; defaults suit a developer machine.
func Load() (Config, error) {
	common, err := env.LoadCommon("billing_service", "billing", "8082")
	if err != nil {
		return Config{}, err
	}
	cfg := Config{Common: common}
	if cfg.IdempotencyTTL, err = env.Duration("IDEMPOTENCY_TTL", 24*time.Hour); err != nil {
		return Config{}, err
	}
	if cfg.PurgeInterval, err = env.Duration("IDEMPOTENCY_PURGE_INTERVAL", 10*time.Minute); err != nil {
		return Config{}, err
	}
	return cfg, nil
}
