// Package postgres stores orders and their outbox events in PostgreSQL.
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
	"github.com/order-system/order-system/pkg/database"
	"github.com/order-system/order-system/pkg/idempotency"
	"github.com/order-system/order-system/pkg/money"
	"github.com/order-system/order-system/pkg/outbox"
	"github.com/order-system/order-system/services/order/internal/order"
)

// Orders implements order.Repository.
type Orders struct {
	db *sqlx.DB
	// grace keeps the reconciler off a new order while the request that placed it is still
	// calling billing.
	grace time.Duration
	// payWindow is how long after it is stored an order may be paid (order.PayWindow).
	payWindow    time.Duration
	published    func() // wakes the outbox relay
	create       *database.NamedStmt
	createKeyed  *database.NamedStmt
	finish       *database.NamedStmt
	finishKeyed  *database.NamedStmt
	get          *database.Stmt
	startAttempt *database.Stmt
}

var _ order.Repository = (*Orders)(nil)

// NewOrders returns the repository over db; it calls published after committing an event
// (the outbox relay's Wake). A new order is first due for the reconciler after grace, which
// must outlast the placing request's billing call (order.ReconcilerConfig.Hold). Orders may
// be paid for order.PayWindow of the default key TTL; WithPayWindow sets another window.
func NewOrders(db *sqlx.DB, published func(), grace time.Duration) *Orders {
	return &Orders{
		db:           db,
		grace:        grace,
		payWindow:    order.PayWindow(idempotency.DefaultTTL),
		published:    published,
		create:       database.PrepareNamed(db, createSQL),
		createKeyed:  database.PrepareNamed(db, createKeyedSQL),
		finish:       database.PrepareNamed(db, finishSQL),
		finishKeyed:  database.PrepareNamed(db, finishKeyedSQL),
		get:          database.Prepare(db, `SELECT `+orderColumns+` FROM orders WHERE id = $1`),
		startAttempt: database.Prepare(db, startAttemptSQL),
	}
}

// WithPayWindow sets how long after it is stored an order may be paid, and returns s.
func (s *Orders) WithPayWindow(d time.Duration) *Orders {
	s.payWindow = d
	return s
}

type orderRow struct {
	ID             uuid.UUID `db:"id"`
	UserID         uuid.UUID `db:"user_id"`
	Email          string    `db:"email"`
	Price          int64     `db:"price"`
	Status         string    `db:"status"`
	FailureReason  string    `db:"failure_reason"`
	FailureMessage string    `db:"failure_message"`
	Attempts       int       `db:"attempts"`
	NextAttemptAt  time.Time `db:"next_attempt_at"`
	PayBy          time.Time `db:"pay_by"`
	CreatedAt      time.Time `db:"created_at"`
}

const orderColumns = `id, user_id, email, price, status, failure_reason, failure_message, attempts, next_attempt_at, pay_by, created_at`

// createSQL stores a pending order. DO UPDATE with a no-op instead of DO NOTHING makes
// RETURNING yield the existing row of a retried order in the same round trip. The pay
// deadline counts from the same now() as the expiry of a key taken in the statement.
var createSQL = database.Named(`INSERT INTO orders (id, user_id, email, price, status, next_attempt_at, pay_by)
	VALUES (@id, @user_id, @email, @price, @status, now() + @grace::interval, now() + @pay_window::interval)
	ON CONFLICT (id) DO UPDATE SET id = excluded.id
	RETURNING ` + orderColumns)

// createKeyedSQL is createSQL that takes an Idempotency-Key in the same statement: the order
// is written only if the key was taken, and no row comes back otherwise.
var createKeyedSQL = database.Named(`WITH ` + idempotency.TakeCTE + `
	INSERT INTO orders (id, user_id, email, price, status, next_attempt_at, pay_by)
	SELECT @id, @user_id, @email, @price, @status, now() + @grace::interval, now() + @pay_window::interval FROM key_taken
	ON CONFLICT (id) DO UPDATE SET id = excluded.id
	RETURNING ` + orderColumns)

// finishCTE stores the final status with its outbox event, guarded by status = 'pending';
// event yields a row if it finished the order. before, if not empty, is a WITH query to run
// first, and cond a further condition on finishing.
func finishCTE(before, cond string) string {
	return `
		WITH ` + before + ` finished AS (
			UPDATE orders SET status = @status, failure_reason = @failure_reason, failure_message = @failure_message, updated_at = now()
			WHERE id = @id AND status = 'pending' ` + cond + `
			RETURNING id
		), event AS (
			` + outbox.InsertSelect("finished") + `
			RETURNING id
		)`
}

// finishSQL finishes an order in one statement; it returns how many orders it finished (0
// or 1).
var finishSQL = database.Named(finishCTE("", "") + `
		SELECT count(*) FROM event`)

// finishKeyedSQL is finishSQL that also stores the answer under the request's
// Idempotency-Key, if it finished the order: the order, its event and the answer commit
// together, or none of them. It locks the key's record before the order's row, the order in
// which createKeyedSQL takes them, so that a request finishing late (past its lease) and a
// retry taking its key over queue up behind each other instead of deadlocking.
var finishKeyedSQL = database.Named(finishCTE(`key_locked AS MATERIALIZED (
			SELECT FROM idempotency_keys WHERE scope = @key_scope AND key = @key FOR UPDATE
		),`, "AND EXISTS (SELECT FROM key_locked)") + `, ` + idempotency.StoreCTE("event") + `
		SELECT (SELECT count(*) FROM event) AS finished, (SELECT count(*) FROM key_stored) AS stored`)

