// Package billing is the order service's HTTP client of the billing service.
package billing

import (
	"context"
	"encoding/json"
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
	return c.settle(ctx, "/internal/payments", paymentID, userID, amount)
}

// Void implements order.BillingClient.
func (c *Client) Void(ctx context.Context, paymentID, userID uuid.UUID, amount money.Amount) (order.Payment, error) {
	return c.settle(ctx, "/internal/payments/void", paymentID, userID, amount)
}

func (c *Client) settle(ctx context.Context, path string, paymentID, userID uuid.UUID, amount money.Amount) (order.Payment, error) {
	start := time.Now()
	p, outcome, err := c.call(ctx, path, paymentRequest{PaymentID: paymentID.String(), UserID: userID.String(), Amount: amount})
	c.latency.WithLabelValues(outcome).Observe(time.Since(start).Seconds())
	return p, err
}

// call trusts only answers that can come from billing itself: a stored outcome, or a 404
// whose body says not_found. Anything else (a proxy's 404 for a wrong BILLING_URL, a 400
// from a version skew, an outcome this client does not know) leaves the outcome unknown:
// unavailable, so the order stays pending and is retried rather than failed by mistake.
func (c *Client) call(ctx context.Context, path string, req paymentRequest) (order.Payment, string, error) {
	status, body, err := httpclient.DoJSON(ctx, c.http, http.MethodPost, c.baseURL+path, req)
	if err != nil {
		return order.Payment{}, "unreachable", apperr.Wrap(err, apperr.Unavailable, "billing unreachable")
	}
	switch {
	case status == http.StatusOK:
		var resp paymentResponse
		if err := json.Unmarshal(body, &resp); err != nil {
			return order.Payment{}, "bad_response", apperr.Wrap(err, apperr.Unavailable, "billing answered an unreadable payment")
		}
		switch outcome := order.PaymentOutcome(resp.Status); outcome {
		case order.PaymentPaid, order.PaymentRefused, order.PaymentVoided:
			return order.Payment{Outcome: outcome, Balance: resp.Balance}, resp.Status, nil
		}
		return order.Payment{}, "bad_response", apperr.New(apperr.Unavailable, "billing answered payment %s with unknown status %q", req.PaymentID, resp.Status)
	case status == http.StatusNotFound && errorCode(body) == apperr.NotFound:
		return order.Payment{}, "not_found", apperr.New(apperr.NotFound, "no billing account for user %s", req.UserID)
	case status >= 500:
		return order.Payment{}, "unavailable", apperr.New(apperr.Unavailable, "billing answered %d", status)
	default:
		return order.Payment{}, "rejected", apperr.New(apperr.Unavailable, "billing answered payment %s with %d %.200s", req.PaymentID, status, body)
	}
}

// errorCode reads the code of one of billing's error bodies.
func errorCode(body []byte) apperr.Code {
	var e struct {
		Code apperr.Code `json:"code"`
	}
	_ = json.Unmarshal(body, &e) // not JSON: no code
	return e.Code
}
