// Package consumer handles the events billing subscribes to: user.created opens the user's
// account, the safety net for when the user service's direct call did not get through.
package consumer

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/order-system/order-system/api/events"
	"github.com/order-system/order-system/pkg/rabbit"
	"github.com/order-system/order-system/services/billing/internal/billing"
)

// Queue is billing's queue: every user.* event.
func Queue() rabbit.Queue {
	return rabbit.Queue{Name: "billing.users", Exchange: events.Exchange, Bindings: []string{"user.*"}, DeliveryLimit: 5}
}

// AccountOpener opens accounts idempotently.
type AccountOpener interface {
	OpenAccount(ctx context.Context, userID uuid.UUID) (billing.Account, bool, error)
}

var _ AccountOpener = (*billing.Service)(nil)

// Handler returns the delivery handler. Opening an account twice is a no-op, so redelivered
// events need no separate deduplication.
func Handler(accounts AccountOpener) rabbit.Handler {
	return func(ctx context.Context, d amqp.Delivery) error {
		var data events.UserCreatedData
		env, err := events.Decode(d.Body, &data)
		if err != nil {
			return fmt.Errorf("%w: %v", rabbit.ErrPoison, err)
		}
		if env.Type != events.UserCreated {
			return nil // another user.* event billing has no use for
		}
		userID, err := uuid.Parse(data.UserID)
		if err != nil {
			return fmt.Errorf("%w: user id %q: %v", rabbit.ErrPoison, data.UserID, err)
		}
		if _, _, err := accounts.OpenAccount(ctx, userID); err != nil {
			return fmt.Errorf("open account: %w", err)
		}
		return nil
	}
}
