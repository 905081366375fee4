package billing

import (
	"context"

	"github.com/google/uuid"

	"github.com/order-system/order-system/pkg/idempotency"
)

// OpenAccount opens the user's account; opening it again is a no-op.
func (s *Service) OpenAccount(ctx context.Context, userID uuid.UUID) (Account, bool, error) {
	a, created, err := s.ledger.OpenAccount(ctx, userID)
	if err == nil && created {
		s.log.InfoContext(ctx, "account opened", "user_id", userID)
	}
	return a, created, err
}

// Account returns the user's account.
func (s *Service) Account(ctx context.Context, userID uuid.UUID) (Account, error) {
	return s.ledger.Account(ctx, userID)
}

// Deposit adds a positive amount to the user's account, once per Idempotency-Key if the
// request has one.
func (s *Service) Deposit(ctx context.Context, d Deposit, key idempotency.Key[Account]) (Account, error) {
	if err := checkAmount(d.Amount); err != nil {
		return Account{}, err
	}
	a, err := s.ledger.Deposit(ctx, d, key)
	if err != nil {
		return Account{}, err
	}
	if key.Taken() {
		d.ID = key.ID() // the id the ledger applied the deposit under
	}
	s.log.InfoContext(ctx, "deposit applied", "user_id", d.UserID, "deposit_id", d.ID, "amount", d.Amount.String(), "balance", a.Balance.String())
	return a, nil
}

// Transactions returns the latest entries of the user's ledger, newest first.
func (s *Service) Transactions(ctx context.Context, userID uuid.UUID) ([]Entry, error) {
	return s.ledger.Entries(ctx, userID, 1000)
}
