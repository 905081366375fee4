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
	"github.com/order-system/order-system/pkg/database"
	"github.com/order-system/order-system/pkg/idempotency"
	"github.com/order-system/order-system/pkg/outbox"
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

// userReturning is what a statement storing a user returns: the stored user, and whether the
// statement created it. DO UPDATE with a no-op instead of DO NOTHING makes RETURNING yield
// an existing row, one a concurrent transaction committed included (a SELECT in the same
// statement would not see it); xmax is 0 only on a row this statement inserted.
const userReturning = `ON CONFLICT (id) DO UPDATE SET id = excluded.id
	RETURNING id, name, email, created_at, (xmax = 0) AS created`

// createKeyedSQL stores a user for a request with an Idempotency-Key, whose key it takes in
// the same statement; it returns the user, and whether this statement created it, if it
// took the key, and no row otherwise. The user a retry finds was stored by the request that
// held the key before, or, for a signed-in caller, by another registration of the same
// identity.
var createKeyedSQL = database.Named(`WITH ` + idempotency.TakeCTE + `
	INSERT INTO users (id, name, email) SELECT @id, @name, @email FROM key_taken
	` + userReturning)

// createdRow is a stored user and whether the statement that returned it created it.
type createdRow struct {
	userRow
	Created bool `db:"created"`
}

// Create implements user.Repository: the user, its event, and with a key the key and the
// answer, in one transaction.
func (s *Users) Create(ctx context.Context, u user.User, key idempotency.Key[user.User]) (user.User, error) {
	var created bool
	stored, err := idempotency.InTx(ctx, s.db, key, func(tx *sqlx.Tx) (user.User, error) {
		var r createdRow
		var err error
		if key.Present() {
			err = key.Take(ctx, tx, func(id uuid.UUID, k database.Params) error {
				if u.ID != uuid.Nil {
					id = u.ID // bound to a signed-in identity: its id, whatever the key
				}
				args, err := createKeyedSQL.Args(k.With(database.Params{"id": id, "name": u.Name, "email": u.Email}))
				if err != nil {
					return err
				}
				return tx.GetContext(ctx, &r, createKeyedSQL.SQL(), args...)
			})
		} else {
			r, err = insert(ctx, tx, u)
		}
		if err != nil {
			return user.User{}, err
		}
		stored := fromUserRow(r.userRow)
		if created = r.Created; created {
			event, err := stored.CreatedEvent(time.Now())
			if err != nil {
				return user.User{}, err
			}
			if err := outbox.Write(ctx, tx, event); err != nil {
				return user.User{}, err
			}
		}
		return stored, nil
	})
	if err != nil {
		return user.User{}, database.Wrap("create user", err)
	}
	if created {
		s.published()
	}
	return stored, nil
}

// insert stores u unless a user with its id exists (a retry of a registration that already
// committed, whose event is out already), and returns the stored user.
func insert(ctx context.Context, tx *sqlx.Tx, u user.User) (createdRow, error) {
	var r createdRow
	err := tx.GetContext(ctx, &r, `INSERT INTO users (id, name, email) VALUES ($1, $2, $3) `+userReturning, u.ID, u.Name, u.Email)
	if err != nil {
		return createdRow{}, fmt.Errorf("insert user: %w", err)
	}
	return r, nil
}

// Get implements user.Repository.
func (s *Users) Get(ctx context.Context, id uuid.UUID) (user.User, error) {
	var r userRow
	err := s.db.GetContext(ctx, &r, `SELECT id, name, email, created_at FROM users WHERE id = $1`, id)
	if errors.Is(err, sql.ErrNoRows) {
		return user.User{}, apperr.New(apperr.NotFound, "user %s not found", id)
	}
	if err != nil {
		return user.User{}, database.Wrap("get user", err)
	}
	return fromUserRow(r), nil
}
