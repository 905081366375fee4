package order

import (
	"context"
	"errors"
	"time"

	"github.com/order-system/order-system/api/events"
	"github.com/order-system/order-system/pkg/idempotency"
)

// ReconcilerConfig bounds how pending orders are retried.
type ReconcilerConfig struct {
	Interval    time.Duration // how often to look for due orders
	MaxAttempts int           // the reconciler's payment calls (after the request's own) before it voids the payment instead, if the pay deadline has not come first
	BaseBackoff time.Duration // wait after the first failed attempt, doubled each time
	MaxBackoff  time.Duration
	// CallTimeout is the longest a billing call takes (the client's BILLING_TIMEOUT). A
	// hold on an order lasts at least Hold, and a call starts only while the hold outlasts
	// it, so no call outlives the hold it was made under.
	CallTimeout time.Duration
}

// DefaultReconcilerConfig retries for about an hour in all: long enough to ride out a billing
// deployment or outage, short enough that a client is not left waiting for days.
func DefaultReconcilerConfig() ReconcilerConfig {
	return ReconcilerConfig{Interval: time.Second, MaxAttempts: 20, BaseBackoff: time.Second, MaxBackoff: 5 * time.Minute, CallTimeout: 3 * time.Second}
}

// Backoff is the delay before attempt number attempts+1: BaseBackoff doubled attempts
// times, at most MaxBackoff. It doubles only while that stays below MaxBackoff, so no
// setting overflows it.
func (c ReconcilerConfig) Backoff(attempts int) time.Duration {
	d := c.BaseBackoff
	for i := 0; i < attempts && d > 0; i++ {
		if d > c.MaxBackoff/2 {
			return c.MaxBackoff
		}
		d *= 2
	}
	return min(d, c.MaxBackoff)
}

// Hold is the shortest hold on an order, and the grace before a new order is first due:
// room for two billing calls, so the first order of a batch is always paid under its hold
// and the request that placed an order has finished its own call before anyone repeats it.
func (c ReconcilerConfig) Hold() time.Duration {
	return 2 * c.CallTimeout
}

// PayHorizon is how long after it was placed an order is still paid by the schedule: the
// grace before it is first due, then MaxAttempts calls, each due at most max(Backoff, Lease)
// after the one before. A late or stopped reconciler stretches the schedule, which is why
// the pay deadline (Order.PayBy), not the schedule, bounds when an order may be paid; the
// schedule should end before it, or orders are voided by the deadline before their
// attempts run out.
func (c ReconcilerConfig) PayHorizon() time.Duration {
	d := c.Hold()
	for attempts := 1; attempts <= c.MaxAttempts; attempts++ {
		d += max(c.Backoff(attempts), c.Hold())
	}
	return d
}

// PayWindow is how long after it is placed an order may be paid, when Idempotency-Keys are
// kept for keyTTL: keyTTL less a margin of a tenth, at most a minute. The key of a keyed
// order expires keyTTL after the order was stored (the same statement, the same clock), so
// by the time a retry can reuse the key for a second order, the first can no longer be
// debited. The margin covers a clock difference between the order's database and billing's
// and a debit committing just after billing checked the deadline.
func PayWindow(keyTTL time.Duration) time.Duration {
	return keyTTL - min(keyTTL/10, time.Minute)
}

// void asks billing to void the order's payment, outside any transaction, and finishes the
// order with the outcome: failed if nothing was charged, completed if it was.
func (s *Service) void(ctx context.Context, o Order) (Result, error) {
	p, err := s.billing.Void(ctx, o)
	return s.finish(ctx, o, p, err, idempotency.Key[Order]{})
}

// Reconcile finishes due pending orders once: those whose billing call failed, and those
// whose process died between the debit and the final commit. Repeating the call with the
// same payment id returns billing's first outcome, so this never debits twice.
//
// Whether it still pays or voids an order is decided by the order's age, not by how often
// it was tried: an order past its pay deadline (PayBy, on the database clock) is voided, so
// no interval, backlog or downtime of the reconcilers lets it be paid after its
// Idempotency-Key could be reused for another order. Billing enforces the same deadline on
// its own clock, for a call it only gets to late. An order is also voided after
// cfg.MaxAttempts calls that got no answer. A void fails the order only once billing confirms
// that it was not charged (or completes it, if the void finds it was).
//
// Each order is checked again just before its call: an order that another replica held
// or finished since (its hold ran out while earlier orders of the batch were slow) is left
// to that replica, so a batch never acts on a hold it no longer has; such an order spends
// no attempt.
func (s *Service) Reconcile(ctx context.Context, cfg ReconcilerConfig) (int, error) {
	orders, now, err := s.repo.HoldDue(ctx, 50, func(attempts int) time.Duration { return max(cfg.Backoff(attempts), cfg.Hold()) })
	if err != nil {
		return 0, err
	}
	for _, o := range orders {
		held, err := s.repo.StartAttempt(ctx, o, cfg.CallTimeout)
		if err != nil {
			return len(orders), err
		}
		if !held {
			s.log.InfoContext(ctx, "reconcile skipped an order no longer held", "order_id", o.ID, "attempts", o.Attempts)
			continue
		}
		var res Result
		if o.Attempts > cfg.MaxAttempts || !now.Before(o.PayBy) {
			res, err = s.void(ctx, o)
		} else {
			res, err = s.pay(ctx, o, idempotency.Key[Order]{}) // the reconciler answers no request
		}
		if err != nil {
			// The order stays pending and is tried again after its backoff; one order's
			// trouble must not hold up the others.
			s.log.ErrorContext(ctx, "reconcile order failed", "order_id", o.ID, "attempts", o.Attempts, "err", err)
			continue
		}
		if res.Order.Status == StatusFailed && res.Order.FailureReason == events.ReasonBillingUnreachable {
			s.log.ErrorContext(ctx, "order failed, billing unreachable", "order_id", o.ID, "attempts", o.Attempts, "pay_by", o.PayBy)
		}
	}
	return len(orders), nil
}

// RunReconciler reconciles every cfg.Interval until ctx ends.
func (s *Service) RunReconciler(ctx context.Context, cfg ReconcilerConfig) error {
	t := time.NewTicker(cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		for {
			n, err := s.Reconcile(ctx, cfg)
			if err != nil && !errors.Is(err, context.Canceled) {
				s.log.WarnContext(ctx, "reconcile failed", "err", err)
			}
			if err != nil || n == 0 {
				break
			}
		}
	}
}
