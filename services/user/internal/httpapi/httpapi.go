// Package httpapi is the user service's HTTP interface.
package httpapi

import (
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/order-system/order-system/pkg/httpx"
	"github.com/order-system/order-system/pkg/idempotency"
	"github.com/order-system/order-system/services/user/internal/user"
)

// New returns the user service's echo instance with every route mounted.
func New(svc *user.Service, keys *idempotency.Store, checks map[string]httpx.Check, log *slog.Logger, reg *prometheus.Registry) *echo.Echo {
	e := httpx.New(log, reg)
	httpx.Health(e, checks)
	h := handler{svc: svc}
	e.POST("/users", h.create, keys.Middleware(log))
	e.GET("/users/:id", h.get)
	return e
}

type handler struct {
	svc *user.Service
}

type userRequest struct {
	Name  string `json:"name"`
	Email string `json:"email"`
}

type userResponse struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Email     string    `json:"email"`
	CreatedAt time.Time `json:"createdAt"`
}

func toUserResponse(u user.User) userResponse {
	return userResponse{ID: u.ID.String(), Name: u.Name, Email: u.Email, CreatedAt: u.CreatedAt}
}

func (h handler) create(c *echo.Context) error {
	var req userRequest
	if err := httpx.Decode(c, &req); err != nil {
		return err
	}
	u := user.User{ID: uuid.New(), Name: strings.TrimSpace(req.Name), Email: req.Email}
	f := httpx.Fields{}
	if f.Required("name", u.Name) {
		f.MaxLen("name", u.Name, 200)
	}
	f.Email("email", req.Email)
	if err := f.Err(); err != nil {
		return err
	}
	// With an Idempotency-Key the repository takes the key with the user, whose id it
	// derives from the key, and stores the answer, as registered renders it, in the same
	// transaction.
	created, err := h.svc.Register(c.Request().Context(), u, idempotency.KeyOf(c, registered))
	if err != nil {
		return err
	}
	reply, err := registered(created)
	if err != nil {
		return err
	}
	return httpx.Send(c, reply)
}

// registered is the answer to POST /users for the stored user u: what the handler sends, and
// what an Idempotency-Key stores with the user.
func registered(u user.User) (httpx.Reply, error) {
	return httpx.JSONReply(http.StatusCreated, toUserResponse(u))
}

func (h handler) get(c *echo.Context) error {
	id, err := httpx.PathUUID(c, "id")
	if err != nil {
		return err
	}
	u, err := h.svc.Get(c.Request().Context(), id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toUserResponse(u))
}
