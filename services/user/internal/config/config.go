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
	Idempotency    env.Idempotency
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
	if cfg.Idempotency, err = env.LoadIdempotency(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}
