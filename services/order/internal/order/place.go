package order

import (
	"context"
	"fmt"
	"time"

	"github.com/order-system/order-system/api/events"
	"github.com/order-system/order-system/api/payments"
	"github.com/order-system/order-system/pkg/apperr"
	"github.com/order-system/order-system/pkg/idempotency"
)

// Result is a finished or pending order and, when it did not complete, the coded error the
// client sees (insufficient_funds, not_found, payment_unavailable, or unavailable while it
// is pending).
type Result struct {
	Order Order
	Err   *apperr.Error
}

// Place stores the order pending and pays it. With an Idempotency-Key the order's id is the
// key's: placing it again (a retry with the same key) resumes that order instead of creating
// another, and the answer is stored with the finished order.
func (s *Service) Place(ctx context.Context, o Order, key idempotency.Key[Order]) (Result, error) {
	// A client that hangs up must not cut a payment in half: once started, the billing call
	// and the final commit run to their own end (the billing call has its own timeout), but
	// within placeTimeout. An order a stalled database leaves pending is the reconciler's.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.placeTimeout)
	defer cancel()
	o.Status = StatusPending
	stored, err := s.repo.Create(ctx, o, key)
	if err != nil {
		return Result{}, err
	}
	if stored.Status != StatusPending {
		return ResultOf(stored), nil
	}
	return s.pay(ctx, stored, key)
}

// pay asks billing to pay the order, outside any transaction, and finishes the order with
// the outcome.
func (s *Service) pay(ctx context.Context, o Order, key idempotency.Key[Order]) (Result, error) {
	p, err := s.billing.Pay(ctx, o)
	return s.finish(ctx, o, p, err, key)
}

// finish stores the order's end as billing's answer (p, or err) says, with the answer of the
// request's key if any. When billing could not be reached the order stays pending for the
// reconciler.
func (s *Service) finish(ctx context.Context, o Order, p Payment, err error, key idempotency.Key[Order]) (Result, error) {
	finished := o
	switch {
	case err == nil && p.Outcome == payments.Completed:
		err = finished.Complete()
	case err == nil && p.Outcome == payments.InsufficientFunds:
		err = finished.Fail(events.ReasonBalanceTooLow, fmt.Sprintf("Insufficient funds: balance %s, price %s", p.Balance, o.Price))
	case err == nil && p.Outcome == payments.Voided:
		err = finished.Fail(events.ReasonBillingUnreachable, fmt.Sprintf("billing could not be reached in time (%d attempts, pay deadline %s); nothing was charged",
			o.Attempts, o.PayBy.UTC().Format(time.RFC3339)))
	case err == nil:
		return Result{}, fmt.Errorf("pay order %s: unknown outcome %q", o.ID, p.Outcome)
	case apperr.Is(err, apperr.NotFound):
		err = finished.Fail(events.ReasonAccountNotFound, fmt.Sprintf("no billing account for user %s", o.UserID))
	case apperr.Is(err, apperr.Unavailable):
		s.log.WarnContext(ctx, "order left pending", "order_id", o.ID, "err", err)
		return Result{Order: o, Err: apperr.New(apperr.Unavailable, "billing is unavailable; the order is pending and will be completed automatically")}, nil
	default:
		return Result{}, fmt.Errorf("pay order %s: %w", o.ID, err)
	}
	if err != nil {
		return Result{}, err
	}
	finished, err = s.repo.Finish(ctx, finished, key)
	if apperr.Is(err, apperr.Unavailable) {
		// Billing has answered but the order's end could not be stored (a stalled or
		// failing-over database): the order stays pending, and the reconciler asks billing
		// again, which gives the same answer for the same payment. The client is told so,
		// with the order, as when billing cannot be reached: a 503 that names no order would
		// leave a client without a key unable to learn that it will be charged.
		s.log.WarnContext(ctx, "order left pending: its end could not be stored", "order_id", o.ID, "err", err)
		return ResultOf(o), nil
	}
	if err != nil {
		return Result{}, err
	}
	s.log.InfoContext(ctx, "order finished", "order_id", finished.ID, "status", finished.Status, "reason", finished.FailureReason)
	return ResultOf(finished), nil
}

// ResultOf is what placing an order that is now o tells the client.
func ResultOf(o Order) Result {
	switch {
	case o.Status == StatusPending:
		return Result{Order: o, Err: apperr.New(apperr.Unavailable, "the order is pending and will be completed automatically")}
	case o.Status == StatusCompleted:
		return Result{Order: o}
	case o.FailureReason == events.ReasonBalanceTooLow:
		return Result{Order: o, Err: insufficientFunds(o.FailureMessage)}
	case o.FailureReason == events.ReasonAccountNotFound:
		return Result{Order: o, Err: apperr.New(apperr.NotFound, "%s", o.FailureMessage)}
	default:
		return Result{Order: o, Err: paymentUnavailable(o.FailureMessage)}
	}
}
