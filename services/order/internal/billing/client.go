// Package billing is the order service's HTTP client of the billing service.
package billing

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/order-system/order-system/pkg/apperr"
	"github.com/order-system/order-system/pkg/httpclient"
	"github.com/order-system/order-system/pkg/money"
	"github.com/order-system/order-system/services/order/internal/order"
)

// Client calls billing's internal payment endpoint.
type Client struct {
	baseURL string
	http    *http.Client
	latency *prometheus.HistogramVec
}

var _ order.BillingClient = (*Client)(nil)

// NewClient returns a client of the billing service at baseURL; every call ends within
// timeout, so a hung billing turns into a quick 503 rather than a hung order request.
func NewClient(baseURL string, timeout time.Duration, reg prometheus.Registerer) *Client {
	latency := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "billing_call_duration_seconds", Help: "Latency of payment calls to billing, by outcome.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
	}, []string{"outcome"})
	reg.MustRegister(latency)
	return &Client{baseURL: baseURL, http: httpclient.New(timeout), latency: latency}
}

type paymentRequest struct {
	PaymentID string       `json:"paymentId"`
	UserID    string       `json:"userId"`
	Amount    money.Amount `json:"amount"`
}

type paymentResponse struct {
	Status  string       `json:"status"`
	Balance money.Amount `json:"balance"`
}

// Pay implements order.BillingClient.
func (c *Client) Pay(ctx context.Context, paymentID, userID uuid.UUID, amount money.Amount) (order.Payment, error) {
	start := time.Now()
	p, outcome, err := c.pay(ctx, paymentID, userID, amount)
	c.latency.WithLabelValues(outcome).Observe(time.Since(start).Seconds())
	return p, err
}

func (c *Client) pay(ctx context.Context, paymentID, userID uuid.UUID, amount money.Amount) (order.Payment, string, error) {
	status, body, err := httpclient.DoJSON(ctx, c.http, http.MethodPost, c.baseURL+"/internal/payments",
		paymentRequest{PaymentID: paymentID.String(), UserID: userID.String(), Amount: amount})
	if err != nil {
		return order.Payment{}, "unreachable", apperr.Wrap(err, apperr.Unavailable, "billing unreachable")
	}
	switch {
	case status == http.StatusOK:
		var resp paymentResponse
		if err := json.Unmarshal(body, &resp); err != nil {
			return order.Payment{}, "bad_response", apperr.Wrap(err, apperr.Unavailable, "billing answered an unreadable payment")
		}
		return order.Payment{Paid: resp.Status == "completed", Balance: resp.Balance}, resp.Status, nil
	case status == http.StatusNotFound:
		return order.Payment{}, "not_found", apperr.New(apperr.NotFound, "no billing account for user %s", userID)
	case status >= 500:
		return order.Payment{}, "unavailable", apperr.New(apperr.Unavailable, "billing answered %d", status)
	default:
		return order.Payment{}, "rejected", fmt.Errorf("billing rejected payment %s: %d %s", paymentID, status, body)
	}
}
