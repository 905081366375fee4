package order_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/order-system/order-system/api/events"
	"github.com/order-system/order-system/api/payments"
	"github.com/order-system/order-system/pkg/apperr"
	"github.com/order-system/order-system/pkg/idempotency"
	"github.com/order-system/order-system/services/order/internal/order"
)

// fakeBilling answers every call with answer and records which calls were made.
type fakeBilling struct {
	mu     sync.Mutex
	answer func(call string) (order.Payment, error)
	calls  []string
}

var _ order.BillingClient = (*fakeBilling)(nil)

func (b *fakeBilling) Pay(_ context.Context, _ order.Order) (order.Payment, error) {
	return b.call("pay")
}

func (b *fakeBilling) Void(_ context.Context, _ order.Order) (order.Payment, error) {
	return b.call("void")
}

func (b *fakeBilling) call(name string) (order.Payment, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls = append(b.calls, name)
	return b.answer(name)
}

// made returns the calls made so far.
func (b *fakeBilling) made() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.calls)
}

// fakeOrders keeps orders in memory, finishing each at most once as the real repository does.
// It embeds the interface so that a method it does not need fails loudly if called.
type fakeOrders struct {
	order.Repository
	mu        sync.Mutex
	orders    map[uuid.UUID]order.Order
	held      []order.Order // what HoldDue hands out
	finishErr error         // what Finish fails with, if not nil
	now       time.Time     // the database clock HoldDue reports; time.Now() if zero
}

func newFakeOrders(stored ...order.Order) *fakeOrders {
	r := &fakeOrders{orders: map[uuid.UUID]order.Order{}}
	for _, o := range stored {
		r.orders[o.ID] = o
	}
	return r
}

func (r *fakeOrders) Create(_ context.Context, o order.Order, _ idempotency.Key[order.Order]) (order.Order, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if stored, ok := r.orders[o.ID]; ok {
		return stored, nil
	}
	r.orders[o.ID] = o
	return o, nil
}

func (r *fakeOrders) Get(_ context.Context, id uuid.UUID) (order.Order, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	o, ok := r.orders[id]
	if !ok {
		return order.Order{}, apperr.New(apperr.NotFound, "order %s not found", id)
	}
	return o, nil
}

func (r *fakeOrders) Finish(_ context.Context, o order.Order, _ idempotency.Key[order.Order]) (order.Order, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.finishErr != nil {
		return order.Order{}, r.finishErr
	}
	if stored := r.orders[o.ID]; stored.Status != order.StatusPending {
		return stored, nil
	}
	r.orders[o.ID] = o
	return o, nil
}

func (r *fakeOrders) HoldDue(_ context.Context, _ int, _ func(int) time.Duration) ([]order.Order, time.Time, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	held := r.held
	r.held = nil
	now := r.now
	if now.IsZero() {
		now = time.Now()
	}
	return held, now, nil
}

// StartAttempt holds while the stored order is pending under the hold of the held copy,
// and counts the attempt.
func (r *fakeOrders) StartAttempt(_ context.Context, o order.Order, _ time.Duration) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	stored, ok := r.orders[o.ID]
	if !ok || stored.Status != order.StatusPending || !stored.NextAttemptAt.Equal(o.NextAttemptAt) {
		return false, nil
	}
	stored.Attempts = o.Attempts
	r.orders[o.ID] = stored
	return true, nil
}

// noKey is the Idempotency-Key of a request without the header.
var noKey idempotency.Key[order.Order]

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

func newOrder() order.Order {
	return order.Order{ID: uuid.New(), UserID: uuid.New(), Email: "buyer@example.com", Price: 1000_00, PayBy: time.Now().Add(time.Hour)}
}

