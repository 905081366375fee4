package notification_test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/uuid"

	"github.com/order-system/order-system/pkg/money"
	"github.com/order-system/order-system/services/notification/internal/notification"
)

func TestNewRendersTheMessageOfAFinishedOrder(t *testing.T) {
	t.Parallel()
	orderID := uuid.MustParse("0b5d4c3a-1111-4222-8333-944455556666")
	tests := []struct {
		name      string
		completed bool
		reason    string
		price     money.Amount
		lang      string
		wantType  notification.Type
		prefix    string   // the message starts with it
		contains  []string // and contains each of these
		excludes  []string // and none of these
	}{
		{
			name: "ru success", completed: true, price: 500_00, lang: "ru", wantType: notification.Success,
			prefix: "Заказ", contains: []string{"успешно", orderID.String(), "500 руб."}, excludes: []string{"Не удалось"},
		},
		{
			name: "ru failure, insufficient funds", completed: false, reason: "insufficient_funds", price: 1000_00, lang: "ru",
			wantType: notification.Failure, prefix: "Не удалось", contains: []string{orderID.String(), "1000 руб.", "недостаточно средств"},
			excludes: []string{"успешно"},
		},
		{
			name: "ru failure, no account", reason: "account_not_found", price: 1, lang: "ru",
			wantType: notification.Failure, prefix: "Не удалось", contains: []string{"0.01 руб.", "счёт не найден"}, excludes: []string{"успешно"},
		},
		{
			name: "ru failure, unknown reason", reason: "something_new", price: 499_50, lang: "ru",
			wantType: notification.Failure, prefix: "Не удалось", contains: []string{"499.5 руб.", "платёж отклонён"},
			excludes: []string{"something_new", "успешно"},
		},
		{
			name: "en success", completed: true, price: 500_00, lang: "en", wantType: notification.Success,
			prefix: "Order", contains: []string{"successfully", orderID.String(), "500 RUB"}, excludes: []string{"успешно", "Could not"},
		},
		{
			name: "en failure, insufficient funds", reason: "insufficient_funds", price: 1000_00, lang: "en",
			wantType: notification.Failure, prefix: "Could not", contains: []string{orderID.String(), "1000 RUB", "insufficient funds"},
			excludes: []string{"Не удалось", "недостаточно"},
		},
		{
			name: "en failure, billing unreachable", reason: "billing_unreachable", price: 10_00, lang: "en",
			wantType: notification.Failure, prefix: "Could not", contains: []string{"billing is unavailable"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o := notification.FinishedOrder{
				EventID: uuid.New(), OrderID: orderID, UserID: uuid.New(), Email: "buyer@example.com",
				Price: tt.price, Completed: tt.completed, Reason: tt.reason,
			}
			n := notification.New(o, tt.lang)

			want := notification.Notification{EventID: o.EventID, UserID: o.UserID, OrderID: o.OrderID, Email: o.Email, Type: tt.wantType}
			if diff := cmp.Diff(want, n, cmpopts.IgnoreFields(notification.Notification{}, "ID", "Message")); diff != "" {
				t.Errorf("New (-want +got):\n%s", diff)
			}
			if n.ID == uuid.Nil || n.ID == o.EventID || n.ID == o.OrderID {
				t.Errorf("ID = %s, want a fresh id", n.ID)
			}
			if !strings.HasPrefix(n.Message, tt.prefix) {
				t.Errorf("message %q does not start with %q", n.Message, tt.prefix)
			}
			for _, s := range tt.contains {
				if !strings.Contains(n.Message, s) {
					t.Errorf("message %q lacks %q", n.Message, s)
				}
			}
			for _, s := range tt.excludes {
				if strings.Contains(n.Message, s) {
					t.Errorf("message %q contains %q", n.Message, s)
				}
			}
		})
	}
}

func TestNewGivesEachNotificationItsOwnID(t *testing.T) {
	t.Parallel()
	o := notification.FinishedOrder{EventID: uuid.New(), OrderID: uuid.New(), UserID: uuid.New(), Completed: true}
	if a, b := notification.New(o, "ru"), notification.New(o, "ru"); a.ID == b.ID {
		t.Errorf("two notifications share id %s", a.ID)
	}
}

func TestNotificationTypesAreTheAPIsValues(t *testing.T) {
	t.Parallel()
	// The values are the API's "type" field and the database's CHECK constraint.
	if notification.Success != "success" || notification.Failure != "failure" {
		t.Errorf("types = %q, %q; want success, failure", notification.Success, notification.Failure)
	}
}
