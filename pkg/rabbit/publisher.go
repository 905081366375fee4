package rabbit

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/otel/trace"

	"github.com/order-system/order-system/pkg/retry"
	"github.com/order-system/order-system/pkg/tracing"
)

// Message is one message to publish.
type Message struct {
	RoutingKey string
	MessageID  string
	Body       []byte
	Headers    amqp.Table
	// Trace is the trace context of what caused the message: its publish span is a child of
	// it, and the message carries the publish span's context on in its headers.
	Trace tracing.Context
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
// broker's confirms. Run keeps it connected; without Run it connects lazily, and after any
// failure the next Publish dials again. A Publisher is used by one goroutine at a time (the
// outbox relay) besides Run; the mutex serializes them and Close.
type Publisher struct {
	nodes    *nodes
	exchange string

	// live is the open connection, nil while there is none; lastErr says why there is none.
	// Check reads both without the mutex, so a probe never waits behind a dial.
	live    atomic.Pointer[amqp.Connection]
	lastErr atomic.Pointer[error]

	mu      sync.Mutex
	down    chan struct{} // closed when conn closes
	conn    *amqp.Connection
	ch      *amqp.Channel
	returns chan amqp.Return
}

// NewPublisher returns a publisher for exchange on the broker at url (or the first that
// answers of several URLs separated by commas, the nodes of a cluster). It does not dial yet.
func NewPublisher(url, exchange string) *Publisher {
	return &Publisher{nodes: newNodes(url), exchange: exchange}
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

func (p *Publisher) publish(ctx context.Context, msgs []Message) (err error) {
	spans := make([]trace.Span, 0, len(msgs))
	defer func() { endPublish(spans, msgs, err) }()
	confirms := make([]*amqp.DeferredConfirmation, 0, len(msgs))
	for _, m := range msgs {
		headers, span := startPublish(ctx, p.exchange, m)
		spans = append(spans, span)
		dc, err := p.ch.PublishWithDeferredConfirmWithContext(ctx, p.exchange, m.RoutingKey, true, false, amqp.Publishing{
			ContentType:  "application/cloudevents+json",
			DeliveryMode: amqp.Persistent,
			MessageId:    m.MessageID,
			Headers:      headers,
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

// Run keeps the publisher connected until ctx ends: it dials at once, again with jittered
// backoff after a failure, and again whenever the connection closes. The readiness check then
// reports what this loop knows instead of dialing in the probe's time.
func (p *Publisher) Run(ctx context.Context) error {
	for attempt := 0; ; attempt++ {
		p.mu.Lock()
		err := p.connect()
		down := p.down
		p.mu.Unlock()
		if err == nil {
			attempt = -1
			select {
			case <-ctx.Done():
				return nil
			case <-down:
				continue
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(retry.Backoff(attempt)):
		}
	}
}

func (p *Publisher) connect() error {
	if p.ch != nil && !p.ch.IsClosed() {
		return nil
	}
	p.closeLocked()
	err := p.dial()
	if err != nil {
		p.lastErr.Store(&err)
	}
	return err
}

func (p *Publisher) dial() error {
	conn, err := p.nodes.dial("outbox-relay")
	if err != nil {
		return err
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
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	down := make(chan struct{})
	p.down = down
	p.live.Store(conn)
	go func() {
		if amqpErr := <-closed; amqpErr != nil {
			err := fmt.Errorf("connection closed: %w", amqpErr)
			p.lastErr.Store(&err)
		}
		p.live.CompareAndSwap(conn, nil) // a newer connection may be live already
		close(down)
	}()
	return nil
}

// Check is a readiness check: nil while connected, else why not. It only reads the state
// that Run and Publish keep, so it answers at once even while the broker does not.
func (p *Publisher) Check(ctx context.Context) error {
	if conn := p.live.Load(); conn != nil && !conn.IsClosed() {
		return nil
	}
	if err := p.lastErr.Load(); err != nil {
		return fmt.Errorf("not connected to the broker: %w", *err)
	}
	return errors.New("not connected to the broker")
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
		p.live.CompareAndSwap(p.conn, nil)
		p.conn.Close()
	}
	p.conn, p.ch, p.returns = nil, nil, nil
}
