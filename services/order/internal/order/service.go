package order

import (
	"context"
	"log/slog"
	"time"

	"github.com/google/uuid"
)

// Service places and finishes orders.
type Service struct {
	repo         Repository
	billing      BillingClient
	log          *slog.Logger
	placeTimeout time.Duration
}

// DefaultPlaceTimeout bounds Place: far beyond a healthy request (the billing call has its
// own, shorter timeout), short enough that a request never waits forever on a database
// that stopped answering.
const DefaultPlaceTimeout = 20 * time.Second

// NewService returns the order service.
func NewService(repo Repository, billing BillingClient, log *slog.Logger) *Service {
	return &Service{repo: repo, billing: billing, log: log, placeTimeout: DefaultPlaceTimeout}
}

// WithPlaceTimeout sets the bound on Place and returns s.
func (s *Service) WithPlaceTimeout(d time.Duration) *Service {
	s.placeTimeout = d
	return s
}

// Get returns an order.
func (s *Service) Get(ctx context.Context, id uuid.UUID) (Order, error) {
	return s.repo.Get(ctx, id)
}
