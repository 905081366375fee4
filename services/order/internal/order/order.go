// Package order is the order domain: an order is placed pending, paid through billing with
// its own id as the payment id, and finished completed or failed exactly once. Because the
// payment id never changes, any number of retries debits the user at most once.
package order

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/order-system/order-system/api/events"
	"github.com/order-system/order-system/api/payments"
	"github.com/order-system/order-system/pkg/apperr"
	"github.com/order-system/order-system/pkg/idempotency"
	"github.com/order-system/order-system/pkg/money"
)

// Status is where an order is in its life.
type Status string

// Order statuses. pending is the only one that changes.
const (
	StatusPending   Status = "pending"
	StatusCompleted Status = "completed"
	StatusFailed    Status = "failed"
)

// Order is a purchase by a user for a price.
type Order struct {
	ID             uuid.UUID
	UserID         uuid.UUID
	Email          string
	Price          money.Amount
	Status         Status
	FailureReason  string
	FailureMessage string
	// Attempts counts the reconciler's calls to billing for a pending order, and
	// NextAttemptAt is when it is due again (until then the reconciler that holds it
	// has it to itself).
	Attempts      int
	NextAttemptAt time.Time
	// PayBy is the order's pay deadline on the database clock: billing debits it only
	// before then, and after it the reconciler voids it. It comes before the order's
	// Idempotency-Key can expire, so a retry that reuses the key after that never finds the
	// first order still payable.
	PayBy     time.Time
	CreatedAt time.Time
}

// Complete finishes a pending order as paid.
func (o *Order) Complete() error {
	if o.Status != StatusPending {
		return fmt.Errorf("complete order %s: status is %s", o.ID, o.Status)
	}
	o.Status = StatusCompleted
	return nil
}

// Fail finishes a pending order as failed, keeping why.
func (o *Order) Fail(reason, message string) error {
	if o.Status != StatusPending {
		return fmt.Errorf("fail order %s: status is %s", o.ID, o.Status)
	}
	o.Status, o.FailureReason, o.FailureMessage = StatusFailed, reason, message
	return nil
}

// FinishedEvent is the event announcing a finished order to the notification service.
func (o Order) FinishedEvent(now time.Time) (events.Envelope, error) {
	typ := events.OrderCompleted
	if o.Status == StatusFailed {
		typ = events.OrderFailed
	}
	return events.New("order-system/order", typ, events.OrderFinishedData{
		OrderID: o.ID.String(), UserID: o.UserID.String(), Email: o.Email,
		Price: o.Price, Status: string(o.Status), Reason: o.FailureReason,
	}, now)
}

// Payment is billing's answer to a payment request.
type Payment struct {
	Outcome payments.Outcome
	Balance money.Amount // the balance after the payment
}

// BillingClient pays orders. Both calls are idempotent per payment id and return the first
// outcome stored for it.
type BillingClient interface {
	// Pay debits amount from the user's account once per paymentID. Errors: not_found when
	// the user has no account; unavailable when billing cannot be reached or gives an answer
	// other than an outcome (the outcome is then unknown and the call must be repeated).
	// The payment id is the order's id; billing refuses to debit it after o.PayBy (the
	// outcome is then voided).
	Pay(ctx context.Context, o Order) (Payment, error)
	// Void makes sure the order's payment is never debited, unless it already was: the
	// outcome is then voided, or the earlier one. Errors as for Pay.
	Void(ctx context.Context, o Order) (Payment, error)
}

// Repository stores orders. With a present Idempotency-Key (pkg/idempotency), Create takes
// the key together with the pending order, which then has the key's derived id, and Finish
// stores the request's answer together with the finished order.
type Repository interface {
	// Create stores a pending order unless an order with its id exists; it returns the
	// stored order either way. With a key it returns the key's *idempotency.Refusal,
	// storing nothing, when the key cannot be taken.
	Create(ctx context.Context, o Order, key idempotency.Key[Order]) (Order, error)
	// Get returns an order; not_found if there is none.
	Get(ctx context.Context, id uuid.UUID) (Order, error)
	// Finish stores o, finished by Complete or Fail, with its finished event, atomically,
	// provided the stored order is still pending. Otherwise (someone else finished it first)
	// it returns the stored order unchanged.
	Finish(ctx context.Context, o Order, key idempotency.Key[Order]) (Order, error)
	// HoldDue holds up to limit pending orders whose next attempt is due, pushing it
	// back by backoff(attempts) where attempts counts the call about to be made (Attempts of
	// the orders returned): until then the hold is the caller's. It also returns the
	// database's clock at the hold, which the orders' PayBy is compared with.
	HoldDue(ctx context.Context, limit int, backoff func(attempts int) time.Duration) (orders []Order, now time.Time, err error)
	// StartAttempt counts the billing call about to be made for o, as HoldDue returned
	// it, provided o is still pending and still under that hold (no later hold replaced
	// it) for at least margin; it reports whether it did. An attempt is thus a call, not a
	// hold: an order skipped because its hold ran out spends none.
	StartAttempt(ctx context.Context, o Order, margin time.Duration) (bool, error)
}

// CodeInsufficientFunds is the error code of an order that failed for lack of money.
const CodeInsufficientFunds apperr.Code = "insufficient_funds"

// insufficientFunds is the error of an order that failed for lack of money, a 400 whose
// body also holds the failed order (the handler adds it).
func insufficientFunds(message string) *apperr.Error {
	return apperr.NewOf(apperr.Invalid, CodeInsufficientFunds, "%s", message)
}

// CodePaymentUnavailable is the error code of an order that failed because billing stayed
// unreachable for its payment; nothing was charged.
const CodePaymentUnavailable apperr.Code = "payment_unavailable"

// paymentUnavailable is the error of an order that failed because billing stayed
// unreachable: a 424 whose body also holds the failed order. It is final like
// insufficient_funds, so a keyed retry gets it replayed instead of a 503 forever.
func paymentUnavailable(message string) *apperr.Error {
	return apperr.NewOf(apperr.FailedDependency, CodePaymentUnavailable, "%s", message)
}
