package config_test

import (
	"testing"

	"github.com/order-system/order-system/services/order/internal/config"
)

// TestReconcilerFollowsTheBillingTimeout: the reconciler's claims and the grace before a new
// order is first due outlast a billing call however long BILLING_TIMEOUT is.
func TestReconcilerFollowsTheBillingTimeout(t *testing.T) {
	for _, timeout := range []string{"", "500ms", "20s", "2m"} {
		t.Setenv("BILLING_TIMEOUT", timeout)
		cfg, err := config.Load()
		if err != nil {
			t.Fatal(err)
		}
		r := cfg.Reconciler
		if r.CallTimeout != cfg.BillingTimeout || r.Lease() < 2*cfg.BillingTimeout {
			t.Errorf("BILLING_TIMEOUT=%q (%v): call timeout %v, lease and grace %v; want the timeout and at least twice it",
				timeout, cfg.BillingTimeout, r.CallTimeout, r.Lease())
		}
	}
}
