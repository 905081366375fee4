package order

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"github.com/order-system/order-system/pkg/apperr"
)

// Service places and finishes orders.
type Service struct {
	repo    Repository
	billing BillingClient
	log     *slog.Logger
}

// NewService returns the order service.
func NewService(repo Repository, billing BillingClient, log *slog.Logger) *Service {
	return &Service{repo: repo, billing: billing, log: log}
}

// Result is a finished or pending order and, when it did not complete, the coded error the
// client sees (insufficient_funds, not_found, unavailable).
type Result struct {
	Order Order
	Err   *apperr.Error
}

// Place stores the order pending and pays it. Placing an order whose id exists (a retry with
// the same Idempotency-Key) resumes that order instead of creating another.
func (s *Service) Place(ctx context.Context, o Order) (Result, error) {
	o.Status = StatusPending
	stored, err := s.repo.Create(ctx, o)
	if err != nil {
		return Result{}, err
	}
	if stored.Status != StatusPending {
		return resultOf(stored), nil
	}
	return s.pay(ctx, stored)
}

// Get returns an order.
func (s *Service) Get(ctx context.Context, id uuid.UUID) (Order, error) {
	return s.repo.Get(ctx, id)
}

// pay calls billing outside any transaction and finishes the order with the outcome. When
// billing cannot be reached the order stays pending for the reconciler.
func (s *Service) pay(ctx context.Context, o Order) (Result, error) {
	p, err := s.billing.Pay(ctx, o.ID, o.UserID, o.Price)
	finished := o
	switch {
	case err == nil && p.Paid:
		err = finished.Complete()
	case err == nil:
		err = finished.Fail(ReasonInsufficientFunds, fmt.Sprintf("Insufficient funds: balance %s, price %s", p.Balance, o.Price))
	case apperr.Is(err, apperr.NotFound):
		err = finished.Fail(ReasonAccountNotFound, fmt.Sprintf("no billing account for user %s", o.UserID))
	case apperr.Is(err, apperr.Unavailable):
		s.log.WarnContext(ctx, "order left pending", "order_id", o.ID, "err", err)
		return Result{Order: o, Err: apperr.New(apperr.Unavailable, "billing is unavailable; the order is pending and will be completed automatically")}, nil
	default:
		return Result{}, fmt.Errorf("pay order %s: %w", o.ID, err)
	}
	if err != nil {
		return Result{}, err
	}
	finished, err = s.repo.Finish(ctx, finished)
	if err != nil {
		return Result{}, err
	}
	s.log.InfoContext(ctx, "order finished", "order_id", finished.ID, "status", finished.Status, "reason", finished.FailureReason)
	return resultOf(finished), nil
}

func resultOf(o Order) Result {
	switch {
	case o.Status == StatusPending:
		return Result{Order: o, Err: apperr.New(apperr.Unavailable, "the order is pending and will be completed automatically")}
	case o.Status == StatusCompleted:
		return Result{Order: o}
	case o.FailureReason == ReasonInsufficientFunds:
		return Result{Order: o, Err: insufficientFunds(o.FailureMessage)}
	case o.FailureReason == ReasonAccountNotFound:
		return Result{Order: o, Err: apperr.New(apperr.NotFound, "%s", o.FailureMessage)}
	default:
		return Result{Order: o, Err: apperr.New(apperr.Unavailable, "%s", o.FailureMessage)}
	}
}

// ReconcilerConfig bounds how pending orders are retried.
type ReconcilerConfig struct {
	Interval    time.Duration // how often to look for due orders
	MaxAttempts int           // billing calls before an order is failed for good
	BaseBackoff time.Duration // wait after the first failed attempt, doubled each time
	MaxBackoff  time.Duration
}

// DefaultReconcilerConfig retries for about an hour in all: long enough to ride out a billing
// deployment or outage, short enough that a client is not left waiting for days.
var DefaultReconcilerConfig = ReconcilerConfig{Interval: time.Second, MaxAttempts: 20, BaseBackoff: time.Second, MaxBackoff: 5 * time.Minute}

// Backoff is the delay before attempt number attempts+1.
func (c ReconcilerConfig) Backoff(attempts int) time.Duration {
	return min(c.BaseBackoff<<min(attempts, 20), c.MaxBackoff)
}

// Reconcile finishes due pending orders once: those whose billing call failed, and those
// whose process died between the debit and the final commit. Repeating the call with the
// same payment id returns billing's first outcome, so this never debits twice.
func (s *Service) Reconcile(ctx context.Context, cfg ReconcilerConfig) (int, error) {
	orders, err := s.repo.ClaimPending(ctx, 50, cfg.Backoff)
	if err != nil {
		return 0, err
	}
	for _, o := range orders {
		res, err := s.pay(ctx, o)
		if err != nil {
			return 0, err
		}
		if res.Order.Status == StatusPending && o.Attempts >= cfg.MaxAttempts {
			failed := res.Order
			if err := failed.Fail(ReasonBillingUnreachable, fmt.Sprintf("billing could not be reached after %d attempts", o.Attempts)); err != nil {
				return 0, err
			}
			if _, err := s.repo.Finish(ctx, failed); err != nil {
				return 0, err
			}
			s.log.ErrorContext(ctx, "order failed, billing unreachable", "order_id", o.ID, "attempts", o.Attempts)
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
