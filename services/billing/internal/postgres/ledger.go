// Package postgres stores the billing ledger in PostgreSQL. Every money movement is one
// transaction that changes the balance with a conditional UPDATE and writes its entry, so a
// balance is always the sum of its entries and never negative.
package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/order-system/order-system/pkg/apperr"
	"github.com/order-system/order-system/pkg/money"
	"github.com/order-system/order-system/pkg/postgres"
	"github.com/order-system/order-system/services/billing/internal/billing"
)

// Ledger implements billing.Ledger.
type Ledger struct {
	db *sqlx.DB
}

var _ billing.Ledger = (*Ledger)(nil)

// NewLedger returns a ledger over db.
func NewLedger(db *sqlx.DB) *Ledger { return &Ledger{db: db} }

type accountRow struct {
	UserID    uuid.UUID `db:"user_id"`
	Balance   int64     `db:"balance"`
	Currency  string    `db:"currency"`
	CreatedAt time.Time `db:"created_at"`
}

func fromAccountRow(r accountRow) billing.Account {
	return billing.Account{UserID: r.UserID, Balance: money.Amount(r.Balance), Currency: r.Currency, CreatedAt: r.CreatedAt}
}

type entryRow struct {
	ID           int64     `db:"id"`
	UserID       uuid.UUID `db:"user_id"`
	Type         string    `db:"type"`
	Amount       int64     `db:"amount"`
	BalanceAfter int64     `db:"balance_after"`
	OperationID  uuid.UUID `db:"operation_id"`
	CreatedAt    time.Time `db:"created_at"`
}

func fromEntryRow(r entryRow) billing.Entry {
	return billing.Entry{ID: r.ID, UserID: r.UserID, Type: billing.EntryType(r.Type), Amount: money.Amount(r.Amount),
		BalanceAfter: money.Amount(r.BalanceAfter), OperationID: r.OperationID, CreatedAt: r.CreatedAt}
}

type paymentRow struct {
	PaymentID uuid.UUID `db:"payment_id"`
	UserID    uuid.UUID `db:"user_id"`
	Amount    int64     `db:"amount"`
	Status    string    `db:"status"`
	Balance   int64     `db:"balance"`
}

func fromPaymentRow(r paymentRow) billing.Payment {
	return billing.Payment{ID: r.PaymentID, UserID: r.UserID, Amount: money.Amount(r.Amount), Status: billing.PaymentStatus(r.Status), Balance: money.Amount(r.Balance)}
}

const accountColumns = `user_id, balance, currency, created_at`

// OpenAccount implements billing.Ledger.
func (l *Ledger) OpenAccount(ctx context.Context, userID uuid.UUID) (billing.Account, bool, error) {
	var r accountRow
	err := l.db.GetContext(ctx, &r, `INSERT INTO accounts (user_id, currency) VALUES ($1, $2)
		ON CONFLICT (user_id) DO NOTHING RETURNING `+accountColumns, userID, billing.Currency)
	if err == nil {
		return fromAccountRow(r), true, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return billing.Account{}, false, postgres.Wrap("open account", err)
	}
	a, err := l.Account(ctx, userID)
	return a, false, err
}

// Account implements billing.Ledger.
func (l *Ledger) Account(ctx context.Context, userID uuid.UUID) (billing.Account, error) {
	var r accountRow
	err := l.db.GetContext(ctx, &r, `SELECT `+accountColumns+` FROM accounts WHERE user_id = $1`, userID)
	if errors.Is(err, sql.ErrNoRows) {
		return billing.Account{}, errAccountNotFound(userID)
	}
	if err != nil {
		return billing.Account{}, postgres.Wrap("get account", err)
	}
	return fromAccountRow(r), nil
}

