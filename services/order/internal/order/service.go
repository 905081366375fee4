package order

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"github.com/order-system/order-system/pkg/apperr"
	"github.com/order-system/order-system/pkg/events"
	"github.com/order-system/order-system/pkg/idempotency"
)

// Service places and finishes orders.
type Service struct {
	repo         Repository
	billing      BillingClient
	log          *slog.Logger
	placeTimeout time.Duration
}

// DefaultPlaceTimeout bounds Place: far beyond a healthy request (the billing call has its
// own, shorter timeout), short enough that a request never waits forever on a database
// that stopped answering.
const DefaultPlaceTimeout = 20 * time.Second

// NewService returns the order service.
func NewService(repo Repository, billing BillingClient, log *slog.Logger) *Service {
	return &Service{repo: repo, billing: billing, log: log, placeTimeout: DefaultPlaceTimeout}
}

// WithPlaceTimeout sets the bound on Place and returns s.
func (s *Service) WithPlaceTimeout(d time.Duration) *Service {
	s.placeTimeout = d
	return s
}

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

// Get returns an order.
func (s *Service) Get(ctx context.Context, id uuid.UUID) (Order, error) {
	return s.repo.Get(ctx, id)
}

// pay asks billing to pay the order, outside any transaction, and finishes the order with
// the outcome.
func (s *Service) pay(ctx context.Context, o Order, key idempotency.Key[Order]) (Result, error) {
	p, err := s.billing.Pay(ctx, o)
	return s.finish(ctx, o, p, err, key)
}

// void asks billing to void the order's payment, outside any transaction, and finishes the
// order with the outcome: failed if nothing was charged, completed if it was.
func (s *Service) void(ctx context.Context, o Order) (Result, error) {
	p, err := s.billing.Void(ctx, o)
	return s.finish(ctx, o, p, err, idempotency.Key[Order]{})
}

// finish stores the order's end as billing's answer (p, or err) says, with the answer of the
// request's key if any. When billing could not be reached the order stays pending for the
// reconciler.
func (s *Service) finish(ctx context.Context, o Order, p Payment, err error, key idempotency.Key[Order]) (Result, error) {
	finished := o
	switch {
	case err == nil && p.Outcome == PaymentPaid:
		err = finished.Complete()
	case err == nil && p.Outcome == PaymentRefused:
		err = finished.Fail(events.ReasonBalanceTooLow, fmt.Sprintf("Insufficient funds: balance %s, price %s", p.Balance, o.Price))
	case err == nil && p.Outcome == PaymentVoided:
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

// ReconcilerConfig bounds how pending orders are retried.
type ReconcilerConfig struct {
	Interval    time.Duration // how often to look for due orders
	MaxAttempts int           // the reconciler's payment calls (after the request's own) before it voids the payment instead, if the pay deadline has not come first
	BaseBackoff time.Duration // wait after the first failed attempt, doubled each time
	MaxBackoff  time.Duration
	// CallTimeout is the longest a billing call takes (the client's BILLING_TIMEOUT). A
	// claim on an order lasts at least Lease, and a call starts only while the claim
	// outlasts it, so no call outlives the claim it was made under.
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

// Lease is the shortest claim on an order, and the grace before a new order is first due:
// room for two billing calls, so the first order of a batch is always paid under its claim
// and the request that placed an order has finished its own call before anyone repeats it.
func (c ReconcilerConfig) Lease() time.Duration {
	return 2 * c.CallTimeout
}

// PayHorizon is how long after it was placed an order is still paid by the schedule: the
// grace before it is first due, then MaxAttempts calls, each due at most max(Backoff, Lease)
// after the one before. A late or stopped reconciler stretches the schedule, which is why
// the pay deadline (Order.PayBy), not the schedule, bounds when an order may be paid; the
// schedule should end before it, or orders are voided by the deadline before their
// attempts run out.
func (c ReconcilerConfig) PayHorizon() time.Duration {
	d := c.Lease()
	for attempts := 1; attempts <= c.MaxAttempts; attempts++ {
		d += max(c.Backoff(attempts), c.Lease())
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
// Each order is checked again just before its call: an order that another replica claimed
// or finished since (its hold ran out while earlier orders of the batch were slow) is left
// to that replica, so a batch never acts on a hold it no longer has; such an order spends
// no attempt.
func (s *Service) Reconcile(ctx context.Context, cfg ReconcilerConfig) (int, error) {
	orders, now, err := s.repo.ClaimPending(ctx, 50, func(attempts int) time.Duration { return max(cfg.Backoff(attempts), cfg.Lease()) })
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
