package rabbit

import (
	"context"
	"errors"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/order-system/order-system/pkg/outbox"
)

// OutboxPublisher publishes the outbox relay's messages (outbox.Publisher) with a Publisher:
// an event's topic is its routing key, its id the message id, and the request id goes in
// the x-request-id header.
type OutboxPublisher struct {
	*Publisher
}

var _ outbox.Publisher = OutboxPublisher{}

// Publish implements outbox.Publisher.
func (p OutboxPublisher) Publish(ctx context.Context, msgs []outbox.Message) error {
	out := make([]Message, len(msgs))
	for i, m := range msgs {
		out[i] = Message{RoutingKey: m.Topic, MessageID: m.ID, Body: m.Body, Headers: amqp.Table{"x-request-id": m.RequestID}, Trace: m.Trace}
	}
	err := p.Publisher.Publish(ctx, out)
	var returned *UnroutableError
	if errors.As(err, &returned) {
		return &outbox.UnroutableError{MessageIDs: returned.MessageIDs, Err: err}
	}
	return err
}
