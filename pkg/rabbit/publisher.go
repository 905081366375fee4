package rabbit

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Message is one message to publish.
type Message struct {
	RoutingKey string
	MessageID  string
	Body       []byte
	Headers    amqp.Table
}

// ErrUnroutable is returned when the broker returned a mandatory message because no queue
// was bound for its routing key. The caller keeps the message and retries later.
var ErrUnroutable = errors.New("message returned unroutable")

// UnroutableError names the messages of a batch that the broker returned; it matches
// ErrUnroutable. Every other message of the batch was confirmed.
type UnroutableError struct {
	MessageIDs []string
}

func (e *UnroutableError) Error() string {
	return fmt.Sprintf("%v: %v", ErrUnroutable, e.MessageIDs)
}

// Is makes errors.Is(err, ErrUnroutable) hold.
func (e *UnroutableError) Is(target error) bool { return target == ErrUnroutable }

// Publisher publishes batches of persistent messages to one exchange and waits for the
// broker's confirms. It reconnects lazily: after any failure the next Publish dials again.
// A Publisher is used by one goroutine at a time (the outbox relay); the mutex only guards
// against misuse and Close.
type Publisher struct {
	url      string
	exchange string

	connected atomic.Bool

	mu      sync.Mutex
	conn    *amqp.Connection
	ch      *amqp.Channel
	returns chan amqp.Return
}

// NewPublisher returns a publisher for exchange on the broker at url. It does not dial yet.
func NewPublisher(url, exchange string) *Publisher {
	return &Publisher{url: url, exchange: exchange}
}

// Publish sends msgs and returns nil only when the broker confirmed every one of them and
// returned none as unroutable. On error some messages may have been delivered: consumers
// dedupe by message id, so the caller simply publishes the batch again.
func (p *Publisher) Publish(ctx context.Context, msgs []Message) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.connect(); err != nil {
		return err
	}
	err := p.publish(ctx, msgs)
	if err != nil && !errors.Is(err, ErrUnroutable) {
		// The channel may be unusable or hold confirms we stopped waiting for; start over.
		p.closeLocked()
	}
	return err
}

func (p *Publisher) publish(ctx context.Context, msgs []Message) error {
	confirms := make([]*amqp.DeferredConfirmation, 0, len(msgs))
	for _, m := range msgs {
		dc, err := p.ch.PublishWithDeferredConfirmWithContext(ctx, p.exchange, m.RoutingKey, true, false, amqp.Publishing{
			ContentType:  "application/cloudevents+json",
			DeliveryMode: amqp.Persistent,
			MessageId:    m.MessageID,
			Headers:      m.Headers,
			Body:         m.Body,
		})
		if err != nil {
			return fmt.Errorf("publish %s: %w", m.MessageID, err)
		}
		confirms = append(confirms, dc)
	}
	for i, dc := range confirms {
		ok, err := dc.WaitContext(ctx)
		if err != nil {
			return fmt.Errorf("wait confirm of %s: %w", msgs[i].MessageID, err)
		}
		if !ok {
			return fmt.Errorf("broker nacked %s", msgs[i].MessageID)
		}
	}
	// The broker sends basic.return before the ack of the same message, and the client
	// delivers it to p.returns before processing that ack, so every return is buffered by now.
	var returned []string
drain:
	for {
		select {
		case r, ok := <-p.returns:
			if !ok {
				// The channel closed under us: the confirms above may be its shutdown nacks.
				return errors.New("channel closed while publishing")
			}
			returned = append(returned, r.MessageId)
		default:
			break drain
		}
	}
	if len(returned) > 0 {
		return &UnroutableError{MessageIDs: returned}
	}
	return nil
}

func (p *Publisher) connect() error {
	if p.ch != nil && !p.ch.IsClosed() {
		p.connected.Store(true)
		return nil
	}
	p.closeLocked()
	conn, err := amqp.DialConfig(p.url, amqp.Config{Dial: amqp.DefaultDial(dialTimeout), Properties: amqp.Table{"connection_name": "outbox-relay"}})
	if err != nil {
		return fmt.Errorf("dial broker: %w", err)
	}
	ch, err := conn.Channel()
	if err != nil {
		conn.Close()
		return fmt.Errorf("open channel: %w", err)
	}
	if err := ch.Confirm(false); err != nil {
		conn.Close()
		return fmt.Errorf("enable confirms: %w", err)
	}
	if err := DeclareExchange(ch, p.exchange); err != nil {
		conn.Close()
		return err
	}
	p.conn, p.ch = conn, ch
	p.returns = ch.NotifyReturn(make(chan amqp.Return, 1024))
	p.connected.Store(true)
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	go func() {
		<-closed
		p.connected.Store(false)
	}()
	return nil
}

// Check is a readiness check: nil while connected. When not connected it tries to connect,
// unless a publish is under way, so a probe never waits behind the relay.
func (p *Publisher) Check(ctx context.Context) error {
	if p.connected.Load() {
		return nil
	}
	if !p.mu.TryLock() {
		return errors.New("connecting to the broker")
	}
	defer p.mu.Unlock()
	return p.connect()
}

// Close closes the connection, if any.
func (p *Publisher) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closeLocked()
	return nil
}

func (p *Publisher) closeLocked() {
	if p.conn != nil {
		p.conn.Close()
	}
	p.conn, p.ch, p.returns = nil, nil, nil
	p.connected.Store(false)
}
