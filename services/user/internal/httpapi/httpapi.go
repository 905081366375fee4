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

	"github.com/order-system/order-system/pkg/auth"
	"github.com/order-system/order-system/pkg/httpx"
	"github.com/order-system/order-system/pkg/idempotency"
	"github.com/order-system/order-system/services/user/internal/user"
)

// New returns the user service's echo instance with every route mounted.
// With sign-in on (guard not nil), every route needs a user's token, and a caller registers
// and reads only themselves.
func New(svc *user.Service, guard *auth.Guard, keys *idempotency.Store, checks map[string]httpx.Check, log *slog.Logger, reg *prometheus.Registry) *echo.Echo {
	e := httpx.New(log, reg)
	httpx.Health(e, checks, reg)
	h := handler{svc: svc}
	e.POST("/users", h.create, guard.Users(), keys.Middleware(log))
	e.GET("/users/:id", h.get, guard.Users())
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
	u := user.User{Name: strings.TrimSpace(req.Name), Email: req.Email}
	f := httpx.Fields{}
	if f.Required("name", u.Name) {
		f.MaxLen("name", u.Name, 200)
	}
	f.Email("email", req.Email)
	if err := f.Err(); err != nil {
		return err
	}
	// A signed-in caller registers themselves: the user's id is their identity's, so one
	// identity has one user, and registering again returns it. Otherwise, with an
	// Idempotency-Key the repository derives the id from the key (and takes the key with the
	// user, storing the answer, as registered renders it, in the same transaction).
	key := idempotency.KeyOf(c, registered)
	if caller, ok := auth.Caller(c); ok {
		u.ID = caller.UserID()
	} else if !key.Present() {
		u.ID = uuid.New()
	}
	created, err := h.svc.Register(c.Request().Context(), u, key)
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
	if err := auth.Permit(c, id); err != nil {
		return err
	}
	u, err := h.svc.Get(c.Request().Context(), id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toUserResponse(u))
}
