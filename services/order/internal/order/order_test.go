package order_test

import (
	"testing"
	"time"

	"github.com/order-system/order-system/pkg/events"
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
	cfg := order.ReconcilerConfig{BaseBackoff: time.Second, MaxBackoff: 10 * time.Second}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second}
	for attempts, w := range want {
		if got := cfg.Backoff(attempts); got != w {
			t.Errorf("Backoff(%d) = %v, want %v", attempts, got, w)
		}
	}
	if got := cfg.Backoff(1000); got != 10*time.Second {
		t.Errorf("Backoff(1000) = %v, want the cap", got)
	}
}
