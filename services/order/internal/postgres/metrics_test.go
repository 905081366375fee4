package postgres_test

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/order-system/order-system/services/order/internal/postgres"
)

// pendingGauges scrapes reg once and returns the reconciler's backlog gauges by name.
func pendingGauges(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		switch f.GetName() {
		case "orders_pending", "orders_pending_oldest_age_seconds", "orders_pending_past_deadline":
			got[f.GetName()] = f.GetMetric()[0].GetGauge().GetValue()
		}
	}
	return got
}

// TestPendingMetrics: the pending orders, the oldest one's age and those past their pay
// deadline; finished orders, however old, count for none of them.
func TestPendingMetrics(t *testing.T) {
	t.Parallel()
	repo, db := newOrders(t)
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	reg.MustRegister(postgres.PendingMetrics(db))
	if diff := cmp.Diff(map[string]float64{"orders_pending": 0, "orders_pending_oldest_age_seconds": 0, "orders_pending_past_deadline": 0}, pendingGauges(t, reg)); diff != "" {
		t.Errorf("no orders (-want +got):\n%s", diff)
	}

	var ids [4]string
	for i := range ids {
		o, err := repo.Create(ctx, pending(), noKey)
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = o.ID.String()
		if i == 3 {
			if err := o.Complete(); err != nil {
				t.Fatal(err)
			}
			if _, err := repo.Finish(ctx, o, noKey); err != nil {
				t.Fatal(err)
			}
		}
	}
	// The first placed two hours ago and past its deadline; the finished one older still.
	db.MustExec(`UPDATE orders SET created_at = now() - interval '2 hours', pay_by = now() - interval '1 minute' WHERE id = $1`, ids[0])
	db.MustExec(`UPDATE orders SET created_at = now() - interval '1 hour' WHERE id = $1`, ids[1])
	db.MustExec(`UPDATE orders SET created_at = now() - interval '3 hours', pay_by = now() - interval '2 hours' WHERE id = $1`, ids[3])

	got := pendingGauges(t, reg)
	if got["orders_pending"] != 3 || got["orders_pending_past_deadline"] != 1 {
		t.Errorf("pending %v, past deadline %v; want 3 and 1", got["orders_pending"], got["orders_pending_past_deadline"])
	}
	if age := got["orders_pending_oldest_age_seconds"]; age < 7200 || age > 7230 {
		t.Errorf("oldest pending order's age = %vs, want the first order's 2 h", age)
	}
}
