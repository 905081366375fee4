package postgres_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/order-system/order-system/api/events"
	"github.com/order-system/order-system/pkg/apperr"
	"github.com/order-system/order-system/pkg/dbtest"
	"github.com/order-system/order-system/pkg/idempotency"
	"github.com/order-system/order-system/services/order/internal/order"
	"github.com/order-system/order-system/services/order/internal/postgres"
	"github.com/order-system/order-system/services/order/migrations"
)

func newOrders(t *testing.T) (*postgres.Orders, *sqlx.DB) {
	t.Helper()
	return newOrdersWaking(t, func() {})
}

func newOrdersWaking(t *testing.T, published func()) (*postgres.Orders, *sqlx.DB) {
	t.Helper()
	db := dbtest.New(t, migrations.FS)
	return postgres.NewOrders(db, published, 10*time.Second), db
}

// noKey is the Idempotency-Key of a request without the header.
var noKey idempotency.Key[order.Order]

func pending() order.Order {
	return order.Order{ID: uuid.New(), UserID: uuid.New(), Email: "a@b.cd", Price: 500_00, Status: order.StatusPending}
}

func TestCreateReturnsTheStoredOrderOfARetry(t *testing.T) {
	t.Parallel()
	repo, _ := newOrders(t)
	ctx := context.Background()
	o := pending()
	first, err := repo.Create(ctx, o, noKey)
	if err != nil || first.ID != o.ID || first.Status != order.StatusPending || first.CreatedAt.IsZero() {
		t.Fatalf("Create = %+v, %v", first, err)
	}
	// The retry carries another price: the stored order wins, it is not overwritten.
	retry := o
	retry.Price = 1
	again, err := repo.Create(ctx, retry, noKey)
	if err != nil || again.Price != o.Price || !again.CreatedAt.Equal(first.CreatedAt) {
		t.Fatalf("Create of the same id = %+v, %v; want the first order back", again, err)
	}
	if _, err := repo.Get(ctx, uuid.New()); !apperr.Is(err, apperr.NotFound) {
		t.Fatalf("Get of an unknown id: err = %v, want not_found", err)
	}
}

func TestFinishOnceAmongRacers(t *testing.T) {
	t.Parallel()
	var wakes atomic.Int64
	repo, db := newOrdersWaking(t, func() { wakes.Add(1) })
	ctx := context.Background()
	o, err := repo.Create(ctx, pending(), noKey)
	if err != nil {
		t.Fatal(err)
	}
	// Half the racers complete the order, half fail it: exactly one wins and every racer
	// gets the winner's order back.
	results := make(chan order.Order, 20)
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			f := o
			if i%2 == 0 {
				f.Complete()
			} else {
				f.Fail(events.ReasonBalanceTooLow, "Insufficient funds")
			}
			got, err := repo.Finish(ctx, f, noKey)
			if err != nil {
				t.Error(err)
				return
			}
			results <- got
		})
	}
	wg.Wait()
	close(results)
	stored, err := repo.Get(ctx, o.ID)
	if err != nil || stored.Status == order.StatusPending {
		t.Fatalf("stored order = %+v, %v; want it finished", stored, err)
	}
	for got := range results {
		if got.Status != stored.Status {
			t.Errorf("a racer got %s, the stored order is %s", got.Status, stored.Status)
		}
	}
	var events int
	if err := db.Get(&events, `SELECT count(*) FROM outbox`); err != nil || events != 1 {
		t.Fatalf("outbox events = %d (err %v), want exactly 1", events, err)
	}
	if n := wakes.Load(); n != 1 {
		t.Fatalf("the relay was woken %d times, want once, by the finisher that wrote the event", n)
	}
}

// TestHoldDueSplitsWorkBetweenReplicas: reconcilers of several replicas claiming at the
// same time never get the same order, and a claimed order is not due again before its backoff.
func TestHoldDueSplitsWorkBetweenReplicas(t *testing.T) {
	t.Parallel()
	repo, db := newOrders(t)
	ctx := context.Background()
	for range 60 {
		if _, err := repo.Create(ctx, pending(), noKey); err != nil {
			t.Fatal(err)
		}
	}
	// Newly placed orders are left to their own request for a grace period; make them due.
	db.MustExec(`UPDATE orders SET next_attempt_at = now() - interval '1 second'`)
	backoff := func(int) time.Duration { return time.Hour }

	claimed := make(chan order.Order, 200)
	var wg sync.WaitGroup
	for range 6 {
		wg.Go(func() {
			for {
				got, _, err := repo.HoldDue(ctx, 7, backoff)
				if err != nil {
					t.Error(err)
					return
				}
				if len(got) == 0 {
					return
				}
				for _, o := range got {
					claimed <- o
				}
			}
		})
	}
	wg.Wait()
	close(claimed)
	seen := map[uuid.UUID]bool{}
	for o := range claimed {
		if seen[o.ID] {
			t.Fatalf("order %s claimed twice", o.ID)
		}
		seen[o.ID] = true
		if o.Attempts != 1 {
			t.Errorf("order %s claimed with attempts %d, want 1", o.ID, o.Attempts)
		}
	}
	if len(seen) != 60 {
		t.Fatalf("%d orders claimed, want all 60", len(seen))
	}
	if again, _, err := repo.HoldDue(ctx, 100, backoff); err != nil || len(again) != 0 {
		t.Fatalf("HoldDue right after = %d orders, %v; want none before the backoff", len(again), err)
	}
}

