// Package rabbit holds the RabbitMQ plumbing: topology, a confirming publisher and a
// supervised consumer that reconnects forever. It knows nothing about the events it carries.
//
// Only real failures reach a queue's dead-letter queue: a message the handler calls poison,
// and a message the consumer never manages to answer for (it crashes or hangs on it) once the
// queue's delivery limit is spent. Transient failures are retried in place, and a message
// that lost channels have counted against the limit meanwhile is republished with a fresh
// count (see Consumer).
package rabbit

import (
	"errors"
	"fmt"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Queue describes a consumer's quorum queue and its dead-letter queue.
type Queue struct {
	Name     string   // e.g. "notification.orders"
	Exchange string   // topic exchange to bind to
	Bindings []string // routing key patterns, e.g. "order.*"
	// DeliveryLimit is how many times a message may return to the queue unacked and still be
	// delivered again: its next return dead-letters it, so it is delivered at most
	// DeliveryLimit+1 times. RabbitMQ 3.10 counts a return because the consumer's channel or
	// connection closed like a nack with requeue, but the consumer republishes a counted
	// message with a fresh count whenever its handler answers a transient failure for it, so
	// in effect the limit ends only crash loops. RabbitMQ 3.10 sets no limit by default,
	// so a message that kills its consumer would loop forever. The broker refuses to declare
	// an existing queue with another limit: changing it needs a new queue.
	DeliveryLimit int
}

// DeadLetterExchange is the exchange a queue's rejected messages go to.
func (q Queue) DeadLetterExchange() string { return q.Exchange + ".dlx" }

// DeadLetterQueue is the queue that keeps a queue's dead letters for inspection.
func (q Queue) DeadLetterQueue() string { return q.Name + ".dlq" }

// DeclareExchange declares the durable topic exchange events are published to.
func DeclareExchange(ch *amqp.Channel, name string) error {
	if err := ch.ExchangeDeclare(name, amqp.ExchangeTopic, true, false, false, false, nil); err != nil {
		return fmt.Errorf("declare exchange %s: %w", name, err)
	}
	return nil
}

// Declare declares the exchange, the queue with its bindings, and the dead-letter route.
// Declarations are idempotent, so every reconnect repeats them.
func Declare(ch *amqp.Channel, q Queue) error {
	if err := DeclareExchange(ch, q.Exchange); err != nil {
		return err
	}
	dlx := q.DeadLetterExchange()
	if err := ch.ExchangeDeclare(dlx, amqp.ExchangeTopic, true, false, false, false, nil); err != nil {
		return fmt.Errorf("declare exchange %s: %w", dlx, err)
	}
	if _, err := ch.QueueDeclare(q.DeadLetterQueue(), true, false, false, false, amqp.Table{
		amqp.QueueTypeArg: amqp.QueueTypeQuorum,
	}); err != nil {
		return fmt.Errorf("declare queue %s: %w", q.DeadLetterQueue(), err)
	}
	if err := ch.QueueBind(q.DeadLetterQueue(), q.Name, dlx, false, nil); err != nil {
		return fmt.Errorf("bind %s: %w", q.DeadLetterQueue(), err)
	}
	limit := q.DeliveryLimit
	if limit == 0 {
		limit = 5
	}
	if _, err := ch.QueueDeclare(q.Name, true, false, false, false, amqp.Table{
		amqp.QueueTypeArg:  amqp.QueueTypeQuorum,
		"x-delivery-limit": limit,
		// Dead letters go to a routing key equal to the queue name, so the DLX can serve
		// several queues and each keeps its own DLQ.
		"x-dead-letter-exchange":    dlx,
		"x-dead-letter-routing-key": q.Name,
		// at-least-once dead-lettering needs reject-publish overflow; together they make
		// sure a dead letter is never dropped on its way to the DLQ.
		"x-dead-letter-strategy": "at-least-once",
		amqp.QueueOverflowArg:    amqp.QueueOverflowRejectPublish,
	}); err != nil {
		return fmt.Errorf("declare queue %s: %w", q.Name, err)
	}
	for _, key := range q.Bindings {
		if err := ch.QueueBind(q.Name, key, q.Exchange, false, nil); err != nil {
			return fmt.Errorf("bind %s to %s: %w", q.Name, key, err)
		}
	}
	return nil
}

// exists reports whether q and its dead-letter queue both exist. Each is looked up by a
// passive declaration on a channel of its own: the broker closes the channel on which one
// finds nothing.
func exists(conn *amqp.Connection, q Queue) (bool, error) {
	for _, name := range []string{q.Name, q.DeadLetterQueue()} {
		ch, err := conn.Channel()
		if err != nil {
			return false, fmt.Errorf("open channel: %w", err)
		}
		_, err = ch.QueueDeclarePassive(name, true, false, false, false, nil)
		if amqpErr, ok := errors.AsType[*amqp.Error](err); ok && amqpErr.Code == amqp.NotFound {
			return false, nil
		}
		_ = ch.Close()
		if err != nil {
			return false, fmt.Errorf("look up queue %s: %w", name, err)
		}
	}
	return true, nil
}
