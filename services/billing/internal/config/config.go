// Package config reads the billing service's configuration from the environment.
package config

import "github.com/order-system/order-system/pkg/env"

// Config is the billing service's configuration.
type Config struct {
	env.Common
	Idempotency env.Idempotency
}

// Load reads the configuration; defaults suit a developer machine.
func Load() (Config, error) {
	common, err := env.LoadCommon("billing_service", "billing", "8082")
	if err != nil {
		return Config{}, err
	}
	cfg := Config{Common: common}
	if cfg.Idempotency, err = env.LoadIdempotency(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}
