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

	"github.com/order-system/order-system/pkg/retry"
)

// ErrPoison marks a message that can never be processed (bad JSON, unknown type). The
// consumer rejects it without requeue, so it goes straight to the dead-letter queue.
var ErrPoison = errors.New("poison message")

// Handler processes one delivery. It returns nil once the effect is committed, an error
// wrapping ErrPoison for a message that can never succeed, or any other error for a transient
// failure (database down), which is retried in place. A delivery may be a copy the consumer
// republished (see Consumer), so effects must be idempotent (deduplicated by event id).
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
//
// RabbitMQ 3.10 counts every return of a message to its quorum queue against the queue's
// delivery limit, a return because the consumer's channel or connection closed exactly like a
// nack with requeue (TestQuorumQueueCountsEveryReturn). A database outage during which the
// consumer loses its connection or is restarted more often than the limit would thus
// dead-letter good messages it never failed. So when the handler answers a transient failure
// for a delivery whose count is not zero, the consumer republishes a fresh copy of it to the
// queue, with a count of zero, waits for the broker's confirm and acks the original. Only the
// returns of sessions in which the handler never answered for a message, because it crashed or
// hung on it, accumulate: the broker's limit stays the safety net against a message that kills
// its consumer every time. A copy keeps the original's message id, headers and body, and is
// handed to the handler with the original's exchange and routing key and marked redelivered.
//
// Given the nodes of a cluster, the consumer declares a queue that does not exist yet only
// once every node answers (or after membersWait): a quorum queue gets its members when it is
// declared, on the nodes the cluster has then, and RabbitMQ 3.x adds none later on its own.
// Services that start with a broker cluster still forming would otherwise declare their
// queues on its first node alone, and lose them with it.
type Consumer struct {
	nodes    *nodes
	queue    Queue
	handler  BatchHandler
	log      *slog.Logger
	prefetch int
	ready    atomic.Bool
	outcomes *prometheus.CounterVec

	// membersWait bounds the wait for every node before a new queue is declared: past it
	// the queue is declared on the nodes that are there, with a warning (a node that never
	// comes must not keep the service from consuming). waitingSince is when the wait began.
	membersWait  time.Duration
	waitingSince time.Time
}

// defaultMembersWait is how long a new queue waits for every node of the cluster.
const defaultMembersWait = 3 * time.Minute

// NewConsumer returns a consumer of q on the broker at url (or the first that answers of
// several URLs separated by commas, the nodes of a cluster) that passes the deliveries
// arriving together, up to the prefetch count, to h as one batch; its metrics are
// registered on reg.
func NewConsumer(url string, q Queue, h BatchHandler, log *slog.Logger, reg prometheus.Registerer) *Consumer {
	outcomes := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "events_consumed_total", Help: "Deliveries handled, by queue and outcome (acked, dead_lettered, retried, republished).",
	}, []string{"queue", "outcome"})
	reg.MustRegister(outcomes)
	// Every outcome is exported from the start, at 0: a series that only appears with its
	// first increment hides that increment from rate() and increase() (the dead-letter alert
	// and dashboard panel), and a panel of a series that does not exist shows no data.
	for _, outcome := range []string{"acked", "dead_lettered", "retried", "republished"} {
		outcomes.WithLabelValues(q.Name, outcome)
	}
	// The prefetch bounds a batch. Larger batches save little once a batch takes a few
	// milliseconds, while every unacked message returns to the queue, one delivery attempt
	// spent, each time the process dies.
	return &Consumer{nodes: newNodes(url), queue: q, handler: h, log: log.With("queue", q.Name), prefetch: 64, outcomes: outcomes,
		membersWait: defaultMembersWait}
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
		wait := retry.Backoff(attempt)
		c.log.WarnContext(ctx, "consumer disconnected", "err", err, "retry_in", wait.String())
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

