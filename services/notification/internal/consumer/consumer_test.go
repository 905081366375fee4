package consumer_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/order-system/order-system/api/events"
	"github.com/order-system/order-system/pkg/dbtest"
	"github.com/order-system/order-system/pkg/money"
	"github.com/order-system/order-system/pkg/rabbit"
	"github.com/order-system/order-system/services/notification/internal/consumer"
	"github.com/order-system/order-system/services/notification/internal/notification"
	"github.com/order-system/order-system/services/notification/internal/postgres"
	"github.com/order-system/order-system/services/notification/migrations"
)

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

func newStore(t *testing.T) (*postgres.Store, *sqlx.DB) {
	t.Helper()
	db := dbtest.New(t, migrations.FS)
	return postgres.NewStore(db), db
}

// orderEvent is an order.completed or order.failed event as the order service publishes it.
func orderEvent(t *testing.T, typ string, data events.OrderFinishedData) events.Envelope {
	t.Helper()
	e, err := events.New("order-system/order", typ, data, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func delivery(t *testing.T, e events.Envelope) amqp.Delivery {
	t.Helper()
	body, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	return amqp.Delivery{
		Body: body, MessageId: e.ID, RoutingKey: e.Type, ContentType: "application/json",
		DeliveryMode: amqp.Persistent, Headers: amqp.Table{"x-request-id": "req-1"},
	}
}

// handleOne passes d to h as a batch of its own and returns its outcome: the batch error, or
// else d's own error.
func handleOne(h rabbit.BatchHandler, d amqp.Delivery) error {
	errs, err := h(context.Background(), []amqp.Delivery{d})
	if err != nil {
		return err
	}
	return errs[0]
}

func count(t *testing.T, db *sqlx.DB) int {
	t.Helper()
	var n int
	if err := db.Get(&n, `SELECT count(*) FROM notifications`); err != nil {
		t.Fatal(err)
	}
	return n
}

func list(t *testing.T, store *postgres.Store, userID uuid.UUID) []notification.Notification {
	t.Helper()
	ns, err := store.ListByUser(context.Background(), userID, 100)
	if err != nil {
		t.Fatal(err)
	}
	return ns
}

func TestHandlerStoresOneNotificationPerEvent(t *testing.T) {
	t.Parallel()
	store, db := newStore(t)
	user := uuid.New()
	tests := []struct {
		name     string
		typ      string
		status   string
		reason   string
		lang     string
		wantType notification.Type
		check    func(msg string) bool
	}{
		{"order.completed", events.OrderCompleted, "completed", "", "ru", notification.Success,
			func(m string) bool { return strings.Contains(m, "успешно") }},
		{"order.failed for insufficient funds", events.OrderFailed, "failed", "insufficient_funds", "ru", notification.Failure,
			func(m string) bool {
				return strings.HasPrefix(m, "Не удалось") && strings.Contains(m, "недостаточно средств")
			}},
		{"order.completed in English", events.OrderCompleted, "completed", "", "en", notification.Success,
			func(m string) bool { return strings.Contains(m, "successfully") }},
		{"order.failed in English", events.OrderFailed, "failed", "insufficient_funds", "en", notification.Failure,
			func(m string) bool {
				return strings.HasPrefix(m, "Could not") && strings.Contains(m, "insufficient funds")
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Not parallel: each case counts the user's notifications.
			data := events.OrderFinishedData{OrderID: uuid.NewString(), UserID: user.String(), Email: "buyer@example.com",
				Price: money.Amount(500_00), Status: tt.status, Reason: tt.reason}
			ev := orderEvent(t, tt.typ, data)
			h := consumer.Handler(store, tt.lang, discard)
			before := len(list(t, store, user))

			// The second call is a redelivery (the broker lost the ack, or the relay published
			// twice): it must be acked and change nothing.
			for i := range 2 {
				if err := handleOne(h, delivery(t, ev)); err != nil {
					t.Fatalf("delivery %d: %v", i+1, err)
				}
			}

			ns := list(t, store, user)
			if len(ns) != before+1 {
				t.Fatalf("user has %d notifications after the event, want %d", len(ns), before+1)
			}
			got := ns[0] // newest first
			want := notification.Notification{EventID: uuid.MustParse(ev.ID), UserID: user, OrderID: uuid.MustParse(data.OrderID),
				Email: data.Email, Type: tt.wantType}
			if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(notification.Notification{}, "ID", "Message", "CreatedAt")); diff != "" {
				t.Errorf("stored notification (-want +got):\n%s", diff)
			}
			if !tt.check(got.Message) {
				t.Errorf("message %q is not the expected %s text", got.Message, tt.lang)
			}
			if !strings.Contains(got.Message, data.OrderID) || !strings.Contains(got.Message, "500") {
				t.Errorf("message %q does not name the order and its price", got.Message)
			}
			if time.Since(got.CreatedAt) > time.Minute {
				t.Errorf("CreatedAt = %v, want now", got.CreatedAt)
			}
		})
	}
	if n := count(t, db); n != len(tests) {
		t.Errorf("notifications = %d, want %d (one per event)", n, len(tests))
	}
}

func TestHandlerRejectsPoison(t *testing.T) {
	t.Parallel()
	store, db := newStore(t)
	h := consumer.Handler(store, "ru", discard)
	valid := func(mutate func(m map[string]any)) string {
		ev := orderEvent(t, events.OrderCompleted, events.OrderFinishedData{OrderID: uuid.NewString(), UserID: uuid.NewString(),
			Email: "buyer@example.com", Price: 100, Status: "completed"})
		b, _ := json.Marshal(ev)
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		mutate(m)
		b, _ = json.Marshal(m)
		return string(b)
	}
	data := func(key string, value any) func(m map[string]any) {
		return func(m map[string]any) { m["data"].(map[string]any)[key] = value }
	}
	tests := []struct {
		name string
		body string
	}{
		{"empty body", ""},
		{"invalid JSON", `{"specversion":"1.0",`},
		{"not an object", `["order.completed"]`},
		{"unknown type", valid(func(m map[string]any) { m["type"] = "order.shipped" })},
		{"user.created is not an order event", valid(func(m map[string]any) { m["type"] = events.UserCreated })},
		{"no specversion", valid(func(m map[string]any) { delete(m, "specversion") })},
		{"specversion 0.3", valid(func(m map[string]any) { m["specversion"] = "0.3" })},
		{"no event id", valid(func(m map[string]any) { delete(m, "id") })},
		{"event id not a UUID", valid(func(m map[string]any) { m["id"] = "evt-1" })},
		{"no data", valid(func(m map[string]any) { delete(m, "data") })},
		{"data not an object", valid(func(m map[string]any) { m["data"] = "order" })},
		{"orderId not a UUID", valid(data("orderId", "order-1"))},
		{"userId not a UUID", valid(data("userId", "user-1"))},
		{"userId missing", valid(func(m map[string]any) { delete(m["data"].(map[string]any), "userId") })},
		{"price not a number", valid(data("price", "a lot"))},
		// PostgreSQL text cannot hold NUL: retrying such a message in place would stall the
		// queue forever, so it is poison like any other message that can never be stored.
		{"email with a NUL character", valid(data("email", "a\u0000b@example.com"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := handleOne(h, amqp.Delivery{Body: []byte(tt.body), RoutingKey: "order.completed"})
			if !errors.Is(err, rabbit.ErrPoison) {
				t.Errorf("handler(%s) = %v, want an error wrapping rabbit.ErrPoison", tt.body, err)
			}
		})
	}
	t.Cleanup(func() {
		if n := count(t, db); n != 0 {
			t.Errorf("notifications after poison messages = %d, want 0", n)
		}
	})
}

// TestHandlerBatch: one batch holding good events, a redelivered one, a message that is not
// an event and one the database refuses. The good ones are stored once each, and only the
// two bad ones are poison.
func TestHandlerBatch(t *testing.T) {
	t.Parallel()
	store, db := newStore(t)
	event := func(email string) events.Envelope {
		return orderEvent(t, events.OrderCompleted, events.OrderFinishedData{OrderID: uuid.NewString(), UserID: uuid.NewString(),
			Email: email, Price: 100, Status: "completed"})
	}
	first, second := event("a@example.com"), event("b@example.com")
	batch := []amqp.Delivery{
		delivery(t, first),
		{Body: []byte(`{"specversion":`)},
		delivery(t, second),
		delivery(t, event("nul\u0000@example.com")),
		delivery(t, first), // a redelivery within the same batch
	}
	errs, err := consumer.Handler(store, "ru", discard)(context.Background(), batch)
	if err != nil {
		t.Fatalf("batch error = %v, want none", err)
	}
	for i, wantPoison := range []bool{false, true, false, true, false} {
		if got := errors.Is(errs[i], rabbit.ErrPoison); got != wantPoison || (!wantPoison && errs[i] != nil) {
			t.Errorf("delivery %d: err = %v, want poison %v", i, errs[i], wantPoison)
		}
	}
	if n := count(t, db); n != 2 {
		t.Errorf("notifications = %d, want 2 (the two good events, once each)", n)
	}
}

// A database outage is transient: the handler must not call it poison, or the consumer would
// dead-letter good messages instead of retrying them.
func TestHandlerDatabaseDownIsNotPoison(t *testing.T) {
	t.Parallel()
	store, db := newStore(t)
	db.Close()
	ev := orderEvent(t, events.OrderCompleted, events.OrderFinishedData{OrderID: uuid.NewString(), UserID: uuid.NewString(),
		Email: "buyer@example.com", Price: 100, Status: "completed"})
	err := handleOne(consumer.Handler(store, "ru", discard), delivery(t, ev))
	if err == nil || errors.Is(err, rabbit.ErrPoison) {
		t.Errorf("handler with the database closed = %v, want a transient (non-poison) error", err)
	}
}

func TestQueueIsBoundToOrderEventsWithADeadLetterQueue(t *testing.T) {
	t.Parallel()
	q := consumer.Queue()
	want := rabbit.Queue{Name: "notification.orders", Exchange: "order-system.events", Bindings: []string{"order.*"}, DeliveryLimit: q.DeliveryLimit}
	if diff := cmp.Diff(want, q); diff != "" {
		t.Errorf("Queue (-want +got):\n%s", diff)
	}
	if q.DeliveryLimit <= 0 {
		t.Errorf("DeliveryLimit = %d, want an explicit limit (RabbitMQ 3.10 has none by default)", q.DeliveryLimit)
	}
	if q.DeadLetterQueue() != "notification.orders.dlq" {
		t.Errorf("DeadLetterQueue = %q, want notification.orders.dlq", q.DeadLetterQueue())
	}
}