// Deposit implements billing.Ledger.
func (l *Ledger) Deposit(ctx context.Context, d billing.Deposit) (billing.Account, error) {
	var acc accountRow
	err := postgres.InTx(ctx, l.db, func(tx *sqlx.Tx) error {
		// The entry goes first: a repeated deposit id stops here, before touching the balance.
		res, err := tx.ExecContext(ctx, `INSERT INTO entries (user_id, type, amount, balance_after, operation_id)
			SELECT user_id, 'deposit', $2, balance + $2, $3 FROM accounts WHERE user_id = $1
			ON CONFLICT (operation_id) DO NOTHING`, d.UserID, int64(d.Amount), d.ID)
		if err != nil {
			return fmt.Errorf("insert deposit entry: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 1 {
			err = tx.GetContext(ctx, &acc, `UPDATE accounts SET balance = balance + $2, updated_at = now()
				WHERE user_id = $1 RETURNING `+accountColumns, d.UserID, int64(d.Amount))
		} else {
			err = tx.GetContext(ctx, &acc, `SELECT `+accountColumns+` FROM accounts WHERE user_id = $1`, d.UserID)
		}
		if errors.Is(err, sql.ErrNoRows) {
			return errAccountNotFound(d.UserID)
		}
		return err
	})
	if err != nil {
		return billing.Account{}, postgres.Wrap("deposit", err)
	}
	return fromAccountRow(acc), nil
}

// Pay implements billing.Ledger.
func (l *Ledger) Pay(ctx context.Context, p billing.Payment) (billing.Payment, error) {
	var out paymentRow
	err := postgres.InTx(ctx, l.db, func(tx *sqlx.Tx) error {
		// Claim the payment id first. A concurrent call with the same id waits here until
		// the first commits, then sees its row: the debit below runs once per id.
		res, err := tx.ExecContext(ctx, `INSERT INTO payments (payment_id, user_id, amount, status, balance)
			SELECT $1, user_id, $3, 'completed', 0 FROM accounts WHERE user_id = $2
			ON CONFLICT (payment_id) DO NOTHING`, p.ID, p.UserID, int64(p.Amount))
		if err != nil {
			return fmt.Errorf("insert payment: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			err := tx.GetContext(ctx, &out, `SELECT payment_id, user_id, amount, status, balance FROM payments WHERE payment_id = $1`, p.ID)
			if errors.Is(err, sql.ErrNoRows) {
				return errAccountNotFound(p.UserID)
			}
			if err != nil {
				return fmt.Errorf("get payment: %w", err)
			}
			if !fromPaymentRow(out).Matches(p.UserID, p.Amount) {
				return apperr.New(apperr.PaymentMismatch, "payment %s was already made with another user or amount", p.ID)
			}
			return nil
		}

		out = paymentRow{PaymentID: p.ID, UserID: p.UserID, Amount: int64(p.Amount), Status: string(billing.PaymentCompleted)}
		err = tx.GetContext(ctx, &out.Balance, `UPDATE accounts SET balance = balance - $2, updated_at = now()
			WHERE user_id = $1 AND balance >= $2 RETURNING balance`, p.UserID, int64(p.Amount))
		switch {
		case errors.Is(err, sql.ErrNoRows):
			out.Status = string(billing.PaymentInsufficientFunds)
			if err := tx.GetContext(ctx, &out.Balance, `SELECT balance FROM accounts WHERE user_id = $1`, p.UserID); err != nil {
				return fmt.Errorf("get balance: %w", err)
			}
		case err != nil:
			return fmt.Errorf("debit account: %w", err)
		default:
			if _, err := tx.ExecContext(ctx, `INSERT INTO entries (user_id, type, amount, balance_after, operation_id)
				VALUES ($1, 'debit', $2, $3, $4)`, p.UserID, int64(p.Amount), out.Balance, p.ID); err != nil {
				return fmt.Errorf("insert debit entry: %w", err)
			}
		}
		if _, err := tx.ExecContext(ctx, `UPDATE payments SET status = $2, balance = $3 WHERE payment_id = $1`, p.ID, out.Status, out.Balance); err != nil {
			return fmt.Errorf("record payment outcome: %w", err)
		}
		return nil
	})
	if err != nil {
		return billing.Payment{}, postgres.Wrap("pay", err)
	}
	return fromPaymentRow(out), nil
}

// Entries implements billing.Ledger.
func (l *Ledger) Entries(ctx context.Context, userID uuid.UUID, limit int) ([]billing.Entry, error) {
	if _, err := l.Account(ctx, userID); err != nil {
		return nil, err
	}
	var rows []entryRow
	if err := l.db.SelectContext(ctx, &rows, `SELECT id, user_id, type, amount, balance_after, operation_id, created_at
		FROM entries WHERE user_id = $1 ORDER BY id DESC LIMIT $2`, userID, limit); err != nil {
		return nil, postgres.Wrap("list entries", err)
	}
	entries := make([]billing.Entry, len(rows))
	for i, r := range rows {
		entries[i] = fromEntryRow(r)
	}
	return entries, nil
}

func errAccountNotFound(userID uuid.UUID) error {
	return apperr.New(apperr.NotFound, "no billing account for user %s", userID)
}