func (c *Consumer) session(ctx context.Context) error {
	conn, err := c.nodes.dial("consumer " + c.queue.Name)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := c.awaitMembers(ctx, conn); err != nil {
		return err
	}
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("open channel: %w", err)
	}
	if err := Declare(ch, c.queue); err != nil {
		return err
	}
	// Copies are published on a channel of their own, in confirm mode: a publishing error
	// closes only that channel, and the original is acked only once its copy is confirmed.
	pub, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("open publishing channel: %w", err)
	}
	if err := pub.Confirm(false); err != nil {
		return fmt.Errorf("enable confirms: %w", err)
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
			if err := c.process(sub, pub, gather(d, deliveries, c.prefetch)); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
		}
	}
}

// awaitMembers returns nil when the queue may be declared: it exists already, the consumer
// knows one node only, every node answers, or the wait for them has lasted membersWait. Else
// it says which nodes are missing, and the session is tried again after the usual backoff.
func (c *Consumer) awaitMembers(ctx context.Context, conn *amqp.Connection) error {
	if len(c.nodes.urls) < 2 {
		return nil
	}
	if ok, err := exists(conn, c.queue); ok || err != nil {
		return err
	}
	err := c.nodes.reachAll("consumer " + c.queue.Name + " (cluster check)")
	if err == nil {
		c.waitingSince = time.Time{}
		return nil
	}
	if c.waitingSince.IsZero() {
		c.waitingSince = time.Now()
	}
	if time.Since(c.waitingSince) < c.membersWait {
		return fmt.Errorf("new queue waits for every broker node: %w", err)
	}
	c.log.WarnContext(ctx, "declaring a new queue without every broker node: it has no member on the missing ones "+
		"(rabbitmq-queues grow adds them once they are back)", "waited", c.membersWait.String(), "err", err)
	return nil
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
// does not burn the delivery limit and dead-letter good messages; a delivery the broker has
// counted returns for already is republished instead (see Consumer). ctx is the
// subscription's: once the channel is gone the retries stop and the session starts over.
// Each delivery's consumer span covers every attempt and the ack or the republishing.
func (c *Consumer) process(ctx context.Context, pub *amqp.Channel, batch []amqp.Delivery) (err error) {
	for i := range batch {
		restore(&batch[i])
	}
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
		if ctx.Err() != nil {
			// The handler answered after the channel was lost: its deliveries are back in
			// the queue, counted, as if the handler had never answered.
			return context.Cause(ctx)
		}
		// err, the handler's, is kept for the log line below.
		var rerr error
		if batch, spans, rerr = c.republishCounted(ctx, pub, batch, spans); rerr != nil {
			return rerr
		}
		if len(batch) == 0 {
			return nil
		}
		c.outcomes.WithLabelValues(c.queue.Name, "retried").Add(float64(len(batch)))
		wait := retry.Backoff(attempt)
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

// republishCounted replaces the deliveries of a batch the handler failed transiently whose
// delivery count is not zero with fresh copies: it publishes the copies to the queue through
// the default exchange, so that no other queue bound to the event's exchange sees them, waits
// for their confirms and acks the originals. It returns the rest of the batch, to be retried
// in place, with their spans. A copy arrives with a count of zero and is retried in place
// itself, so a delivery is republished at most once per session. On error the session ends:
// an original not acked yet returns to the queue, and a copy already confirmed is a duplicate
// the handler deduplicates.
func (c *Consumer) republishCounted(ctx context.Context, pub *amqp.Channel, batch []amqp.Delivery, spans []trace.Span) ([]amqp.Delivery, []trace.Span, error) {
	var counted []int
	for i, d := range batch {
		if returns(d) > 0 {
			counted = append(counted, i)
		}
	}
	if len(counted) == 0 {
		return batch, spans, nil
	}
	confirms := make([]*amqp.DeferredConfirmation, len(counted))
	for k, i := range counted {
		dc, err := pub.PublishWithDeferredConfirmWithContext(ctx, "", c.queue.Name, false, false, copyOf(batch[i]))
		if err != nil {
			return batch, spans, fmt.Errorf("republish %s: %w", batch[i].MessageId, err)
		}
		confirms[k] = dc
	}
	for k, dc := range confirms {
		ok, err := dc.WaitContext(ctx)
		if err != nil {
			return batch, spans, fmt.Errorf("wait confirm of republished %s: %w", batch[counted[k]].MessageId, err)
		}
		if !ok {
			return batch, spans, fmt.Errorf("broker nacked republished %s", batch[counted[k]].MessageId)
		}
	}
	// Acked one by one: a later multiple ack of the rest covers only deliveries still unacked.
	for _, i := range counted {
		d := batch[i]
		if err := d.Ack(false); err != nil {
			// Spans already ended are ended again by the caller, which the SDK ignores.
			return batch, spans, fmt.Errorf("ack republished %s: %w", d.MessageId, err)
		}
		spans[i].AddEvent("republished")
		spans[i].End()
		c.log.WarnContext(trace.ContextWithSpan(ctx, spans[i]), "message republished to reset its delivery count", "message_id", d.MessageId, "routing_key", d.RoutingKey, "delivery_count", returns(d), "republished", intHeader(d.Headers[headerRepublished])+1)
	}
	c.outcomes.WithLabelValues(c.queue.Name, "republished").Add(float64(len(counted)))
	rest := make([]amqp.Delivery, 0, len(batch)-len(counted))
	restSpans := make([]trace.Span, 0, len(batch)-len(counted))
	for i, d := range batch {
		if returns(d) == 0 {
			rest = append(rest, d)
			restSpans = append(restSpans, spans[i])
		}
	}
	return rest, restSpans, nil
}

// The headers a republished copy carries: how many times the event has been republished, and
// the exchange and routing key it was first delivered with, which restore puts back.
const (
	headerRepublished = "x-republished"
	headerExchange    = "x-original-exchange"
	headerRoutingKey  = "x-original-routing-key"
)

// copyOf returns the publishing that replaces d. The broker's counts stay with the original:
// RabbitMQ 3.10 delivers an x-delivery-count the publisher set unchanged until the message's
// own first return, so a copy carrying the old count would look counted and be republished
// again. The user id is left out, since the broker refuses one that is not the consumer's own
// user.
func copyOf(d amqp.Delivery) amqp.Publishing {
	headers := make(amqp.Table, len(d.Headers)+3)
	for k, v := range d.Headers {
		headers[k] = v
	}
	delete(headers, "x-delivery-count")
	delete(headers, "x-acquired-count")
	headers[headerRepublished] = intHeader(d.Headers[headerRepublished]) + 1
	headers[headerExchange] = d.Exchange
	headers[headerRoutingKey] = d.RoutingKey
	return amqp.Publishing{
		Headers:         headers,
		ContentType:     d.ContentType,
		ContentEncoding: d.ContentEncoding,
		DeliveryMode:    amqp.Persistent,
		Priority:        d.Priority,
		CorrelationId:   d.CorrelationId,
		ReplyTo:         d.ReplyTo,
		Expiration:      d.Expiration,
		MessageId:       d.MessageId,
		Timestamp:       d.Timestamp,
		Type:            d.Type,
		AppId:           d.AppId,
		Body:            d.Body,
	}
}

// restore makes a republished copy look like the delivery it replaces: the original's
// exchange and routing key instead of the default exchange and the queue's name, and
// redelivered, since the event was delivered before.
func restore(d *amqp.Delivery) {
	exchange, ok := d.Headers[headerExchange].(string)
	if !ok {
		return
	}
	d.Exchange = exchange
	d.RoutingKey, _ = d.Headers[headerRoutingKey].(string)
	d.Redelivered = true
}

// returns is how many times the broker has counted d returned to its queue. RabbitMQ 3.x
// counts every return in x-delivery-count; 4.x adds x-acquired-count and changes which of the
// two the limit applies to, so the larger is taken: a needless copy costs little.
func returns(d amqp.Delivery) int64 {
	return max(intHeader(d.Headers["x-delivery-count"]), intHeader(d.Headers["x-acquired-count"]))
}

// intHeader reads an integer header whatever width it was encoded with; 0 when absent.
func intHeader(v any) int64 {
	switch n := v.(type) {
	case int64:
		return n
	case int32:
		return int64(n)
	case int16:
		return int64(n)
	case int8:
		return int64(n)
	case int:
		return int64(n)
	case uint8:
		return int64(n)
	case uint16:
		return int64(n)
	case uint32:
		return int64(n)
	}
	return 0
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
