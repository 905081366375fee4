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

// PaymentStatus is the definitive outcome of a payment.
type PaymentStatus string

// Payment outcomes. All are stored: repeating a payment returns its first outcome. A
// voided payment id was never debited and never will be, nor is one whose user had no
// account at its first call (callers see that outcome as the error not_found).
const (
	PaymentCompleted         PaymentStatus = "completed"
	PaymentInsufficientFunds PaymentStatus = "insufficient_funds"
	PaymentVoided            PaymentStatus = "voided"
	PaymentAccountNotFound   PaymentStatus = "account_not_found"
)

// Payment is a debit request and its outcome.
type Payment struct {
	ID     uuid.UUID
	UserID uuid.UUID
	Amount money.Amount
	// PayBy, unless zero, is the request's deadline: a payment id first seen after it (on
	// the database clock) is voided, not debited. The caller may have given up on the
	// payment by then and reused what it stood for; a request that waited in a queue or a
	// stopped process must not debit late.
	PayBy   time.Time
	Status  PaymentStatus
	Balance money.Amount // balance after the payment (unchanged when funds were insufficient)
}

// Matches reports whether a repeated request describes the same payment.
func (p Payment) Matches(userID uuid.UUID, amount money.Amount) bool {
	return p.UserID == userID && p.Amount == amount
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

// Pay debits a positive amount once per payment id.
func (s *Service) Pay(ctx context.Context, p Payment) (Payment, error) {
	if err := checkAmount(p.Amount); err != nil {
		return Payment{}, err
	}
	out, err := s.ledger.Pay(ctx, p)
	if err != nil {
		return Payment{}, err
	}
	s.log.InfoContext(ctx, "payment processed", "payment_id", p.ID, "user_id", p.UserID, "amount", p.Amount.String(), "status", string(out.Status))
	return out, nil
}

// Void settles a payment id whose outcome the caller never learned: if it was not paid, it
// never will be; if it was, the caller learns that instead.
func (s *Service) Void(ctx context.Context, p Payment) (Payment, error) {
	if err := checkAmount(p.Amount); err != nil {
		return Payment{}, err
	}
	out, err := s.ledger.Void(ctx, p)
	if err != nil {
		return Payment{}, err
	}
	s.log.InfoContext(ctx, "payment void requested", "payment_id", p.ID, "user_id", p.UserID, "amount", p.Amount.String(), "status", string(out.Status))
	return out, nil
}

// Transactions returns the latest entries of the user's ledger, newest first.
func (s *Service) Transactions(ctx context.Context, userID uuid.UUID) ([]Entry, error) {
	return s.ledger.Entries(ctx, userID, 1000)
}

func checkAmount(a money.Amount) error {
	if a <= 0 || a > money.Max {
		return apperr.Validation(map[string]string{"amount": "must be greater than 0 and at most 999999999999.99"})
	}
	return nil
}

// CodePaymentMismatch is the error code of a payment id used again with another user or
// amount.
const CodePaymentMismatch apperr.Code = "payment_mismatch"

// PaymentMismatch is the 422 of a payment id used again with another user or amount.
func PaymentMismatch(id uuid.UUID) *apperr.Error {
	return apperr.NewOf(apperr.Unprocessable, CodePaymentMismatch, "payment %s was already made with another user or amount", id)
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
