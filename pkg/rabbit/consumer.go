package rabbit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	amqp "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/otel/trace"
)

// ErrPoison marks a message that can never be processed (bad JSON, unknown type). The
// consumer rejects it without requeue, so it goes straight to the dead-letter queue.
var ErrPoison = errors.New("poison message")

// Handler processes one delivery. It returns nil once the effect is committed, an error
// wrapping ErrPoison for a message that can never succeed, or any other error for a transient
// failure (database down), which is retried in place.
type Handler func(ctx context.Context, d amqp.Delivery) error

// BatchHandler processes the deliveries that arrived together, typically in one database
// transaction, so that a busy queue costs one commit per batch instead of one per message.
// It returns one error per delivery: nil once its effect is committed, or an error wrapping
// ErrPoison for a message that can never succeed. A non-nil batch error is a transient
// failure (database down): the whole batch is retried in place, so effects must be
// idempotent (deduplicated by event id).
type BatchHandler func(ctx context.Context, ds []amqp.Delivery) (errs []error, err error)

// OneByOne adapts a Handler to a BatchHandler that calls it for each delivery in turn.
func OneByOne(h Handler) BatchHandler {
	return func(ctx context.Context, ds []amqp.Delivery) ([]error, error) {
		errs := make([]error, len(ds))
		for i, d := range ds {
			err := h(ctx, d)
			if err != nil && !errors.Is(err, ErrPoison) {
				return nil, err
			}
			errs[i] = err
		}
		return errs, nil
	}
}

// Consumer consumes one queue with manual acks and reconnects forever.
type Consumer struct {
	url      string
	queue    Queue
	handler  BatchHandler
	log      *slog.Logger
	prefetch int
	ready    atomic.Bool
	outcomes *prometheus.CounterVec
}

// NewConsumer returns a consumer of q that passes the deliveries arriving together, up to
// the prefetch count, to h as one batch; its metrics are registered on reg.
func NewConsumer(url string, q Queue, h BatchHandler, log *slog.Logger, reg prometheus.Registerer) *Consumer {
	outcomes := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "events_consumed_total", Help: "Deliveries handled, by queue and outcome (acked, dead_lettered, retried).",
	}, []string{"queue", "outcome"})
	reg.MustRegister(outcomes)
	// The prefetch bounds a batch. Larger batches save little once a batch takes a few
	// milliseconds, while every unacked message returns to the queue, one delivery attempt
	// spent, each time the process dies.
	return &Consumer{url: url, queue: q, handler: h, log: log.With("queue", q.Name), prefetch: 64, outcomes: outcomes}
}

// Ready reports whether the consumer currently has a live subscription.
func (c *Consumer) Ready() bool { return c.ready.Load() }

