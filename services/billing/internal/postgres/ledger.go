// Package postgres stores the billing ledger in PostgreSQL. Every money movement is one
// transaction that changes the balance with a conditional UPDATE and writes its entry, so a
// balance is always the sum of its entries and never negative.
package postgres

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/order-system/order-system/api/payments"
	"github.com/order-system/order-system/pkg/apperr"
	"github.com/order-system/order-system/pkg/database"
	"github.com/order-system/order-system/pkg/idempotency"
	"github.com/order-system/order-system/pkg/money"
	"github.com/order-system/order-system/services/billing/internal/billing"
)

// Ledger implements billing.Ledger.
type Ledger struct {
	db      *sqlx.DB
	pay     *database.Stmt
	void    *database.Stmt
	deposit *database.Stmt
	account *database.Stmt
}

var _ billing.Ledger = (*Ledger)(nil)

// NewLedger returns a ledger over db.
func NewLedger(db *sqlx.DB) *Ledger {
	return &Ledger{
		db:      db,
		pay:     database.Prepare(db, paySQL),
		void:    database.Prepare(db, voidSQL),
		deposit: database.Prepare(db, depositSQL),
		account: database.Prepare(db, `SELECT `+accountColumns+` FROM accounts WHERE user_id = $1`),
	}
}

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
	return billing.Payment{ID: r.PaymentID, UserID: r.UserID, Amount: money.Amount(r.Amount), Status: payments.Outcome(r.Status), Balance: money.Amount(r.Balance)}
}

const accountColumns = `user_id, balance, currency, created_at`

// depositSQL credits an account and writes the entry in one statement; a deposit id seen
// before violates the entries' unique operation id and rolls the credit back.
const depositSQL = `
		WITH credit AS (
			UPDATE accounts SET balance = balance + $2, updated_at = now()
			WHERE user_id = $1
			RETURNING ` + accountColumns + `
		), entry AS (
			INSERT INTO entries (user_id, type, amount, balance_after, operation_id)
			SELECT user_id, 'deposit', $2, balance, $3 FROM credit
		)
		SELECT ` + accountColumns + ` FROM credit`

// depositKeyedSQL is depositSQL for a request with an Idempotency-Key, whose key it takes in
// the same statement. It returns one row if it took the key and none otherwise: whether the
// user has an account, whether it credited it, and the account as it is now (its columns
// are placeholders when there is none). The deposit id is the key's derived id, which only
// the request holding the key writes, so checking for its entry replaces the unique
// violation that would abort the transaction the key was taken in.
var depositKeyedSQL = database.Named(`
		WITH ` + idempotency.TakeCTE + `, credit AS (
			UPDATE accounts SET balance = balance + @amount, updated_at = now()
			WHERE user_id = @user_id AND EXISTS (SELECT FROM key_taken)
			  AND NOT EXISTS (SELECT FROM entries WHERE operation_id = @deposit_id)
			RETURNING ` + accountColumns + `
		), entry AS (
			INSERT INTO entries (user_id, type, amount, balance_after, operation_id)
			SELECT user_id, 'deposit', @amount, balance, @deposit_id FROM credit
		)
		SELECT a.user_id IS NOT NULL AS found, credit.user_id IS NOT NULL AS credited, @user_id::uuid AS user_id,
		       COALESCE(credit.balance, a.balance, 0) AS balance, COALESCE(a.currency, '') AS currency,
		       COALESCE(a.created_at, now()) AS created_at
		FROM key_taken LEFT JOIN accounts a ON a.user_id = @user_id LEFT JOIN credit ON true`)

type keyedDepositRow struct {
	Found    bool `db:"found"`
	Credited bool `db:"credited"`
	accountRow
}