func TestFreshOrderIsLeftToItsRequest(t *testing.T) {
	t.Parallel()
	repo, _ := newOrders(t)
	ctx := context.Background()
	if _, err := repo.Create(ctx, pending(), noKey); err != nil {
		t.Fatal(err)
	}
	got, _, err := repo.HoldDue(ctx, 10, func(int) time.Duration { return time.Second })
	if err != nil || len(got) != 0 {
		t.Fatalf("HoldDue of a just placed order = %d, %v; want none while its request pays it", len(got), err)
	}
}

// TestNewOrderIsDueAfterTheGraceGiven: the grace is the repository's setting (the reconciler
// lease, from BILLING_TIMEOUT), not a fixed time.
func TestNewOrderIsDueAfterTheGraceGiven(t *testing.T) {
	t.Parallel()
	_, db := newOrders(t)
	for _, grace := range []time.Duration{time.Second, 40 * time.Second, 4 * time.Minute} {
		o, err := postgres.NewOrders(db, func() {}, grace).Create(context.Background(), pending(), noKey)
		if err != nil {
			t.Fatal(err)
		}
		var waits time.Duration
		db.Get(&waits, `SELECT (extract(epoch FROM next_attempt_at - created_at) * 1e9)::bigint FROM orders WHERE id = $1`, o.ID)
		if waits != grace {
			t.Errorf("order created with grace %v is first due after %v", grace, waits)
		}
	}
}

// TestAnAttemptIsACallNotAHold: holding an order without counting an attempt;
// StartAttempt counts one only for the call actually made, and only under the latest hold.
// An order whose hold ran out before its call (another reconciler claimed it since) spends
// no attempt, so a slow batch does not bring orders closer to being voided.
func TestAnAttemptIsACallNotAHold(t *testing.T) {
	t.Parallel()
	repo, db := newOrders(t)
	ctx := context.Background()
	for range 3 {
		if _, err := repo.Create(ctx, pending(), noKey); err != nil {
			t.Fatal(err)
		}
	}
	due := func() { db.MustExec(`UPDATE orders SET next_attempt_at = now() - interval '1 second'`) }
	due()
	backoff := func(int) time.Duration { return time.Minute }
	first, _, err := repo.HoldDue(ctx, 10, backoff)
	if err != nil || len(first) != 3 {
		t.Fatalf("HoldDue = %d orders, %v; want 3", len(first), err)
	}
	if ok, err := repo.StartAttempt(ctx, first[0], time.Second); err != nil || !ok {
		t.Fatalf("StartAttempt under the hold = %v, %v; want true", ok, err)
	}
	due() // the other two holds run out before their calls, and another reconciler claims them
	second, _, err := repo.HoldDue(ctx, 10, backoff)
	if err != nil || len(second) != 3 {
		t.Fatalf("second HoldDue = %d orders, %v; want 3", len(second), err)
	}
	for _, o := range first[1:] {
		if ok, err := repo.StartAttempt(ctx, o, time.Second); err != nil || ok {
			t.Errorf("StartAttempt of order %s under a replaced hold = %v, %v; want false", o.ID, ok, err)
		}
	}
	var attempts []int
	if err := db.Select(&attempts, `SELECT attempts FROM orders ORDER BY attempts`); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]int{0, 0, 1}, attempts); diff != "" {
		t.Errorf("attempts after one call (-want +got):\n%s", diff)
	}
	for _, o := range second {
		if o.ID == first[0].ID && o.Attempts != 2 || o.ID != first[0].ID && o.Attempts != 1 {
			t.Errorf("order %s claimed for call %d", o.ID, o.Attempts)
		}
	}
	if ok, err := repo.StartAttempt(ctx, second[0], time.Hour); err != nil || ok {
		t.Errorf("StartAttempt with a hold shorter than the margin = %v, %v; want false", ok, err)
	}
}

// TestPayDeadlineIsTheWindowAfterCreation: an order may be paid for the repository's pay
// window from its creation, on the database clock.
func TestPayDeadlineIsTheWindowAfterCreation(t *testing.T) {
	t.Parallel()
	_, db := newOrders(t)
	for _, window := range []time.Duration{13500 * time.Millisecond, order.PayWindow(24 * time.Hour)} {
		o, err := postgres.NewOrders(db, func() {}, time.Second).WithPayWindow(window).Create(context.Background(), pending(), noKey)
		if err != nil {
			t.Fatal(err)
		}
		if got := o.PayBy.Sub(o.CreatedAt); got != window {
			t.Errorf("order created with pay window %v may be paid for %v", window, got)
		}
	}
}

// The release before pay_by inserts orders without it; during a rollout to this one, and
// after a rollback to it, those inserts must go on: the column's default gives them the hour
// its backfill gave the orders before it.
func TestAnOrderOfTheReleaseBeforePayByGetsAnHour(t *testing.T) {
	t.Parallel()
	_, db := newOrders(t)
	var seconds float64
	err := db.QueryRow(`INSERT INTO orders (id, user_id, email, price, status)
		VALUES (gen_random_uuid(), gen_random_uuid(), 'a@example.com', 100, 'pending')
		RETURNING extract(epoch FROM pay_by - created_at)`).Scan(&seconds)
	if err != nil {
		t.Fatalf("an insert without pay_by: %v", err)
	}
	if payIn := time.Duration(seconds * float64(time.Second)); payIn < 59*time.Minute || payIn > 61*time.Minute {
		t.Errorf("pay_by is %v after created_at, want an hour", payIn)
	}
}
