// Package httpapi is the notification service's HTTP interface.
package httpapi

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/order-system/order-system/pkg/auth"
	"github.com/order-system/order-system/pkg/httpx"
	"github.com/order-system/order-system/services/notification/internal/notification"
)

// New returns the notification service's echo instance with every route mounted. With
// sign-in on (guard not nil), a caller reads only their own notifications.
func New(store notification.Store, guard *auth.Guard, checks map[string]httpx.Check, log *slog.Logger, reg *prometheus.Registry) *echo.Echo {
	e := httpx.New(log, reg)
	httpx.Health(e, checks, reg)
	h := handler{store: store}
	e.GET("/notifications/:userId", h.list, guard.Users())
	return e
}

type handler struct {
	store notification.Store
}

type notificationResponse struct {
	ID        string    `json:"id"`
	UserID    string    `json:"userId"`
	OrderID   string    `json:"orderId"`
	Email     string    `json:"email"`
	Type      string    `json:"type"`
	Message   string    `json:"message"`
	CreatedAt time.Time `json:"createdAt"`
}

func toNotificationResponse(n notification.Notification) notificationResponse {
	return notificationResponse{ID: n.ID.String(), UserID: n.UserID.String(), OrderID: n.OrderID.String(),
		Email: n.Email, Type: string(n.Type), Message: n.Message, CreatedAt: n.CreatedAt}
}

func (h handler) list(c *echo.Context) error {
	userID, err := httpx.PathUUID(c, "userId")
	if err != nil {
		return err
	}
	if err := auth.Permit(c, userID); err != nil {
		return err
	}
	ns, err := h.store.ListByUser(c.Request().Context(), userID, 1000)
	if err != nil {
		return err
	}
	out := make([]notificationResponse, len(ns))
	for i, n := range ns {
		out[i] = toNotificationResponse(n)
	}
	return c.JSON(http.StatusOK, out)
}