// paySQL debits, writes the entry and records the outcome in one statement. The payment id
// is the payments table's primary key: a repeated id violates it, which rolls back the whole
// statement, debit included. A concurrent repeat waits on the account's row lock and then
// fails the same way, so an id is debited at most once. A user without an account gets the
// outcome account_not_found, stored like the others; a request past its deadline ($4, if not
// null) gets voided, and never debits.
const paySQL = `
		WITH debit AS (
			UPDATE accounts SET balance = balance - $3, updated_at = now()
			WHERE user_id = $2 AND balance >= $3 AND NOT coalesce($4::timestamptz <= now(), false)
			RETURNING balance
		), entry AS (
			INSERT INTO entries (user_id, type, amount, balance_after, operation_id)
			SELECT $2, 'debit', $3, balance, $1 FROM debit
		)
		INSERT INTO payments (payment_id, user_id, amount, status, balance)
		SELECT $1, $2, $3,
		       CASE WHEN accounts.user_id IS NULL THEN 'account_not_found'
		            WHEN $4::timestamptz <= now() THEN 'voided'
		            WHEN debit.balance IS NULL THEN 'insufficient_funds'
		            ELSE 'completed' END,
		       COALESCE(debit.balance, accounts.balance, 0)
		FROM (VALUES (1)) AS one
		LEFT JOIN accounts ON accounts.user_id = $2
		LEFT JOIN debit ON true
		RETURNING payment_id, user_id, amount, status, balance`

// voidSQL stores the outcome voided (account_not_found for a user without an account)
// unless the payment id has one. Against a concurrent paySQL of the same id the primary key
// decides: whichever inserts first wins, the other waits for it and then finds its row.
const voidSQL = `
		INSERT INTO payments (payment_id, user_id, amount, status, balance)
		SELECT $1, $2, $3,
		       CASE WHEN accounts.user_id IS NULL THEN 'account_not_found' ELSE 'voided' END,
		       COALESCE(accounts.balance, 0)
		FROM (VALUES (1)) AS one
		LEFT JOIN accounts ON accounts.user_id = $2
		ON CONFLICT (payment_id) DO NOTHING
		RETURNING payment_id, user_id, amount, status, balance`

// OpenAccount implements billing.Ledger.
func (l *Ledger) OpenAccount(ctx context.Context, userID uuid.UUID) (billing.Account, bool, error) {
	var r accountRow
	err := l.db.GetContext(ctx, &r, `INSERT INTO accounts (user_id, currency) VALUES ($1, $2)
		ON CONFLICT (user_id) DO NOTHING RETURNING `+accountColumns, userID, billing.Currency)
	if err == nil {
		return fromAccountRow(r), true, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return billing.Account{}, false, database.Wrap("open account", err)
	}
	a, err := l.Account(ctx, userID)
	return a, false, err
}

// Account implements billing.Ledger.
func (l *Ledger) Account(ctx context.Context, userID uuid.UUID) (billing.Account, error) {
	var r accountRow
	err := l.account.GetContext(ctx, &r, userID)
	if errors.Is(err, sql.ErrNoRows) {
		return billing.Account{}, billing.NoAccount(userID)
	}
	if err != nil {
		return billing.Account{}, database.Wrap("get account", err)
	}
	return fromAccountRow(r), nil
}

// Deposit implements billing.Ledger.
func (l *Ledger) Deposit(ctx context.Context, d billing.Deposit, key idempotency.Key[billing.Account]) (billing.Account, error) {
	if key.Present() {
		return l.depositKeyed(ctx, key, d)
	}
	var acc accountRow
	err := l.deposit.GetContext(ctx, &acc, d.UserID, int64(d.Amount), d.ID)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return billing.Account{}, billing.NoAccount(d.UserID)
	case database.IsUniqueViolation(err):
		return l.Account(ctx, d.UserID) // applied before: the retry changes nothing
	case database.IsCheckViolation(err, "accounts_balance_max"):
		// The credit meets the cap before the entry meets the unique deposit id, so a retry
		// of a deposit that took the balance to the cap lands here; it was applied, and
		// gets the applied result like any other retry.
		applied, err := l.applied(ctx, d.ID)
		if err != nil {
			return billing.Account{}, err
		}
		if applied {
			return l.Account(ctx, d.UserID)
		}
		return billing.Account{}, apperr.Validation(map[string]string{"amount": "would take the balance above " + money.Max.String()})
	case err != nil:
		return billing.Account{}, database.Wrap("deposit", err)
	}
	return fromAccountRow(acc), nil
}

