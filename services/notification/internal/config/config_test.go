package config_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/order-system/order-system/pkg/env"
	"github.com/order-system/order-system/services/notification/internal/config"
)

// unsetAll clears the configuration the process may have inherited; an empty variable counts
// as unset.
func unsetAll(t *testing.T) {
	for _, v := range []string{"HTTP_ADDR", "DATABASE_URL", "AMQP_URL", "LOG_LEVEL", "SHUTDOWN_TIMEOUT", "PPROF", "NOTIFICATION_LANG"} {
		t.Setenv(v, "")
	}
}

func TestLoadDefaults(t *testing.T) {
	unsetAll(t)
	got, err := config.Load()
	if err != nil {
		t.Fatal(err)
	}
	want := config.Config{
		Common: env.Common{
			HTTPAddr:        ":8084",
			DatabaseURL:     "postgres://notification_service:notification_service@127.0.0.1:5432/order_system?sslmode=disable&search_path=notifications",
			AMQPURL:         "amqp://guest:guest@127.0.0.1:5672/",
			LogLevel:        "info",
			ShutdownTimeout: 15 * time.Second,
		},
		Lang: "ru",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
}

func TestLoadLanguage(t *testing.T) {
	tests := []struct {
		value, want string
		wantErr     bool
	}{
		{"ru", "ru", false},
		{"en", "en", false},
		{"de", "", true},
		{"EN", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			unsetAll(t)
			t.Setenv("NOTIFICATION_LANG", tt.value)
			got, err := config.Load()
			if (err != nil) != tt.wantErr || got.Lang != tt.want {
				t.Errorf("Load with NOTIFICATION_LANG=%s = %q, %v; want %q, error %v", tt.value, got.Lang, err, tt.want, tt.wantErr)
			}
		})
	}
}
