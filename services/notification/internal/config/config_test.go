package config_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/order-system/order-system/pkg/env"
	"github.com/order-system/order-system/services/notification/internal/config"
)

func TestLoadDefaults(t *testing.T) {
	env.Unset(t, "NOTIFICATION_LANG")
	got, err := config.Load()
	if err != nil {
		t.Fatal(err)
	}
	// The service gives its own port and database; the other common settings are env's.
	if got.HTTPAddr != ":8084" || got.DatabaseURL != "postgres://notification_service:notification_service@127.0.0.1:5432/order_system?sslmode=disable&search_path=notifications" {
		t.Errorf("address and database = %q, %q; want the notification service's own", got.HTTPAddr, got.DatabaseURL)
	}
	got.Common = env.Common{}
	want := config.Config{Lang: "ru"}
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
			env.Unset(t, "NOTIFICATION_LANG")
			t.Setenv("NOTIFICATION_LANG", tt.value)
			got, err := config.Load()
			if (err != nil) != tt.wantErr || got.Lang != tt.want {
				t.Errorf("Load with NOTIFICATION_LANG=%s = %q, %v; want %q, error %v", tt.value, got.Lang, err, tt.want, tt.wantErr)
			}
		})
	}
}
