// Package postgres stores notifications in PostgreSQL.
package postgres

import (
	"context"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/order-system/order-system/pkg/postgres"
	"github.com/order-system/order-system/services/notification/internal/notification"
)

// Store implements notification.Store.
type Store struct {
	db   *sqlx.DB
	save *postgres.Stmt
}

var _ notification.Store = (*Store)(nil)

// NewStore returns the store over db.
func NewStore(db *sqlx.DB) *Store {
	return &Store{db: db, save: postgres.Prepare(db, `INSERT INTO notifications (id, event_id, user_id, order_id, email, type, message)
		VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (event_id) DO NOTHING`)}
}

type notificationRow struct {
	ID        uuid.UUID `db:"id"`
	EventID   uuid.UUID `db:"event_id"`
	UserID    uuid.UUID `db:"user_id"`
	OrderID   uuid.UUID `db:"order_id"`
	Email     string    `db:"email"`
	Type      string    `db:"type"`
	Message   string    `db:"message"`
	CreatedAt time.Time `db:"created_at"`
}

func fromNotificationRow(r notificationRow) notification.Notification {
	return notification.Notification{ID: r.ID, EventID: r.EventID, UserID: r.UserID, OrderID: r.OrderID,
		Email: r.Email, Type: notification.Type(r.Type), Message: r.Message, CreatedAt: r.CreatedAt}
}

// Save implements notification.Store. The unique event id makes a redelivered event a no-op.
func (s *Store) Save(ctx context.Context, n notification.Notification) (bool, error) {
	res, err := s.save.ExecContext(ctx, n.ID, n.EventID, n.UserID, n.OrderID, n.Email, string(n.Type), n.Message)
	if err != nil {
		return false, postgres.Wrap("save notification", err)
	}
	rows, err := res.RowsAffected()
	return rows == 1, err
}

// ListByUser implements notification.Store.
func (s *Store) ListByUser(ctx context.Context, userID uuid.UUID, limit int) ([]notification.Notification, error) {
	var rows []notificationRow
	if err := s.db.SelectContext(ctx, &rows, `SELECT id, event_id, user_id, order_id, email, type, message, created_at
		FROM notifications WHERE user_id = $1 ORDER BY created_at DESC, id LIMIT $2`, userID, limit); err != nil {
		return nil, postgres.Wrap("list notifications", err)
	}
	out := make([]notification.Notification, len(rows))
	for i, r := range rows {
		out[i] = fromNotificationRow(r)
	}
	return out, nil
}
