// Package httpapi is the order service's HTTP interface.
package httpapi

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/order-system/order-system/pkg/apperr"
	"github.com/order-system/order-system/pkg/auth"
	"github.com/order-system/order-system/pkg/httpx"
	"github.com/order-system/order-system/pkg/idempotency"
	"github.com/order-system/order-system/pkg/money"
	"github.com/order-system/order-system/services/order/internal/order"
)

// New returns the order service's echo instance with every route mounted.
//
// With sign-in on (guard not nil), every route needs a user's token, a caller places orders
// only on their own account, and another user's order is answered as one that does not exist.
func New(svc *order.Service, guard *auth.Guard, keys *idempotency.Store, checks map[string]httpx.Check, log *slog.Logger, reg *prometheus.Registry) *echo.Echo {
	e := httpx.New(log, reg)
	httpx.Health(e, checks, reg)
	h := handler{svc: svc}
	e.POST("/orders", h.create, guard.Users(), keys.Middleware(log))
	e.GET("/orders/:id", h.get, guard.Users())
	return e
}

type handler struct {
	svc *order.Service
}

type orderRequest struct {
	UserID string          `json:"userId"`
	Email  string          `json:"email"`
	Price  json.RawMessage `json:"price"`
}

type orderResponse struct {
	ID            string       `json:"id"`
	UserID        string       `json:"userId"`
	Email         string       `json:"email"`
	Price         money.Amount `json:"price"`
	Status        string       `json:"status"`
	FailureReason string       `json:"failureReason,omitempty"`
	CreatedAt     time.Time    `json:"createdAt"`
}

func toOrderResponse(o order.Order) orderResponse {
	return orderResponse{ID: o.ID.String(), UserID: o.UserID.String(), Email: o.Email, Price: o.Price,
		Status: string(o.Status), FailureReason: o.FailureReason, CreatedAt: o.CreatedAt}
}

func (h handler) create(c *echo.Context) error {
	var req orderRequest
	if err := httpx.Decode(c, &req); err != nil {
		return err
	}
	f := httpx.Fields{}
	o := order.Order{ID: uuid.New(), UserID: f.UUID("userId", req.UserID), Price: f.Amount("price", req.Price), Email: req.Email}
	f.Email("email", req.Email)
	if err := f.Err(); err != nil {
		return err
	}
	if err := auth.Permit(c, o.UserID); err != nil {
		return err
	}
	// With an Idempotency-Key the repository takes the key with the pending order, whose id
	// it derives from the key (a retry after a timeout or a crash so finds the order the
	// first attempt stored and resumes it), and stores the answer, as placed renders it,
	// with the finished order.
	res, err := h.svc.Place(c.Request().Context(), o, idempotency.KeyOf(c, placed))
	if err != nil {
		return err
	}
	if res.Err != nil {
		if after := retryAfter(res); after != "" {
			c.Response().Header().Set(idempotency.HeaderRetryAfter, after)
		}
		return withOrder(res) // the error handler renders it as placed does
	}
	reply, err := placed(res.Order)
	if err != nil {
		return err
	}
	return httpx.Send(c, reply)
}

// placed is the answer to POST /orders once the order is o: what the handler sends, and
// what an Idempotency-Key stores with the finished order.
func placed(o order.Order) (httpx.Reply, error) {
	res := order.ResultOf(o)
	if res.Err != nil {
		r, err := httpx.ErrorReply(withOrder(res))
		r.RetryAfter = retryAfter(res)
		return r, err
	}
	return httpx.JSONReply(http.StatusCreated, toOrderResponse(res.Order))
}

// accountRetryAfter is the Retry-After, in seconds, of an order that failed because its user
// had no billing account. A user registered while billing was unreachable gets the account
// once billing consumes the user.created event, normally within a second of billing being
// back; billing's own routes answer that state with the same advice.
const accountRetryAfter = "1"

// retryAfter is the Retry-After of the answer to res: for a missing account, which may
// appear moments later, the client is told to come back.
func retryAfter(res order.Result) string {
	if apperr.Is(res.Err, apperr.NotFound) {
		return accountRetryAfter
	}
	return ""
}

// withOrder is the error of an order that did not complete, with the order in its body.
func withOrder(res order.Result) error {
	return httpx.WithMembers(res.Err, map[string]any{"order": toOrderResponse(res.Order)})
}

func (h handler) get(c *echo.Context) error {
	id, err := httpx.PathUUID(c, "id")
	if err != nil {
		return err
	}
	o, err := h.svc.Get(c.Request().Context(), id)
	if err != nil {
		return err
	}
	if !auth.Allows(c, o.UserID) {
		// The same answer as for an order that does not exist: order ids are not secrets
		// (they are in notifications), so 403 would tell a caller that the id is real.
		return apperr.New(apperr.NotFound, "order %s not found", id)
	}
	return c.JSON(http.StatusOK, toOrderResponse(o))
}