// Run consumes until ctx ends, reconnecting with jittered backoff after every failure and
// declaring the topology again each time. Unacked deliveries of a lost channel return to the
// queue on the broker's side; they are never acked on a later channel.
func (c *Consumer) Run(ctx context.Context) error {
	for attempt := 0; ; attempt++ {
		start := time.Now()
		err := c.session(ctx)
		c.ready.Store(false)
		if ctx.Err() != nil {
			return nil
		}
		if time.Since(start) > 30*time.Second {
			attempt = 0 // a long healthy session: reconnect quickly
		}
		wait := Backoff(attempt)
		c.log.WarnContext(ctx, "consumer disconnected", "err", err, "retry_in", wait.String())
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

func (c *Consumer) session(ctx context.Context) error {
	conn, err := amqp.DialConfig(c.url, amqp.Config{Dial: amqp.DefaultDial(dialTimeout), Properties: amqp.Table{"connection_name": "consumer " + c.queue.Name}})
	if err != nil {
		return fmt.Errorf("dial broker: %w", err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("open channel: %w", err)
	}
	if err := Declare(ch, c.queue); err != nil {
		return err
	}
	if err := ch.Qos(c.prefetch, 0, false); err != nil {
		return fmt.Errorf("set qos: %w", err)
	}
	deliveries, err := ch.ConsumeWithContext(ctx, c.queue.Name, "", false, false, false, false, nil)
	if err != nil {
		return fmt.Errorf("consume: %w", err)
	}
	// The subscription's context ends when the connection or the channel closes or the
	// broker cancels the consumer, so that a batch retried in place during a database outage
	// is given up at once: its deliveries are back in the queue, and acking them later on
	// this channel is impossible.
	sub, lost := context.WithCancelCause(ctx)
	defer lost(nil)
	go watch(sub, lost, conn.NotifyClose(make(chan *amqp.Error, 1)), ch.NotifyClose(make(chan *amqp.Error, 1)), ch.NotifyCancel(make(chan string, 1)))
	c.ready.Store(true)
	c.log.InfoContext(ctx, "consumer subscribed")
	for {
		select {
		case <-sub.Done():
			if ctx.Err() != nil {
				return nil
			}
			return context.Cause(sub)
		case d, ok := <-deliveries:
			if !ok {
				return errors.New("delivery channel closed")
			}
			if ctx.Err() != nil {
				return nil // stopping: leave it unacked, the broker redelivers it
			}
			if err := c.process(sub, gather(d, deliveries, c.prefetch)); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
		}
	}
}

// watch ends the subscription's context when the connection or the channel closes or the
// consumer is cancelled, saying which.
func watch(sub context.Context, lost context.CancelCauseFunc, connClosed, chClosed <-chan *amqp.Error, cancelled <-chan string) {
	select {
	case <-sub.Done():
	case err := <-connClosed:
		lost(fmt.Errorf("connection closed: %v", err))
	case err := <-chClosed:
		lost(fmt.Errorf("channel closed: %v", err))
	case <-cancelled:
		lost(errors.New("consumer cancelled by the broker"))
	}
}

// gather returns first and the deliveries that follow it within linger, up to limit in all.
// The client library hands deliveries over one at a time through an unbuffered channel, so
// "whatever is waiting" is almost always nothing: a short linger is what makes a batch.
func gather(first amqp.Delivery, deliveries <-chan amqp.Delivery, limit int) []amqp.Delivery {
	batch := []amqp.Delivery{first}
	timeout := time.NewTimer(linger)
	defer timeout.Stop()
	for len(batch) < limit {
		select {
		case d, ok := <-deliveries:
			if !ok {
				return batch // the session loop sees the closed channel next
			}
			batch = append(batch, d)
		case <-timeout.C:
			return batch
		}
	}
	return batch
}

// linger is how long a batch waits for more deliveries after its first: a few milliseconds
// of latency for one commit per batch instead of one per message.
const linger = 2 * time.Millisecond

// process handles a batch, retrying transient failures in place so that a database outage
// does not burn the delivery limit and dead-letter good messages. ctx is the subscription's:
// once the channel is gone the retries stop and the session starts over. Each delivery's
// consumer span covers every attempt and the ack.
func (c *Consumer) process(ctx context.Context, batch []amqp.Delivery) (err error) {
	handlerCtx, spans := startProcess(ctx, c.queue.Name, batch)
	var errs []error
	defer func() { endProcess(spans, errs, err) }()
	for attempt := 0; ; attempt++ {
		errs, err = c.handler(handlerCtx, batch)
		if err == nil && len(errs) != len(batch) {
			return fmt.Errorf("handler answered %d outcomes for %d deliveries", len(errs), len(batch))
		}
		if err == nil {
			return c.ackOrDeadLetter(ctx, batch, errs, spans)
		}
		c.outcomes.WithLabelValues(c.queue.Name, "retried").Add(float64(len(batch)))
		wait := Backoff(attempt)
		c.log.WarnContext(handlerCtx, "message processing failed, retrying", "messages", len(batch), "first_message_id", batch[0].MessageId, "err", err, "retry_in", wait.String())
		select {
		case <-ctx.Done():
			// Unacked: the broker redelivers them once the channel closes. The error ends
			// the session, so no later multiple ack can cover them.
			return context.Cause(ctx)
		case <-time.After(wait):
		}
	}
}

// ackOrDeadLetter dead-letters the poison messages of a processed batch and acks the rest: with one
// multiple ack when there is no poison, since every earlier delivery of this channel has
// been settled already. A dead-lettered message is logged in its own span's trace.
func (c *Consumer) ackOrDeadLetter(ctx context.Context, batch []amqp.Delivery, errs []error, spans []trace.Span) error {
	poisoned := 0
	for i, d := range batch {
		if errs[i] == nil {
			continue
		}
		poisoned++
		c.log.ErrorContext(trace.ContextWithSpan(ctx, spans[i]), "message dead-lettered", "message_id", d.MessageId, "routing_key", d.RoutingKey, "reason", errs[i].Error())
		if err := d.Nack(false, false); err != nil {
			return fmt.Errorf("nack: %w", err)
		}
	}
	if poisoned == 0 {
		if err := batch[len(batch)-1].Ack(true); err != nil {
			return fmt.Errorf("ack: %w", err)
		}
	} else {
		for i, d := range batch {
			if errs[i] != nil {
				continue
			}
			if err := d.Ack(false); err != nil {
				return fmt.Errorf("ack: %w", err)
			}
		}
	}
	c.outcomes.WithLabelValues(c.queue.Name, "acked").Add(float64(len(batch) - poisoned))
	c.outcomes.WithLabelValues(c.queue.Name, "dead_lettered").Add(float64(poisoned))
	return nil
}

// Check is a readiness check: it fails while the consumer has no live subscription.
func (c *Consumer) Check(ctx context.Context) error {
	if !c.Ready() {
		return errors.New("not subscribed to " + c.queue.Name)
	}
	return nil
}
