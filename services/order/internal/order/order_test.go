package order_test

import (
	"testing"
	"time"

	"github.com/order-system/order-system/api/events"
	"github.com/order-system/order-system/services/order/internal/order"
)

func TestOrderFinishesOnce(t *testing.T) {
	t.Parallel()
	o := order.Order{Status: order.StatusPending}
	if err := o.Complete(); err != nil || o.Status != order.StatusCompleted {
		t.Fatalf("Complete on pending: %v, status %s", err, o.Status)
	}
	if err := o.Complete(); err == nil {
		t.Fatal("Complete on a completed order succeeded")
	}
	if err := o.Fail(events.ReasonBalanceTooLow, "x"); err == nil || o.Status != order.StatusCompleted {
		t.Fatalf("Fail on a completed order: %v, status %s", err, o.Status)
	}
	f := order.Order{Status: order.StatusPending}
	if err := f.Fail(events.ReasonBalanceTooLow, "Insufficient funds"); err != nil || f.FailureReason != events.ReasonBalanceTooLow {
		t.Fatalf("Fail on pending: %v, %+v", err, f)
	}
}

func TestFinishedEventType(t *testing.T) {
	t.Parallel()
	for status, want := range map[order.Status]string{order.StatusCompleted: events.OrderCompleted, order.StatusFailed: events.OrderFailed} {
		e, err := order.Order{Status: status, Price: 500_00}.FinishedEvent(time.Now())
		if err != nil || e.Type != want || e.SpecVersion != "1.0" || e.ID == "" {
			t.Errorf("FinishedEvent for %s = %+v, %v; want type %s", status, e, err, want)
		}
	}
}

func TestBackoffDoublesUpToTheCap(t *testing.T) {
	t.Parallel()
	const day = 24 * time.Hour
	tests := []struct {
		base, limit time.Duration
		attempts    int
		want        time.Duration
	}{
		{time.Second, 10 * time.Second, 0, time.Second},
		{time.Second, 10 * time.Second, 1, 2 * time.Second},
		{time.Second, 10 * time.Second, 2, 4 * time.Second},
		{time.Second, 10 * time.Second, 3, 8 * time.Second},
		{time.Second, 10 * time.Second, 4, 10 * time.Second},
		{time.Second, 10 * time.Second, 1000, 10 * time.Second},
		{time.Minute, 5 * time.Minute, 3, 5 * time.Minute},
		// A long base and cap: doubling the base 20 times would overflow a Duration.
		{day, 1000 * day, 20, 1000 * day},
		{day, 1000 * day, 9, 512 * day},
		{day, 1000 * day, 1 << 30, 1000 * day},
		{time.Duration(1 << 62), time.Duration(1<<63 - 1), 5, time.Duration(1<<63 - 1)},
		{0, time.Second, 1 << 40, 0},
	}
	for _, tt := range tests {
		cfg := order.ReconcilerConfig{BaseBackoff: tt.base, MaxBackoff: tt.limit}
		if got := cfg.Backoff(tt.attempts); got != tt.want {
			t.Errorf("Backoff(%d) with base %v, cap %v = %v, want %v", tt.attempts, tt.base, tt.limit, got, tt.want)
		}
	}
}
