// Package config reads the notification service's configuration from the environment.
package config

import (
	"fmt"

	"github.com/order-system/order-system/pkg/env"
)

// Config is the notification service's configuration.
type Config struct {
	env.Common
	// Lang is the language of notification texts: ru (default) or en.
	Lang string
}

// Load reads the configuration; defaults suit a developer machine.
func Load() (Config, error) {
	common, err := env.LoadCommon("notification_service", "notifications", "8084")
	if err != nil {
		return Config{}, err
	}
	lang := env.String("NOTIFICATION_LANG", "ru")
	if lang != "ru" && lang != "en" {
		return Config{}, fmt.Errorf("NOTIFICATION_LANG: %q is neither ru nor en", lang)
	}
	return Config{Common: common, Lang: lang}, nil
}
