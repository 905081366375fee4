// Package config reads the user service's configuration from the environment.
package config

import (
	"log/slog"
	"time"

	"github.com/order-system/order-system/pkg/auth"
	"github.com/order-system/order-system/pkg/env"
	"github.com/order-system/order-system/pkg/idempotency"
)

// localDatabase is the service's database on a developer machine: its role, in its schema
// of the order_system database that deploy/postgres/setup.sql creates.
const localDatabase = "postgres://user_service:user_service@127.0.0.1:5432/order_system?sslmode=disable&search_path=users"

// Config is the user service's configuration.
type Config struct {
	env.Common
	// Auth is sign-in (AUTH, AUTH_ISSUER, ...): off unless AUTH=oidc.
	Auth           auth.Config
	BillingURL     string
	BillingTimeout time.Duration
	Idempotency    idempotency.Config
}

// Load reads the configuration; defaults suit a developer machine.
func Load() (Config, error) {
	common, err := env.LoadCommon(":8081", localDatabase)
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
		slog.Any("idempotency", c.Idempotency))...)
}
