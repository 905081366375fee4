// Package httpapi is billing's HTTP interface: the public /billing routes and the internal
// routes the user and order services call.
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
	"github.com/order-system/order-system/services/billing/internal/billing"
)

// New returns billing's echo instance with every route mounted. With sign-in on (guard not
// nil), a /billing route needs a user's token and acts only on the caller's own account, and
// an /internal route needs the service credential of the user or the order service.
func New(svc *billing.Service, guard *auth.Guard, keys *idempotency.Store, checks map[string]httpx.Check, log *slog.Logger, reg *prometheus.Registry) *echo.Echo {
	e := httpx.New(log, reg)
	httpx.Health(e, checks, reg)
	h := handler{svc: svc}
	e.POST("/billing/deposit", h.deposit, guard.Users(), keys.Middleware(log))
	e.GET("/billing/balance/:userId", h.balance, guard.Users())
	e.GET("/billing/transactions/:userId", h.transactions, guard.Users())
	internal := e.Group("/internal", guard.Services())
	internal.PUT("/accounts/:userId", h.openAccount)
	internal.POST("/payments", h.pay)
	internal.POST("/payments/void", h.void)
	return e
}

type handler struct {
	svc *billing.Service
}

type accountResponse struct {
	UserID   string       `json:"userId"`
	Balance  money.Amount `json:"balance"`
	Currency string       `json:"currency"`
}

func toAccountResponse(a billing.Account) accountResponse {
	return accountResponse{UserID: a.UserID.String(), Balance: a.Balance, Currency: a.Currency}
}

type entryResponse struct {
	ID           int64        `json:"id"`
	UserID       string       `json:"userId"`
	Type         string       `json:"type"`
	Amount       money.Amount `json:"amount"`
	BalanceAfter money.Amount `json:"balanceAfter"`
	PaymentID    string       `json:"paymentId,omitempty"`
	CreatedAt    time.Time    `json:"createdAt"`
}

func toEntryResponse(e billing.Entry) entryResponse {
	r := entryResponse{ID: e.ID, UserID: e.UserID.String(), Type: string(e.Type), Amount: e.Amount, BalanceAfter: e.BalanceAfter, CreatedAt: e.CreatedAt}
	if e.Type == billing.EntryDebit {
		r.PaymentID = e.OperationID.String()
	}
	return r
}

type paymentResponse struct {
	PaymentID string       `json:"paymentId"`
	UserID    string       `json:"userId"`
	Amount    money.Amount `json:"amount"`
	Status    string       `json:"status"`
	Balance   money.Amount `json:"balance"`
}

func toPaymentResponse(p billing.Payment) paymentResponse {
	return paymentResponse{PaymentID: p.ID.String(), UserID: p.UserID.String(), Amount: p.Amount, Status: string(p.Status), Balance: p.Balance}
}

type depositRequest struct {
	UserID string          `json:"userId"`
	Amount json.RawMessage `json:"amount"`
}

func (h handler) deposit(c *echo.Context) error {
	var req depositRequest
	if err := httpx.Decode(c, &req); err != nil {
		return err
	}
	f := httpx.Fields{}
	d := billing.Deposit{UserID: f.UUID("userId", req.UserID), Amount: f.Amount("amount", req.Amount), ID: uuid.New()}
	if err := f.Err(); err != nil {
		return err
	}
	if err := auth.Permit(c, d.UserID); err != nil {
		return err
	}
	// With an Idempotency-Key the ledger takes the key in the deposit's transaction, derives
	// the deposit id from it (a retry after a crash finds the first deposit instead of adding
	// the money again) and stores the answer, as deposited renders it, before it commits.
	a, err := h.svc.Deposit(c.Request().Context(), d, idempotency.KeyOf(c, deposited))
	if err != nil {
		return retryLater(c, namingUser(err, d.UserID))
	}
	reply, err := deposited(a)
	if err != nil {
		return err
	}
	return httpx.Send(c, reply)
}