// depositKeyed applies a keyed deposit in one transaction: the key, the credit and its
// entry in one statement, then the answer, which needs the new balance. A request answered
// otherwise (no account, above the cap) rolls the key back with the rest.
func (l *Ledger) depositKeyed(ctx context.Context, key idempotency.Key[billing.Account], d billing.Deposit) (billing.Account, error) {
	a, err := idempotency.InTx(ctx, l.db, key, func(tx *sqlx.Tx) (billing.Account, error) {
		var r keyedDepositRow
		err := key.Take(ctx, tx, func(id uuid.UUID, k database.Params) error {
			args, err := depositKeyedSQL.Args(k.With(database.Params{"user_id": d.UserID, "amount": int64(d.Amount), "deposit_id": id}))
			if err != nil {
				return err
			}
			return tx.GetContext(ctx, &r, depositKeyedSQL.SQL(), args...)
		})
		if err != nil {
			return billing.Account{}, err
		}
		if !r.Found {
			return billing.Account{}, billing.NoAccount(d.UserID)
		}
		return fromAccountRow(r.accountRow), nil
	})
	if err != nil {
		if database.IsCheckViolation(err, "accounts_balance_max") {
			return billing.Account{}, apperr.Validation(map[string]string{"amount": "would take the balance above " + money.Max.String()})
		}
		return billing.Account{}, database.Wrap("deposit", err)
	}
	return a, nil
}

// applied reports whether the ledger holds the entry of an operation id. A statement that
// failed on a concurrent repeat of the id ran after that repeat committed (it waited for the
// account's row lock), so the entry is visible here.
func (l *Ledger) applied(ctx context.Context, operationID uuid.UUID) (bool, error) {
	var found bool
	if err := l.db.GetContext(ctx, &found, `SELECT EXISTS (SELECT 1 FROM entries WHERE operation_id = $1)`, operationID); err != nil {
		return false, database.Wrap("find entry", err)
	}
	return found, nil
}

// Pay implements billing.Ledger; a repeated payment id returns the stored outcome.
func (l *Ledger) Pay(ctx context.Context, p billing.Payment) (billing.Payment, error) {
	var out paymentRow
	payBy := sql.NullTime{Time: p.PayBy, Valid: !p.PayBy.IsZero()}
	err := l.pay.GetContext(ctx, &out, p.ID, p.UserID, int64(p.Amount), payBy)
	switch {
	case database.IsUniqueViolation(err):
		return l.storedPayment(ctx, p)
	case err != nil:
		return billing.Payment{}, database.Wrap("pay", err)
	}
	return outcome(fromPaymentRow(out))
}

// Void implements billing.Ledger.
func (l *Ledger) Void(ctx context.Context, p billing.Payment) (billing.Payment, error) {
	var out paymentRow
	err := l.void.GetContext(ctx, &out, p.ID, p.UserID, int64(p.Amount))
	switch {
	case errors.Is(err, sql.ErrNoRows): // the id has an outcome already
		return l.storedPayment(ctx, p)
	case err != nil:
		return billing.Payment{}, database.Wrap("void payment", err)
	}
	return outcome(fromPaymentRow(out))
}

// storedPayment returns the first outcome of a repeated payment id.
func (l *Ledger) storedPayment(ctx context.Context, p billing.Payment) (billing.Payment, error) {
	var out paymentRow
	if err := l.db.GetContext(ctx, &out, `SELECT payment_id, user_id, amount, status, balance FROM payments WHERE payment_id = $1`, p.ID); err != nil {
		return billing.Payment{}, database.Wrap("get payment", err)
	}
	stored := fromPaymentRow(out)
	if !stored.Matches(p.UserID, p.Amount) {
		return billing.Payment{}, billing.PaymentMismatch(p.ID)
	}
	return outcome(stored)
}

// outcome returns a stored payment as callers see it: account_not_found is the error
// not_found, the same answer the id's first call got.
func outcome(p billing.Payment) (billing.Payment, error) {
	if p.Status == payments.AccountNotFound {
		return billing.Payment{}, billing.NoAccount(p.UserID)
	}
	return p, nil
}

// Entries implements billing.Ledger.
func (l *Ledger) Entries(ctx context.Context, userID uuid.UUID, limit int) ([]billing.Entry, error) {
	if _, err := l.Account(ctx, userID); err != nil {
		return nil, err
	}
	var rows []entryRow
	if err := l.db.SelectContext(ctx, &rows, `SELECT id, user_id, type, amount, balance_after, operation_id, created_at
		FROM entries WHERE user_id = $1 ORDER BY id DESC LIMIT $2`, userID, limit); err != nil {
		return nil, database.Wrap("list entries", err)
	}
	entries := make([]billing.Entry, len(rows))
	for i, r := range rows {
		entries[i] = fromEntryRow(r)
	}
	return entries, nil
}