func TestPlaceFinishesTheOrderAsBillingAnswers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		answer     order.Payment
		err        error
		wantStatus order.Status
		wantReason string
		wantCode   apperr.Code // of Result.Err; empty for none
		wantErr    bool        // Place itself fails
	}{
		{"paid", order.Payment{Outcome: payments.Completed, Balance: 0}, nil, order.StatusCompleted, "", "", false},
		{"refused", order.Payment{Outcome: payments.InsufficientFunds, Balance: 500_00}, nil, order.StatusFailed, events.ReasonBalanceTooLow, order.CodeInsufficientFunds, false},
		{"no account", order.Payment{}, apperr.New(apperr.NotFound, "no billing account"), order.StatusFailed, events.ReasonAccountNotFound, apperr.NotFound, false},
		{"billing unreachable", order.Payment{}, apperr.New(apperr.Unavailable, "billing unreachable"), order.StatusPending, "", apperr.Unavailable, false},
		{"unknown outcome", order.Payment{Outcome: "lost"}, nil, order.StatusPending, "", "", true},
		{"uncoded failure", order.Payment{}, errors.New("boom"), order.StatusPending, "", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			repo := newFakeOrders()
			billing := &fakeBilling{answer: func(string) (order.Payment, error) { return tt.answer, tt.err }}
			svc := order.NewService(repo, billing, discard)
			o := newOrder()

			res, err := svc.Place(context.Background(), o, noKey)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Place error = %v, want an error: %v", err, tt.wantErr)
			}
			if diff := cmp.Diff([]string{"pay"}, billing.made()); diff != "" {
				t.Errorf("billing calls (-want +got):\n%s", diff)
			}
			stored, _ := repo.Get(context.Background(), o.ID)
			if stored.Status != tt.wantStatus || stored.FailureReason != tt.wantReason {
				t.Errorf("stored order is %s (%q), want %s (%q)", stored.Status, stored.FailureReason, tt.wantStatus, tt.wantReason)
			}
			if tt.wantErr {
				return
			}
			var gotCode apperr.Code
			if res.Err != nil {
				gotCode = res.Err.Code
			}
			if gotCode != tt.wantCode || res.Order.Status != tt.wantStatus {
				t.Errorf("result: order %s, error code %q; want %s, %q", res.Order.Status, gotCode, tt.wantStatus, tt.wantCode)
			}
		})
	}
}

func TestPlaceAnswersPendingWithTheOrderWhenItsEndCannotBeStored(t *testing.T) {
	t.Parallel()
	repo := newFakeOrders()
	repo.finishErr = apperr.New(apperr.Unavailable, "database unavailable: context deadline exceeded")
	billing := &fakeBilling{answer: func(string) (order.Payment, error) {
		return order.Payment{Outcome: payments.Completed}, nil
	}}
	o := newOrder()
	res, err := order.NewService(repo, billing, discard).Place(context.Background(), o, noKey)
	if err != nil {
		t.Fatalf("Place failed without the order: %v", err)
	}
	if res.Err == nil || res.Err.Code != apperr.Unavailable || res.Order.ID != o.ID || res.Order.Status != order.StatusPending {
		t.Errorf("result: order %s %s, error %+v; want order %s pending, unavailable", res.Order.ID, res.Order.Status, res.Err, o.ID)
	}
	if stored, _ := repo.Get(context.Background(), o.ID); stored.Status != order.StatusPending {
		t.Errorf("stored order is %s, want pending for the reconciler", stored.Status)
	}
}

func TestPlaceRefusedSaysBalanceAndPrice(t *testing.T) {
	t.Parallel()
	billing := &fakeBilling{answer: func(string) (order.Payment, error) {
		return order.Payment{Outcome: payments.InsufficientFunds, Balance: 500_00}, nil
	}}
	res, err := order.NewService(newFakeOrders(), billing, discard).Place(context.Background(), newOrder(), noKey)
	if err != nil {
		t.Fatal(err)
	}
	if res.Err == nil || res.Err.Message != "Insufficient funds: balance 500, price 1000" || res.Err.Kind != apperr.Invalid {
		t.Errorf("refusal = %+v, want an invalid_request-class insufficient_funds naming balance and price", res.Err)
	}
}

func TestPlaceAgainReturnsTheFinishedOrderWithoutCallingBilling(t *testing.T) {
	t.Parallel()
	done := newOrder()
	done.Status = order.StatusCompleted
	billing := &fakeBilling{answer: func(string) (order.Payment, error) { return order.Payment{}, errors.New("must not be called") }}
	res, err := order.NewService(newFakeOrders(done), billing, discard).Place(context.Background(), done, noKey)
	if err != nil || res.Err != nil || res.Order.Status != order.StatusCompleted {
		t.Fatalf("Place of a completed order = %+v, %v; want it completed, no error", res, err)
	}
	if len(billing.made()) != 0 {
		t.Errorf("billing was called: %v", billing.made())
	}
}

// The reconciler pays a pending order again until it has tried MaxAttempts times, then
// voids the payment; a void that finds nothing charged fails the order.
func TestReconcilePaysThenVoids(t *testing.T) {
	t.Parallel()
	cfg := order.DefaultReconcilerConfig()
	tests := []struct {
		name       string
		attempts   int
		answer     order.Payment
		wantCall   string
		wantStatus order.Status
		wantReason string
	}{
		{"within the attempts", cfg.MaxAttempts, order.Payment{Outcome: payments.Completed}, "pay", order.StatusCompleted, ""},
		{"past the attempts, nothing charged", cfg.MaxAttempts + 1, order.Payment{Outcome: payments.Voided}, "void", order.StatusFailed, events.ReasonBillingUnreachable},
		{"past the attempts, already paid", cfg.MaxAttempts + 1, order.Payment{Outcome: payments.Completed}, "void", order.StatusCompleted, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o := newOrder()
			o.Status, o.Attempts = order.StatusPending, tt.attempts
			repo := newFakeOrders(o)
			repo.held = []order.Order{o}
			billing := &fakeBilling{answer: func(string) (order.Payment, error) { return tt.answer, nil }}
			n, err := order.NewService(repo, billing, discard).Reconcile(context.Background(), cfg)
			if err != nil || n != 1 {
				t.Fatalf("Reconcile = %d, %v; want 1 order", n, err)
			}
			if diff := cmp.Diff([]string{tt.wantCall}, billing.made()); diff != "" {
				t.Errorf("billing calls (-want +got):\n%s", diff)
			}
			stored, _ := repo.Get(context.Background(), o.ID)
			if stored.Status != tt.wantStatus || stored.FailureReason != tt.wantReason {
				t.Errorf("stored order is %s (%q), want %s (%q)", stored.Status, stored.FailureReason, tt.wantStatus, tt.wantReason)
			}
		})
	}
}

