// Package user is the user domain: registering users and opening their billing accounts.
package user

import (
	"context"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"github.com/order-system/order-system/api/events"
	"github.com/order-system/order-system/pkg/idempotency"
)

// User is a customer.
type User struct {
	ID        uuid.UUID
	Name      string
	Email     string
	CreatedAt time.Time
}

// CreatedEvent announces a new user; billing opens the account from it if the direct call
// did not get through.
func (u User) CreatedEvent(now time.Time) (events.Envelope, error) {
	return events.New("order-system/user", events.UserCreated, events.UserCreatedData{
		UserID: u.ID.String(), Name: u.Name, Email: u.Email,
	}, now)
}

// Repository stores users.
type Repository interface {
	// Create stores the user with its user.created event, atomically, unless a user with
	// the same id exists; it returns the stored user either way. With a present
	// Idempotency-Key (pkg/idempotency), the user's id is the key's derived id unless u has
	// one (a user bound to a signed-in identity), and the key
	// is taken and the answer stored in the same transaction; the key's
	// *idempotency.Refusal comes back, with nothing written, when it cannot be taken.
	Create(ctx context.Context, u User, key idempotency.Key[User]) (User, error)
	// Get returns a user; not_found if there is none.
	Get(ctx context.Context, id uuid.UUID) (User, error)
}

// Accounts opens billing accounts.
type Accounts interface {
	// Open opens the user's account; opening an open account succeeds. Errors: unavailable.
	Open(ctx context.Context, userID uuid.UUID) error
}

// Service registers users.
type Service struct {
	repo     Repository
	accounts Accounts
	log      *slog.Logger
}

// NewService returns the user service.
func NewService(repo Repository, accounts Accounts, log *slog.Logger) *Service {
	return &Service{repo: repo, accounts: accounts, log: log}
}

// Register stores the user and opens their billing account, so that the balance can be read
// as soon as Register returns. If billing cannot be reached the user still exists: the
// user.created event opens the account as soon as billing consumes it.
func (s *Service) Register(ctx context.Context, u User, key idempotency.Key[User]) (User, error) {
	stored, err := s.repo.Create(ctx, u, key)
	if err != nil {
		return User{}, err
	}
	s.log.InfoContext(ctx, "user registered", "user_id", stored.ID)
	if err := s.accounts.Open(ctx, stored.ID); err != nil {
		s.log.WarnContext(ctx, "account not opened directly, the user.created event will open it", "user_id", stored.ID, "err", err)
	}
	return stored, nil
}

// Get returns a user.
func (s *Service) Get(ctx context.Context, id uuid.UUID) (User, error) {
	return s.repo.Get(ctx, id)
}
