package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/order-system/order-system/services/order/internal/config"
	"github.com/order-system/order-system/services/order/internal/order"
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
		if r.CallTimeout != cfg.BillingTimeout || r.Hold() < 2*cfg.BillingTimeout {
			t.Errorf("BILLING_TIMEOUT=%q (%v): call timeout %v, lease and grace %v; want the timeout and at least twice it",
				timeout, cfg.BillingTimeout, r.CallTimeout, r.Hold())
		}
	}
}

// TestPlaceEndsWithinItsLease: a keyed order takes its key as it starts, so bounding Place by
// the lease means no request outlives its key and a repeat meanwhile is told 409.
func TestPlaceEndsWithinItsLease(t *testing.T) {
	for _, lease := range []string{"", "1500ms", "10s", "1m"} {
		t.Setenv("IDEMPOTENCY_LEASE", lease)
		cfg, err := config.Load()
		if err != nil {
			t.Fatal(err)
		}
		if cfg.PlaceTimeout <= 0 || cfg.PlaceTimeout > cfg.Idempotency.Lease || cfg.PlaceTimeout > order.DefaultPlaceTimeout {
			t.Errorf("IDEMPOTENCY_LEASE=%q (%v): place timeout %v, want at most the lease and %v",
				lease, cfg.Idempotency.Lease, cfg.PlaceTimeout, order.DefaultPlaceTimeout)
		}
	}
}

// TestKeysOutliveThePayments: a key that expired while the reconciler may still pay its order
// would let a retry place and pay a second one, so such a configuration does not start.
func TestKeysOutliveThePayments(t *testing.T) {
	cfg, err := config.Load()
	if err != nil {
		t.Fatal(err)
	}
	if h := cfg.Reconciler.PayHorizon(); h < time.Hour || h > cfg.Idempotency.TTL {
		t.Fatalf("default pay horizon %v, TTL %v: want about an hour, within the TTL", h, cfg.Idempotency.TTL)
	}
	t.Setenv("IDEMPOTENCY_TTL", "30m")
	if _, err := config.Load(); err == nil || !strings.Contains(err.Error(), "IDEMPOTENCY_TTL") {
		t.Fatalf("IDEMPOTENCY_TTL=30m with an hour of payments: err %v, want a refusal naming IDEMPOTENCY_TTL", err)
	}
	t.Setenv("RECONCILE_MAX_ATTEMPTS", "3")
	if _, err := config.Load(); err != nil {
		t.Fatalf("IDEMPOTENCY_TTL=30m with 3 attempts: %v", err)
	}
}

// TestPayWindowEndsBeforeTheKey: an order may be paid only for a window that ends before its
// Idempotency-Key can expire, whatever the TTL; the reconciler's schedule no longer has to be
// bounded by the TTL for that, so settings whose schedule outlasts the key by the count of
// attempts (a slow interval) start, and the deadline holds them.
func TestPayWindowEndsBeforeTheKey(t *testing.T) {
	for _, tt := range []struct {
		ttl  string
		want time.Duration
	}{{"", 24*time.Hour - time.Minute}, {"15s", 13500 * time.Millisecond}, {"2h", 2*time.Hour - time.Minute}} {
		t.Run(tt.ttl, func(t *testing.T) {
			t.Setenv("IDEMPOTENCY_TTL", tt.ttl)
			t.Setenv("BILLING_TIMEOUT", "300ms")
			t.Setenv("RECONCILE_BACKOFF", "1ms")
			t.Setenv("RECONCILE_MAX_BACKOFF", "1ms")
			t.Setenv("RECONCILE_INTERVAL", "2s")
			cfg, err := config.Load()
			if err != nil {
				t.Fatal(err)
			}
			if cfg.PayWindow != tt.want || cfg.PayWindow >= cfg.Idempotency.TTL {
				t.Errorf("IDEMPOTENCY_TTL=%q: pay window %v, want %v, before the key's %v", tt.ttl, cfg.PayWindow, tt.want, cfg.Idempotency.TTL)
			}
		})
	}
}
