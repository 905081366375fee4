// Package config reads the billing service's configuration from the environment.
package config

import (
	"log/slog"

	"github.com/order-system/order-system/pkg/auth"
	"github.com/order-system/order-system/pkg/env"
	"github.com/order-system/order-system/pkg/idempotency"
)

// localDatabase is the service's database on a developer machine: its role, in its schema
// of the order_system database that deploy/postgres/setup.sql creates.
const localDatabase = "postgres://billing_service:billing_service@127.0.0.1:5432/order_system?sslmode=disable&search_path=billing"

// Config is the billing service's configuration.
type Config struct {
	env.Common
	// Auth is sign-in (AUTH, AUTH_ISSUER, ...): off unless AUTH=oidc.
	Auth        auth.Config
	Idempotency idempotency.Config
}

// Load reads the configuration; defaults suit a developer machine.
func Load() (Config, error) {
	common, err := env.LoadCommon(":8082", localDatabase)
	if err != nil {
		return Config{}, err
	}
	cfg := Config{Common: common}
	if cfg.Idempotency, err = idempotency.LoadConfig(); err != nil {
		return Config{}, err
	}
	if cfg.Auth, err = auth.LoadConfig(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// LogValue is the configuration as the start-up log shows it, passwords masked.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(append(c.Common.Attrs(), slog.Any("auth", c.Auth), slog.Any("idempotency", c.Idempotency))...)
}