// deposited is the answer to a deposit that left the account a: what the handler sends, and
// what an Idempotency-Key stores with the deposit.
func deposited(a billing.Account) (httpx.Reply, error) {
	return httpx.JSONReply(http.StatusOK, toAccountResponse(a))
}

func (h handler) balance(c *echo.Context) error {
	userID, err := httpx.PathUUID(c, "userId")
	if err != nil {
		return err
	}
	if err := auth.Permit(c, userID); err != nil {
		return err
	}
	a, err := h.svc.Account(c.Request().Context(), userID)
	if err != nil {
		return retryLater(c, namingUser(err, userID))
	}
	return c.JSON(http.StatusOK, toAccountResponse(a))
}

func (h handler) transactions(c *echo.Context) error {
	userID, err := httpx.PathUUID(c, "userId")
	if err != nil {
		return err
	}
	if err := auth.Permit(c, userID); err != nil {
		return err
	}
	entries, err := h.svc.Transactions(c.Request().Context(), userID)
	if err != nil {
		return retryLater(c, namingUser(err, userID))
	}
	out := make([]entryResponse, len(entries))
	for i, e := range entries {
		out[i] = toEntryResponse(e)
	}
	return c.JSON(http.StatusOK, out)
}

func (h handler) openAccount(c *echo.Context) error {
	userID, err := httpx.PathUUID(c, "userId")
	if err != nil {
		return err
	}
	a, created, err := h.svc.OpenAccount(c.Request().Context(), userID)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	return c.JSON(status, toAccountResponse(a))
}

type paymentRequest struct {
	PaymentID string          `json:"paymentId"`
	UserID    string          `json:"userId"`
	Amount    json.RawMessage `json:"amount"`
	PayBy     string          `json:"payBy"`
}

// pay and void take the same request and answer with the payment's stored outcome.
func (h handler) pay(c *echo.Context) error {
	p, err := decodePayment(c)
	if err != nil {
		return err
	}
	out, err := h.svc.Pay(c.Request().Context(), p)
	if err != nil {
		return namingUser(err, p.UserID)
	}
	return c.JSON(http.StatusOK, toPaymentResponse(out))
}

func (h handler) void(c *echo.Context) error {
	p, err := decodePayment(c)
	if err != nil {
		return err
	}
	out, err := h.svc.Void(c.Request().Context(), p)
	if err != nil {
		return namingUser(err, p.UserID)
	}
	return c.JSON(http.StatusOK, toPaymentResponse(out))
}

func decodePayment(c *echo.Context) (billing.Payment, error) {
	var req paymentRequest
	if err := httpx.Decode(c, &req); err != nil {
		return billing.Payment{}, err
	}
	f := httpx.Fields{}
	p := billing.Payment{ID: f.UUID("paymentId", req.PaymentID), UserID: f.UUID("userId", req.UserID), Amount: f.Amount("amount", req.Amount),
		PayBy: f.OptionalTime("payBy", req.PayBy)}
	return p, f.Err()
}

// accountRetryAfter is the Retry-After, in seconds, of a public route's answer for a user
// without an account. A user registered while billing was unreachable gets their account
// once billing consumes the user.created event, normally within a second of billing being
// back; until then the client is told to come back rather than that the user is unknown
// for good (billing cannot tell the two apart). With Retry-After the answer is also not
// stored under an Idempotency-Key, so the keyed retry deposits.
const accountRetryAfter = "1"

// retryLater adds Retry-After to a no-account error of a public route.
func retryLater(c *echo.Context, err error) error {
	if apperr.Is(err, apperr.NotFound) {
		c.Response().Header().Set(idempotency.HeaderRetryAfter, accountRetryAfter)
	}
	return err
}

// namingUser names the user in the body of a not_found (no billing account): that is how a
// caller tells billing's "no such account" from a 404 of a route that does not exist (an
// older billing, a wrong URL), which must not be taken for an answer.
func namingUser(err error, userID uuid.UUID) error {
	if apperr.Is(err, apperr.NotFound) {
		return httpx.WithMembers(err, map[string]any{"userId": userID.String()})
	}
	return err
}
