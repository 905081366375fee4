// Package billing is the ledger domain: accounts, deposits and payments. Money never goes
// below zero and a payment id is debited at most once, whatever the retries.
package billing

import (
	"context"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"github.com/order-system/order-system/pkg/apperr"
	"github.com/order-system/order-system/pkg/idempotency"
	"github.com/order-system/order-system/pkg/money"
)

// Currency is the one currency accounts hold.
const Currency = "RUB"

// Account is a user's balance.
type Account struct {
	UserID    uuid.UUID
	Balance   money.Amount
	Currency  string
	CreatedAt time.Time
}

// EntryType says whether an entry adds or removes money.
type EntryType string

// Entry types.
const (
	EntryDeposit EntryType = "deposit"
	EntryDebit   EntryType = "debit"
)

// Entry is one immutable ledger line.
type Entry struct {
	ID           int64
	UserID       uuid.UUID
	Type         EntryType
	Amount       money.Amount
	BalanceAfter money.Amount
	// OperationID is the payment id of a debit, or the deposit's own id.
	OperationID uuid.UUID
	CreatedAt   time.Time
}

// Deposit is money added to an account.
type Deposit struct {
	ID     uuid.UUID // makes the deposit apply once
	UserID uuid.UUID
	Amount money.Amount
}

// Ledger stores accounts and applies money movements atomically.
type Ledger interface {
	// OpenAccount creates the account if it does not exist and returns it; created says
	// whether this call created it.
	OpenAccount(ctx context.Context, userID uuid.UUID) (a Account, created bool, err error)
	// Account returns the account; not_found if there is none.
	Account(ctx context.Context, userID uuid.UUID) (Account, error)
	// Deposit adds money once per deposit id and returns the account; not_found if there is
	// no account. With a present Idempotency-Key (pkg/idempotency), the deposit id is the
	// key's derived id, and the key is taken and the answer stored with the deposit; the
	// key's *idempotency.Refusal comes back, with nothing written, when it cannot be taken.
	Deposit(ctx context.Context, d Deposit, key idempotency.Key[Account]) (Account, error)
	// Pay debits the amount once per payment id, or records insufficient funds (or voided,
	// past p.PayBy), and returns the outcome; a repeated id returns the stored outcome. not_found if the user had no
	// account at the id's first call (stored too: opening the account later changes
	// nothing for the id), payment_mismatch if the id was used for another user or amount.
	Pay(ctx context.Context, p Payment) (Payment, error)
	// Void stores the outcome voided for a payment id that has none yet and returns the
	// stored outcome: voided, or the first outcome if the id was already paid or refused.
	// not_found and payment_mismatch as for Pay.
	Void(ctx context.Context, p Payment) (Payment, error)
	// Entries returns up to limit entries, newest first; not_found if there is no account.
	Entries(ctx context.Context, userID uuid.UUID, limit int) ([]Entry, error)
}

// Service is the billing use cases.
type Service struct {
	ledger Ledger
	log    *slog.Logger
}

// NewService returns the billing service over ledger.
func NewService(ledger Ledger, log *slog.Logger) *Service {
	return &Service{ledger: ledger, log: log}
}

func checkAmount(a money.Amount) error {
	if a <= 0 || a > money.Max {
		return apperr.Validation(map[string]string{"amount": "must be greater than 0 and at most 999999999999.99"})
	}
	return nil
}

// NoAccount is the not_found of a user without a billing account.
func NoAccount(userID uuid.UUID) *apperr.Error {
	return apperr.New(apperr.NotFound, "no billing account for user %s", userID)
}

// Violation is a broken ledger invariant: which one, on what (an account or a payment id),
// and the figures that disagree.
type Violation struct {
	Invariant string
	Subject   string
	Detail    string
}
