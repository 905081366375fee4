package config_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/order-system/order-system/pkg/env"
	"github.com/order-system/order-system/pkg/idempotency"
	"github.com/order-system/order-system/services/user/internal/config"
)

// unsetAll clears the configuration the process may have inherited.
func unsetAll(t *testing.T) {
	env.Unset(t, "BILLING_URL", "BILLING_TIMEOUT", "IDEMPOTENCY_TTL", "IDEMPOTENCY_PURGE_INTERVAL", "IDEMPOTENCY_LEASE")
}

func TestLoadDefaults(t *testing.T) {
	unsetAll(t)
	got, err := config.Load()
	if err != nil {
		t.Fatal(err)
	}
	// The service gives its own port and database; the other common settings are env's.
	if got.HTTPAddr != ":8081" || got.DatabaseURL != "postgres://user_service:user_service@127.0.0.1:5432/order_system?sslmode=disable&search_path=users" {
		t.Errorf("address and database = %q, %q; want the user service's own", got.HTTPAddr, got.DatabaseURL)
	}
	got.Common = env.Common{}
	want := config.Config{
		BillingURL:     "http://127.0.0.1:8082",
		BillingTimeout: 3 * time.Second,
		Idempotency:    idempotency.Config{TTL: 24 * time.Hour, PurgeInterval: 10 * time.Minute, Lease: 10 * time.Second},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
}

func TestLoadFromEnvironment(t *testing.T) {
	unsetAll(t)
	t.Setenv("HTTP_ADDR", ":8080")
	t.Setenv("BILLING_URL", "http://order-system-billing:8080")
	t.Setenv("BILLING_TIMEOUT", "750ms")
	t.Setenv("SHUTDOWN_TIMEOUT", "30s")
	t.Setenv("IDEMPOTENCY_TTL", "1h")
	got, err := config.Load()
	if err != nil {
		t.Fatal(err)
	}
	if got.HTTPAddr != ":8080" || got.BillingURL != "http://order-system-billing:8080" || got.BillingTimeout != 750*time.Millisecond ||
		got.ShutdownTimeout != 30*time.Second || got.Idempotency.TTL != time.Hour {
		t.Errorf("Load = %+v, want the environment's values", got)
	}
}

func TestLoadRejectsBadDurations(t *testing.T) {
	for _, tt := range []struct{ variable, value string }{
		{"BILLING_TIMEOUT", "soon"},
		{"BILLING_TIMEOUT", "-1s"},
		{"SHUTDOWN_TIMEOUT", "15"},
		{"IDEMPOTENCY_TTL", "0s"},
	} {
		t.Run(tt.variable+"="+tt.value, func(t *testing.T) {
			unsetAll(t)
			t.Setenv(tt.variable, tt.value)
			if _, err := config.Load(); err == nil {
				t.Errorf("Load with %s=%q succeeded, want an error", tt.variable, tt.value)
			}
		})
	}
}
