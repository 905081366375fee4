// Package notification turns finished orders into messages for their users and keeps them.
package notification

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/order-system/order-system/api/events"
	"github.com/order-system/order-system/pkg/money"
)

// Type says whether the order the notification is about succeeded.
type Type string

// Notification types.
const (
	Success Type = "success"
	Failure Type = "failure"
)

// Notification is a message to a user about one of their orders.
type Notification struct {
	ID        uuid.UUID
	EventID   uuid.UUID // the event it came from; each event yields one notification
	UserID    uuid.UUID
	OrderID   uuid.UUID
	Email     string
	Type      Type
	Message   string
	CreatedAt time.Time
}

// FinishedOrder is what the notification needs to know about an order.
type FinishedOrder struct {
	EventID   uuid.UUID
	OrderID   uuid.UUID
	UserID    uuid.UUID
	Email     string
	Price     money.Amount
	Completed bool
	Reason    string
}

// New builds the notification for a finished order in the given language (ru or en).
func New(o FinishedOrder, lang string) Notification {
	n := Notification{ID: uuid.New(), EventID: o.EventID, UserID: o.UserID, OrderID: o.OrderID, Email: o.Email, Type: Failure}
	if o.Completed {
		n.Type = Success
	}
	n.Message = message(o, lang)
	return n
}

func message(o FinishedOrder, lang string) string {
	if lang == "en" {
		if o.Completed {
			return fmt.Sprintf("Order %s for %s RUB was paid successfully.", o.OrderID, o.Price)
		}
		return fmt.Sprintf("Could not pay order %s for %s RUB: %s.", o.OrderID, o.Price, reasonText(o.Reason, lang))
	}
	if o.Completed {
		return fmt.Sprintf("Заказ %s на сумму %s руб. успешно оплачен.", o.OrderID, o.Price)
	}
	return fmt.Sprintf("Не удалось оплатить заказ %s на сумму %s руб.: %s.", o.OrderID, o.Price, reasonText(o.Reason, lang))
}

func reasonText(reason, lang string) string {
	texts := map[string][2]string{
		events.ReasonBalanceTooLow:      {"недостаточно средств", "insufficient funds"},
		events.ReasonAccountNotFound:    {"счёт не найден", "no billing account"},
		events.ReasonBillingUnreachable: {"платёжный сервис недоступен", "billing is unavailable"},
	}
	t, ok := texts[reason]
	if !ok {
		t = [2]string{"платёж отклонён", "the payment was declined"}
	}
	if lang == "en" {
		return t[1]
	}
	return t[0]
}

// Store keeps notifications.
type Store interface {
	// Save stores n unless a notification for the same event exists; saved says which.
	// invalid_request when the database refuses the data itself.
	Save(ctx context.Context, n Notification) (saved bool, err error)
	// SaveAll stores ns in one transaction, each unless a notification for its event
	// exists, and returns the event ids it stored. invalid_request when the database
	// refuses the data of one of them; then none is stored.
	SaveAll(ctx context.Context, ns []Notification) (saved map[uuid.UUID]bool, err error)
	// ListByUser returns the user's notifications, newest first.
	ListByUser(ctx context.Context, userID uuid.UUID, limit int) ([]Notification, error)
}
