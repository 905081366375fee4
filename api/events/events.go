// Package events is the contract between services on the broker: the CloudEvents envelope and
// the payload of each event type. It lives beside the OpenAPI documents because it is the
// same kind of thing, a contract; producers and consumers both import it, so a field renamed
// here breaks the build rather than the traffic.
//
//	event            producer (outbox)                 exchange             queue (consumer)
//	user.created     user: POST /users                 order-system.events  billing.users (billing opens the account)
//	order.completed  order: POST /orders, reconciler   order-system.events  notification.orders (notification stores a message)
//	order.failed     order: POST /orders, reconciler   order-system.events  notification.orders (notification stores a message)
//
// Rejected messages go to <queue>.dlq through order-system.events.dlx.
package events

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/order-system/order-system/api/payments"
	"github.com/order-system/order-system/pkg/money"
)

// Exchange is the durable topic exchange all events go through.
const Exchange = "order-system.events"

// Event types; each is also the routing key.
const (
	UserCreated    = "user.created"
	OrderCompleted = "order.completed"
	OrderFailed    = "order.failed"
)

// Envelope is a CloudEvents 1.0 event in structured JSON mode.
type Envelope struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	Type            string          `json:"type"`
	Time            time.Time       `json:"time"`
	DataContentType string          `json:"datacontenttype"`
	Data            json.RawMessage `json:"data"`
}

// EventID is the event's id (outbox.Event).
func (e Envelope) EventID() string { return e.ID }

// EventTopic is the event's type, which routes it (outbox.Event).
func (e Envelope) EventTopic() string { return e.Type }

// UserCreatedData is the payload of user.created.
type UserCreatedData struct {
	UserID string `json:"userId"`
	Name   string `json:"name"`
	Email  string `json:"email"`
}

// OrderFinishedData is the payload of order.completed and order.failed.
type OrderFinishedData struct {
	OrderID string       `json:"orderId"`
	UserID  string       `json:"userId"`
	Email   string       `json:"email"`
	Price   money.Amount `json:"price"`
	Status  string       `json:"status"`
	// Reason says why a failed order failed: one of the Reason values.
	Reason string `json:"reason,omitempty"`
}

// Why an order failed (OrderFinishedData.Reason), after the payment outcome that failed it:
// insufficient funds, no account, or voided because billing could not be reached in time. A
// consumer meets values it does not know when the order service learns a new one first,
// and must take them as a plain failure.
const (
	ReasonBalanceTooLow      = string(payments.InsufficientFunds)
	ReasonAccountNotFound    = string(payments.AccountNotFound)
	ReasonBillingUnreachable = "billing_unreachable"
)

// New wraps data in an envelope with a fresh id.
func New(source, typ string, data any, now time.Time) (Envelope, error) {
	raw, err := json.Marshal(data)
	if err != nil {
		return Envelope{}, fmt.Errorf("marshal %s data: %w", typ, err)
	}
	return Envelope{
		SpecVersion: "1.0", ID: uuid.NewString(), Source: source, Type: typ,
		Time: now.UTC(), DataContentType: "application/json", Data: raw,
	}, nil
}

// Decode parses an envelope and its data, checking the envelope's required attributes.
func Decode(body []byte, data any) (Envelope, error) {
	var e Envelope
	if err := json.Unmarshal(body, &e); err != nil {
		return e, fmt.Errorf("decode envelope: %w", err)
	}
	if e.SpecVersion != "1.0" || e.ID == "" || e.Type == "" || len(e.Data) == 0 {
		return e, fmt.Errorf("envelope lacks specversion 1.0, id, type or data")
	}
	if err := json.Unmarshal(e.Data, data); err != nil {
		return e, fmt.Errorf("decode %s data: %w", e.Type, err)
	}
	return e, nil
}