// TestReconcileVoidsPastThePayDeadline: the order's age on the database clock, not the
// number of attempts, decides whether it may still be paid; an order past its deadline is
// voided at its first attempt.
func TestReconcileVoidsPastThePayDeadline(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name     string
		payBy    time.Time
		wantCall string
	}{
		{"before the deadline", now.Add(time.Microsecond), "pay"},
		{"at the deadline", now, "void"},
		{"a day past it", now.Add(-24 * time.Hour), "void"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o := newOrder()
			o.Status, o.Attempts, o.PayBy = order.StatusPending, 1, tt.payBy
			repo := newFakeOrders(o)
			repo.held, repo.now = []order.Order{o}, now
			billing := &fakeBilling{answer: func(call string) (order.Payment, error) {
				if call == "void" {
					return order.Payment{Outcome: payments.Voided}, nil
				}
				return order.Payment{Outcome: payments.Completed}, nil
			}}
			if _, err := order.NewService(repo, billing, discard).Reconcile(context.Background(), order.DefaultReconcilerConfig()); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]string{tt.wantCall}, billing.made()); diff != "" {
				t.Errorf("billing calls (-want +got):\n%s", diff)
			}
		})
	}
}

// TestReconcileLeavesAnOrderNoLongerHeld: an order finished or held again by another
// replica after this reconciler held it gets no billing call from this one.
func TestReconcileLeavesAnOrderNoLongerHeld(t *testing.T) {
	t.Parallel()
	claimed := newOrder()
	claimed.Status, claimed.Attempts = order.StatusPending, 1
	failed := claimed
	failed.Status, failed.FailureReason = order.StatusFailed, events.ReasonAccountNotFound
	reclaimed := newOrder()
	reclaimed.Status, reclaimed.Attempts = order.StatusPending, 1
	reclaimedLater := reclaimed
	reclaimedLater.Attempts, reclaimedLater.NextAttemptAt = 2, time.Now().Add(time.Minute) // another replica's hold
	repo := newFakeOrders(failed, reclaimedLater)
	repo.held = []order.Order{claimed, reclaimed}
	billing := &fakeBilling{answer: func(string) (order.Payment, error) { return order.Payment{Outcome: payments.Completed}, nil }}
	if _, err := order.NewService(repo, billing, discard).Reconcile(context.Background(), order.DefaultReconcilerConfig()); err != nil {
		t.Fatal(err)
	}
	if len(billing.made()) != 0 {
		t.Errorf("billing calls %v, want none", billing.made())
	}
	if stored, _ := repo.Get(context.Background(), claimed.ID); stored.Status != order.StatusFailed {
		t.Errorf("the failed order is now %s", stored.Status)
	}
}

// stalledFinish is a repository whose final commit never answers, like a database that
// stopped answering in the middle of a request: Finish returns only when its context ends.
type stalledFinish struct{ *fakeOrders }

func (r stalledFinish) Finish(ctx context.Context, _ order.Order, _ idempotency.Key[order.Order]) (order.Order, error) {
	<-ctx.Done()
	return order.Order{}, ctx.Err()
}

func TestPlaceIsBounded(t *testing.T) {
	t.Parallel()
	billing := &fakeBilling{answer: func(string) (order.Payment, error) { return order.Payment{Outcome: payments.Completed}, nil }}
	const bound = 300 * time.Millisecond
	svc := order.NewService(stalledFinish{newFakeOrders()}, billing, discard).WithPlaceTimeout(bound)
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := svc.Place(context.Background(), newOrder(), noKey)
		done <- err
	}()
	select {
	case err := <-done:
		took := time.Since(start)
		t.Logf("Place with a stalled final commit: %v after %v", err, took.Round(time.Millisecond))
		if err == nil {
			t.Error("Place succeeded although the final commit never answered")
		}
		if took > bound+time.Second {
			t.Errorf("Place took %v, want about its bound %v", took, bound)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Place still waiting after 10 s on a final commit that never answers")
	}
}
