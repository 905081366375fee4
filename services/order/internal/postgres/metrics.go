package postgres

import (
	"context"

	"github.com/jmoiron/sqlx"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/order-system/order-system/pkg/metrics"
)

// pendingSQL reads the reconciler's backlog in one pass over the pending orders, which the
// partial index orders_pending holds: the orders of the last moments, unless billing has
// been away. An order is past its deadline from pay_by on, as the reconciler reckons it.
const pendingSQL = `SELECT count(*) AS n,
	COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0) AS oldest,
	count(*) FILTER (WHERE pay_by <= now()) AS past_deadline
	FROM orders WHERE status = 'pending'`

// PendingMetrics reports the reconciler's backlog at every scrape: the pending orders, the
// age of the oldest, and how many are past their pay deadline (order.PayWindow after they
// were placed). The reconciler voids an order once its deadline has passed; one still
// pending after it means the reconciler is not running or billing cannot be reached to void
// it.
func PendingMetrics(db *sqlx.DB) prometheus.Collector {
	return metrics.NewQuery("orders_pending", []metrics.Gauge{
		{Name: "orders_pending", Help: "Orders stored pending and not finished yet: the reconciler's backlog."},
		{Name: "orders_pending_oldest_age_seconds", Help: "Age of the oldest pending order; 0 when there is none."},
		{Name: "orders_pending_past_deadline", Help: "Pending orders past their pay deadline, which the reconciler has yet to void."},
	}, func(ctx context.Context) ([]float64, error) {
		var v struct {
			N            float64 `db:"n"`
			Oldest       float64 `db:"oldest"`
			PastDeadline float64 `db:"past_deadline"`
		}
		err := db.GetContext(ctx, &v, pendingSQL)
		return []float64{v.N, v.Oldest, v.PastDeadline}, err
	})
}