// startAttemptSQL counts a reconciler's call, provided its hold on the order is still the
// latest one and lasts margin more on the database's clock, whichever replica asks. Every
// hold sets next_attempt_at to at least the end of the one before plus a positive backoff,
// so an unchanged value means no other hold came in between.
const startAttemptSQL = `UPDATE orders SET attempts = $2
	WHERE id = $1 AND status = 'pending' AND attempts = $2 - 1 AND next_attempt_at = $3 AND next_attempt_at >= now() + $4::interval`

func fromOrderRow(r orderRow) order.Order {
	return order.Order{ID: r.ID, UserID: r.UserID, Email: r.Email, Price: money.Amount(r.Price), Status: order.Status(r.Status),
		FailureReason: r.FailureReason, FailureMessage: r.FailureMessage, Attempts: r.Attempts, NextAttemptAt: r.NextAttemptAt,
		PayBy: r.PayBy, CreatedAt: r.CreatedAt}
}

// Create implements order.Repository.
func (s *Orders) Create(ctx context.Context, o order.Order, key idempotency.Key[order.Order]) (order.Order, error) {
	var r orderRow
	params := database.Params{"id": o.ID, "user_id": o.UserID, "email": o.Email, "price": int64(o.Price), "status": string(o.Status),
		"grace": database.Interval(s.grace), "pay_window": database.Interval(s.payWindow)}
	var err error
	if key.Present() {
		err = key.Take(ctx, s.db, func(id uuid.UUID, k database.Params) error {
			params["id"] = id
			return s.createKeyed.GetContext(ctx, &r, params.With(k))
		})
	} else {
		err = s.create.GetContext(ctx, &r, params)
	}
	if err != nil {
		return order.Order{}, database.Wrap("create order", err)
	}
	return fromOrderRow(r), nil
}

// Get implements order.Repository.
func (s *Orders) Get(ctx context.Context, id uuid.UUID) (order.Order, error) {
	var r orderRow
	err := s.get.GetContext(ctx, &r, id)
	if errors.Is(err, sql.ErrNoRows) {
		return order.Order{}, apperr.New(apperr.NotFound, "order %s not found", id)
	}
	if err != nil {
		return order.Order{}, database.Wrap("get order", err)
	}
	return fromOrderRow(r), nil
}

// Finish implements order.Repository. The status change, the event and a keyed request's
// answer are one statement, hence one transaction and one round trip; the pending condition
// makes the request that placed the order and the reconciler finish it at most once between
// them.
func (s *Orders) Finish(ctx context.Context, o order.Order, key idempotency.Key[order.Order]) (order.Order, error) {
	event, err := o.FinishedEvent(time.Now())
	if err != nil {
		return order.Order{}, err
	}
	row, err := outbox.NewRow(ctx, event)
	if err != nil {
		return order.Order{}, err
	}
	params := database.Params{"id": o.ID, "status": string(o.Status), "failure_reason": o.FailureReason, "failure_message": o.FailureMessage}.With(row.Params())
	answer, keyed, err := key.Answer(o)
	if err != nil {
		return order.Order{}, err
	}
	var res struct {
		Finished int `db:"finished"`
		Stored   int `db:"stored"`
	}
	if keyed {
		err = s.finishKeyed.GetContext(ctx, &res, params.With(answer))
	} else {
		err = s.finish.GetContext(ctx, &res.Finished, params)
	}
	if err != nil {
		return order.Order{}, database.Wrap("finish order", err)
	}
	if res.Stored == 1 {
		key.MarkStored()
	}
	if res.Finished == 0 {
		return s.Get(ctx, o.ID)
	}
	s.published()
	return o, nil
}

// HoldDue implements order.Repository.
func (s *Orders) HoldDue(ctx context.Context, limit int, backoff func(attempts int) time.Duration) ([]order.Order, time.Time, error) {
	var rows []struct {
		orderRow
		Now time.Time `db:"now"`
	}
	err := database.InTx(ctx, s.db, func(tx *sqlx.Tx) error {
		if err := tx.SelectContext(ctx, &rows, `SELECT `+orderColumns+`, now() FROM orders
			WHERE status = 'pending' AND next_attempt_at <= now()
			ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED`, limit); err != nil {
			return fmt.Errorf("select pending orders: %w", err)
		}
		for i := range rows {
			// The call about to be made; StartAttempt counts it once it is made.
			rows[i].Attempts++
			wait := database.Interval(backoff(rows[i].Attempts))
			if err := tx.GetContext(ctx, &rows[i].NextAttemptAt, `UPDATE orders SET next_attempt_at = now() + $2::interval WHERE id = $1
				RETURNING next_attempt_at`, rows[i].ID, wait); err != nil {
				return fmt.Errorf("hold pending order: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, time.Time{}, database.Wrap("hold due orders", err)
	}
	if len(rows) == 0 {
		return nil, time.Time{}, nil
	}
	orders := make([]order.Order, len(rows))
	for i, r := range rows {
		orders[i] = fromOrderRow(r.orderRow)
	}
	return orders, rows[0].Now, nil
}

// StartAttempt implements order.Repository.
func (s *Orders) StartAttempt(ctx context.Context, o order.Order, margin time.Duration) (bool, error) {
	res, err := s.startAttempt.ExecContext(ctx, o.ID, o.Attempts, o.NextAttemptAt, database.Interval(margin))
	if err != nil {
		return false, database.Wrap("start reconcile attempt", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, database.Wrap("start reconcile attempt", err)
	}
	return n == 1, nil
}
