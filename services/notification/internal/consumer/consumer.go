// Package consumer turns order events from the broker into stored notifications.
package consumer

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/order-system/order-system/pkg/apperr"
	"github.com/order-system/order-system/pkg/events"
	"github.com/order-system/order-system/pkg/logger"
	"github.com/order-system/order-system/pkg/rabbit"
	"github.com/order-system/order-system/services/notification/internal/notification"
)

// Queue is the notification service's queue: every order.* event.
func Queue() rabbit.Queue {
	return rabbit.Queue{Name: "notification.orders", Exchange: events.Exchange, Bindings: []string{"order.*"}, DeliveryLimit: 5}
}

// Handler returns the delivery handler: it stores one notification per event; the store's
// unique event id turns a redelivery into a no-op, so the message is acked either way.
func Handler(store notification.Store, lang string, log *slog.Logger) rabbit.Handler {
	return func(ctx context.Context, d amqp.Delivery) error {
		if id, ok := d.Headers["x-request-id"].(string); ok && id != "" {
			ctx = logger.WithRequestID(ctx, id)
		}
		o, err := decode(d.Body)
		if err != nil {
			return fmt.Errorf("%w: %v", rabbit.ErrPoison, err)
		}
		saved, err := store.Save(ctx, notification.New(o, lang))
		if apperr.Is(err, apperr.Invalid) {
			// The database refuses the data itself: retrying would block the queue forever.
			return fmt.Errorf("%w: %v", rabbit.ErrPoison, err)
		}
		if err != nil {
			return err
		}
		log.InfoContext(ctx, "notification stored", "order_id", o.OrderID, "event_id", o.EventID, "duplicate", !saved)
		return nil
	}
}

func decode(body []byte) (notification.FinishedOrder, error) {
	var data events.OrderFinishedData
	env, err := events.Decode(body, &data)
	if err != nil {
		return notification.FinishedOrder{}, err
	}
	if env.Type != events.OrderCompleted && env.Type != events.OrderFailed {
		return notification.FinishedOrder{}, fmt.Errorf("unknown event type %q", env.Type)
	}
	o := notification.FinishedOrder{Email: data.Email, Price: data.Price, Completed: env.Type == events.OrderCompleted, Reason: data.Reason}
	for _, f := range []struct {
		dst  *uuid.UUID
		name string
		src  string
	}{{&o.EventID, "id", env.ID}, {&o.OrderID, "orderId", data.OrderID}, {&o.UserID, "userId", data.UserID}} {
		if *f.dst, err = uuid.Parse(f.src); err != nil {
			return notification.FinishedOrder{}, fmt.Errorf("%s %q is not a UUID", f.name, f.src)
		}
	}
	return o, nil
}
