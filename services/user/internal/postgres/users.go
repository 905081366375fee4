// Package postgres stores users and their outbox events in PostgreSQL.
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
	"github.com/order-system/order-system/pkg/outbox"
	pg "github.com/order-system/order-system/pkg/postgres"
	"github.com/order-system/order-system/services/user/internal/user"
)

// Users implements user.Repository.
type Users struct {
	db        *sqlx.DB
	published func() // wakes the outbox relay
}

var _ user.Repository = (*Users)(nil)

// NewUsers returns the repository over db; it calls published after committing an event
// (the outbox relay's Wake).
func NewUsers(db *sqlx.DB, published func()) *Users { return &Users{db: db, published: published} }

type userRow struct {
	ID        uuid.UUID `db:"id"`
	Name      string    `db:"name"`
	Email     string    `db:"email"`
	CreatedAt time.Time `db:"created_at"`
}

func fromUserRow(r userRow) user.User {
	return user.User{ID: r.ID, Name: r.Name, Email: r.Email, CreatedAt: r.CreatedAt}
}

// Create implements user.Repository.
func (s *Users) Create(ctx context.Context, u user.User) (user.User, error) {
	var r userRow
	created := false
	err := pg.InTx(ctx, s.db, func(tx *sqlx.Tx) error {
		err := tx.GetContext(ctx, &r, `INSERT INTO users (id, name, email) VALUES ($1, $2, $3)
			ON CONFLICT (id) DO NOTHING RETURNING id, name, email, created_at`, u.ID, u.Name, u.Email)
		if errors.Is(err, sql.ErrNoRows) {
			// A retry of a registration that already committed: its event is out already.
			return tx.GetContext(ctx, &r, `SELECT id, name, email, created_at FROM users WHERE id = $1`, u.ID)
		}
		if err != nil {
			return fmt.Errorf("insert user: %w", err)
		}
		event, err := fromUserRow(r).CreatedEvent(time.Now())
		if err != nil {
			return err
		}
		created = true
		return outbox.Write(ctx, tx, event)
	})
	if err != nil {
		return user.User{}, pg.Wrap("create user", err)
	}
	if created {
		s.published()
	}
	return fromUserRow(r), nil
}

// Get implements user.Repository.
func (s *Users) Get(ctx context.Context, id uuid.UUID) (user.User, error) {
	var r userRow
	err := s.db.GetContext(ctx, &r, `SELECT id, name, email, created_at FROM users WHERE id = $1`, id)
	if errors.Is(err, sql.ErrNoRows) {
		return user.User{}, apperr.New(apperr.NotFound, "user %s not found", id)
	}
	if err != nil {
		return user.User{}, pg.Wrap("get user", err)
	}
	return fromUserRow(r), nil
}
