// Package config reads the notification service's configuration from the environment.
package config

import (
	"fmt"
	"log/slog"

	"github.com/order-system/order-system/pkg/auth"
	"github.com/order-system/order-system/pkg/env"
)

// localDatabase is the service's database on a developer machine: its role, in its schema
// of the order_system database that deploy/postgres/setup.sql creates.
const localDatabase = "postgres://notification_service:notification_service@127.0.0.1:5432/order_system?sslmode=disable&search_path=notifications"

// Config is the notification service's configuration.
type Config struct {
	env.Common
	// Auth is sign-in (AUTH, AUTH_ISSUER, ...): off unless AUTH=oidc.
	Auth auth.Config
	// Lang is the language of notification texts: ru (default) or en.
	Lang string
}

// Load reads the configuration; defaults suit a developer machine.
func Load() (Config, error) {
	common, err := env.LoadCommon(":8084", localDatabase)
	if err != nil {
		return Config{}, err
	}
	lang := env.String("NOTIFICATION_LANG", "ru")
	if lang != "ru" && lang != "en" {
		return Config{}, fmt.Errorf("NOTIFICATION_LANG: %q is neither ru nor en", lang)
	}
	cfg := Config{Common: common, Lang: lang}
	if cfg.Auth, err = auth.LoadConfig(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// LogValue is the configuration as the start-up log shows it, passwords masked.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(append(c.Common.Attrs(), slog.Any("auth", c.Auth), slog.String("lang", c.Lang))...)
}
