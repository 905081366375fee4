package outbox_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/prometheus/client_golang/prometheus"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/order-system/order-system/pkg/dbtest"
	"github.com/order-system/order-system/pkg/outbox"
	"github.com/order-system/order-system/pkg/rabbit"
)

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

type fixture struct {
	db       *sqlx.DB
	exchange string
	queue    rabbit.Queue
}

// newFixture gives each test its own database and its own exchange and queues on the real
// broker, removed at the end.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	db := dbtest.New(t, fstest.MapFS{"000001_outbox.up.sql": {Data: []byte(outbox.Schema)}})
	f := &fixture{db: db, exchange: dbtest.Name(t, "test.events")}
	f.queue = rabbit.Queue{Name: dbtest.Name(t, "test.queue"), Exchange: f.exchange, Bindings: []string{"order.*"}, DeliveryLimit: 2}
	dbtest.RemoveQueue(t, dbtest.Channel(t, dbtest.AMQPURL()), f.queue)
	return f
}

// testEvent is an event as the outbox sees one: an id, a topic, a JSON body.
type testEvent struct {
	ID   string `json:"id"`
	Type string `json:"type"`
	Data any    `json:"data"`
}

func (e testEvent) EventID() string    { return e.ID }
func (e testEvent) EventTopic() string { return e.Type }

func newTestEvent(typ string, data any) (testEvent, error) {
	return testEvent{ID: uuid.NewString(), Type: typ, Data: data}, nil
}

func (f *fixture) write(t *testing.T, n int, commit bool) []string {
	t.Helper()
	ids := make([]string, 0, n)
	tx := f.db.MustBegin()
	defer tx.Rollback()
	for range n {
		e, err := newTestEvent("order.completed", map[string]int{"n": n})
		if err != nil {
			t.Fatal(err)
		}
		if err := outbox.Write(context.Background(), tx, e); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, e.ID)
	}
	if commit {
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	return ids
}

// consume collects message ids from the fixture's queue until ctx ends.
func (f *fixture) consume(ctx context.Context, h rabbit.Handler) *rabbit.Consumer {
	c := rabbit.NewConsumer(dbtest.AMQPURL(), f.queue, rabbit.OneByOne(h), discard, prometheus.NewRegistry())
	go c.Run(ctx)
	return c
}

// collect starts a consumer of the fixture's queue that records every message id it
// receives until ctx ends, and waits until it is subscribed.
func (f *fixture) collect(ctx context.Context, t *testing.T) *seen {
	t.Helper()
	got := &seen{ids: map[string]int{}}
	c := f.consume(ctx, got.handler)
	dbtest.Eventually(t, 15*time.Second, "consumer", c.Ready)
	return got
}

// relay runs a relay of the fixture's outbox that polls every poll, until ctx ends.
func (f *fixture) relay(ctx context.Context, poll time.Duration) *outbox.Relay {
	pub := rabbit.NewPublisher(dbtest.AMQPURL(), f.exchange)
	r := outbox.NewRelay(f.db, rabbit.OutboxPublisher{Publisher: pub}, outbox.RelayConfig{BatchSize: 7, Poll: poll}, discard, prometheus.NewRegistry())
	go func() {
		r.Run(ctx)
		pub.Close()
	}()
	return r
}

type seen struct {
	mu  sync.Mutex
	ids map[string]int
}

func (s *seen) handler(ctx context.Context, d amqp.Delivery) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ids[d.MessageId]++
	return nil
}

func (s *seen) count() (distinct, total int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range s.ids {
		distinct++
		total += n
	}
	return distinct, total
}

func TestTwoRelaysPublishEveryCommittedEventOnce(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := f.collect(ctx, t)

	committed := f.write(t, 40, true)
	rolledBack := f.write(t, 5, false)
	f.relay(ctx, 200*time.Millisecond)
	f.relay(ctx, 200*time.Millisecond)
	more := f.write(t, 40, true) // written while the relays run, nobody wakes them: the poll finds these

	dbtest.Eventually(t, 15*time.Second, "all committed events", func() bool { d, _ := got.count(); return d >= len(committed)+len(more) })
	time.Sleep(300 * time.Millisecond) // let duplicates, if any, arrive
	distinct, total := got.count()
	if distinct != 80 || total != 80 {
		t.Fatalf("received %d distinct / %d total messages, want 80 / 80", distinct, total)
	}
	for _, id := range rolledBack {
		if got.ids[id] != 0 {
			t.Fatalf("event %s of a rolled-back transaction was published", id)
		}
	}
	var left int
	if err := f.db.Get(&left, `SELECT count(*) FROM outbox`); err != nil || left != 0 {
		t.Fatalf("outbox holds %d rows after publishing (err %v), want 0", left, err)
	}
}

