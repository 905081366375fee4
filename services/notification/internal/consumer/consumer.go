// Package consumer turns order events from the broker into stored notifications.
package consumer

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/order-system/order-system/api/events"
	"github.com/order-system/order-system/pkg/apperr"
	"github.com/order-system/order-system/pkg/logger"
	"github.com/order-system/order-system/pkg/rabbit"
	"github.com/order-system/order-system/services/notification/internal/notification"
)

// Queue is the notification service's queue: every order.* event.
func Queue() rabbit.Queue {
	return rabbit.Queue{Name: "notification.orders", Exchange: events.Exchange, Bindings: []string{"order.*"}, DeliveryLimit: 5}
}

// Handler returns the batch handler: it stores one notification per event, all the
// deliveries of a batch in one transaction; the store's unique event id turns a redelivery
// into a no-op, so the message is acked either way.
func Handler(store notification.Store, lang string, log *slog.Logger) rabbit.BatchHandler {
	return func(ctx context.Context, ds []amqp.Delivery) ([]error, error) {
		errs := make([]error, len(ds))
		var (
			ns   []notification.Notification
			from []int // ns[k] comes from ds[from[k]]
		)
		for i, d := range ds {
			o, err := decode(d.Body)
			if err != nil {
				errs[i] = fmt.Errorf("%w: %v", rabbit.ErrPoison, err)
				continue
			}
			ns = append(ns, notification.New(o, lang))
			from = append(from, i)
		}
		if len(ns) == 0 {
			return errs, nil
		}
		saved, err := store.SaveAll(ctx, ns)
		if apperr.Is(err, apperr.Invalid) {
			// The database refuses the data of one of them, and the batch with it: store them
			// one by one to tell the poison from the rest.
			saved = map[uuid.UUID]bool{}
			for k, n := range ns {
				ok, err := store.Save(ctx, n)
				switch {
				case apperr.Is(err, apperr.Invalid):
					// Retrying would block the queue forever.
					errs[from[k]] = fmt.Errorf("%w: %v", rabbit.ErrPoison, err)
				case err != nil:
					return nil, err
				}
				saved[n.EventID] = ok
			}
		} else if err != nil {
			return nil, err
		}
		for k, n := range ns {
			if errs[from[k]] == nil {
				log.InfoContext(requestContext(ctx, ds[from[k]]), "notification stored", "order_id", n.OrderID, "event_id", n.EventID, "duplicate", !saved[n.EventID])
			}
		}
		return errs, nil
	}
}

// requestContext carries the request id of the HTTP request that caused the event, so the
// log line of its notification can be found with the rest of that request's lines.
func requestContext(ctx context.Context, d amqp.Delivery) context.Context {
	if id, ok := d.Headers["x-request-id"].(string); ok && id != "" {
		return logger.WithRequestID(ctx, id)
	}
	return ctx
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
