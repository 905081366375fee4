package billing

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/order-system/order-system/api/payments"
	"github.com/order-system/order-system/pkg/apperr"
	"github.com/order-system/order-system/pkg/money"
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
	Status  payments.Outcome
	Balance money.Amount // balance after the payment (unchanged when funds were insufficient)
}

// Matches reports whether a repeated request describes the same payment.
func (p Payment) Matches(userID uuid.UUID, amount money.Amount) bool {
	return p.UserID == userID && p.Amount == amount
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

// CodePaymentMismatch is the error code of a payment id used again with another user or
// amount.
const CodePaymentMismatch apperr.Code = "payment_mismatch"

// PaymentMismatch is the 422 of a payment id used again with another user or amount.
func PaymentMismatch(id uuid.UUID) *apperr.Error {
	return apperr.NewOf(apperr.Unprocessable, CodePaymentMismatch, "payment %s was already made with another user or amount", id)
}