func TestWakePublishesWithoutWaitingForThePoll(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := f.collect(ctx, t)
	f.write(t, 1, true)
	r := f.relay(ctx, time.Hour)
	dbtest.Eventually(t, 15*time.Second, "the event of the relay's first pass", func() bool { d, _ := got.count(); return d == 1 })

	// The relay's next poll is an hour away: only the wake-up can publish these in time.
	f.write(t, 3, true)
	r.Wake()
	dbtest.Eventually(t, 15*time.Second, "the woken relay's 3 events", func() bool { d, _ := got.count(); return d == 4 })
}

func TestUnroutableEventsStayInTheOutbox(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.write(t, 3, true)
	pub := rabbit.NewPublisher(dbtest.AMQPURL(), f.exchange)
	defer pub.Close()
	r := outbox.NewRelay(f.db, rabbit.OutboxPublisher{Publisher: pub}, outbox.RelayConfig{}, discard, prometheus.NewRegistry())

	// No queue is bound yet: the broker returns the messages and the relay keeps them.
	if _, err := r.RelayOnce(ctx); !errors.Is(err, rabbit.ErrUnroutable) {
		t.Fatalf("RelayOnce without a bound queue: err = %v, want ErrUnroutable", err)
	}
	var left int
	f.db.Get(&left, `SELECT count(*) FROM outbox`)
	if left != 3 {
		t.Fatalf("outbox holds %d rows, want the 3 unroutable events kept", left)
	}

	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	got := f.collect(cctx, t)
	time.Sleep(time.Second) // the returned events are parked until the next poll (1 s)
	if n, err := r.RelayOnce(ctx); err != nil || n != 3 {
		t.Fatalf("RelayOnce with a bound queue = %d, %v; want 3, nil", n, err)
	}
	dbtest.Eventually(t, 15*time.Second, "the 3 events", func() bool { d, _ := got.count(); return d == 3 })
}

func TestOneUnroutableEventDoesNotHoldUpItsBatch(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := f.collect(ctx, t)

	// The queue is bound to order.*: the user.created event in the middle has nowhere to go.
	routed := f.write(t, 2, true)
	tx := f.db.MustBegin()
	stray, err := newTestEvent("user.created", map[string]int{})
	if err != nil {
		t.Fatal(err)
	}
	if err := outbox.Write(ctx, tx, stray); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	routed = append(routed, f.write(t, 2, true)...)

	pub := rabbit.NewPublisher(dbtest.AMQPURL(), f.exchange)
	defer pub.Close()
	r := outbox.NewRelay(f.db, rabbit.OutboxPublisher{Publisher: pub}, outbox.RelayConfig{}, discard, prometheus.NewRegistry())
	var unroutable *rabbit.UnroutableError
	if n, err := r.RelayOnce(ctx); !errors.As(err, &unroutable) || len(unroutable.MessageIDs) != 1 || unroutable.MessageIDs[0] != stray.ID || n != 4 {
		t.Fatalf("RelayOnce = %d, %v; want 4 published and the one stray event returned", n, err)
	}
	// The stray is parked: events written after it go out without it.
	routed = append(routed, f.write(t, 2, true)...)
	for range 2 {
		if _, err := r.RelayOnce(ctx); err != nil {
			t.Fatalf("RelayOnce with the stray parked: %v, want nil", err)
		}
	}
	var left []string
	if err := f.db.Select(&left, `SELECT event_id::text FROM outbox`); err != nil {
		t.Fatal(err)
	}
	if len(left) != 1 || left[0] != stray.ID {
		t.Fatalf("outbox holds %v, want only the stray event %s", left, stray.ID)
	}
	dbtest.Eventually(t, 15*time.Second, "the 6 routed events", func() bool { d, _ := got.count(); return d == 6 })
	time.Sleep(200 * time.Millisecond)
	got.mu.Lock()
	defer got.mu.Unlock()
	for _, id := range routed {
		if got.ids[id] != 1 {
			t.Errorf("routed event %s delivered %d times, want once", id, got.ids[id])
		}
	}
}

func TestPoisonMessageIsDeadLettered(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := &seen{ids: map[string]int{}}
	c := f.consume(ctx, func(ctx context.Context, d amqp.Delivery) error {
		if string(d.Body) == "poison" {
			return rabbit.ErrPoison
		}
		return got.handler(ctx, d)
	})
	dbtest.Eventually(t, 15*time.Second, "consumer", c.Ready)

	pub := rabbit.NewPublisher(dbtest.AMQPURL(), f.exchange)
	defer pub.Close()
	msgs := []rabbit.Message{
		{RoutingKey: "order.completed", MessageID: "bad", Body: []byte("poison")},
		{RoutingKey: "order.completed", MessageID: "good", Body: []byte("{}")},
	}
	if err := pub.Publish(ctx, msgs); err != nil {
		t.Fatal(err)
	}
	dbtest.Eventually(t, 15*time.Second, "the good message after the poison one", func() bool { d, _ := got.count(); return d == 1 })

	ch := dbtest.Channel(t, dbtest.AMQPURL())
	dbtest.Eventually(t, 15*time.Second, "the poison message in the DLQ", func() bool {
		d, ok, err := ch.Get(f.queue.DeadLetterQueue(), true)
		return err == nil && ok && d.MessageId == "bad"
	})
}
