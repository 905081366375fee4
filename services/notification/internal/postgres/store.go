// Package postgres stores notifications in PostgreSQL.
package postgres

import (
	"context"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/order-system/order-system/pkg/database"
	"github.com/order-system/order-system/services/notification/internal/notification"
)

// Store implements notification.Store.
type Store struct {
	db      *sqlx.DB
	saveAll *database.Stmt
}

var _ notification.Store = (*Store)(nil)

// saveAllSQL inserts a batch as one statement, hence one transaction and one commit. The
// unique event id makes a redelivered event a no-op, also within one batch.
const saveAllSQL = `INSERT INTO notifications (id, event_id, user_id, order_id, email, type, message)
	SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::text[], $6::text[], $7::text[])
	ON CONFLICT (event_id) DO NOTHING
	RETURNING event_id`

// NewStore returns the store over db.
func NewStore(db *sqlx.DB) *Store {
	return &Store{db: db, saveAll: database.Prepare(db, saveAllSQL)}
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

// Save implements notification.Store.
func (s *Store) Save(ctx context.Context, n notification.Notification) (bool, error) {
	saved, err := s.SaveAll(ctx, []notification.Notification{n})
	return saved[n.EventID], err
}

// SaveAll implements notification.Store.
func (s *Store) SaveAll(ctx context.Context, ns []notification.Notification) (map[uuid.UUID]bool, error) {
	cols := make([][]string, 7)
	for _, n := range ns {
		for i, v := range []string{n.ID.String(), n.EventID.String(), n.UserID.String(), n.OrderID.String(), n.Email, string(n.Type), n.Message} {
			cols[i] = append(cols[i], v)
		}
	}
	args := make([]any, len(cols))
	for i, c := range cols {
		args[i] = pq.Array(c)
	}
	var stored []uuid.UUID
	if err := s.saveAll.SelectContext(ctx, &stored, args...); err != nil {
		return nil, database.Wrap("save notifications", err)
	}
	saved := make(map[uuid.UUID]bool, len(stored))
	for _, id := range stored {
		saved[id] = true
	}
	return saved, nil
}

// ListByUser implements notification.Store.
func (s *Store) ListByUser(ctx context.Context, userID uuid.UUID, limit int) ([]notification.Notification, error) {
	var rows []notificationRow
	if err := s.db.SelectContext(ctx, &rows, `SELECT id, event_id, user_id, order_id, email, type, message, created_at
		FROM notifications WHERE user_id = $1 ORDER BY created_at DESC, id LIMIT $2`, userID, limit); err != nil {
		return nil, database.Wrap("list notifications", err)
	}
	out := make([]notification.Notification, len(rows))
	for i, r := range rows {
		out[i] = fromNotificationRow(r)
	}
	return out, nil
}
