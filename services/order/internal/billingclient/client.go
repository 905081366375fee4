// Package billingclient is the order service's HTTP client of the billing service.
package billingclient

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/order-system/order-system/api/payments"
	"github.com/order-system/order-system/pkg/apperr"
	"github.com/order-system/order-system/pkg/auth"
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

// New returns a client of the billing service at baseURL; every call ends within
// timeout, so a hung billing turns into a quick 503 rather than a hung order request. With
// sign-in on, every call carries the service credential credential names.
func New(baseURL string, timeout time.Duration, credential auth.Config, reg prometheus.Registerer) *Client {
	latency := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "billing_call_duration_seconds", Help: "Latency of payment calls to billing, by outcome.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
	}, []string{"outcome"})
	reg.MustRegister(latency)
	// The outcomes of an order's payment are exported from the start, at 0, so that the rate
	// of failed orders is 0 rather than missing until the first one (a series that appears
	// with its first observation hides that observation from rate()).
	for _, outcome := range []string{string(payments.Completed), string(payments.InsufficientFunds), string(payments.Voided), "not_found"} {
		latency.WithLabelValues(outcome)
	}
	client := httpclient.New(timeout)
	client.Transport = auth.ServiceTransport(credential, client.Transport)
	return &Client{baseURL: baseURL, http: client, latency: latency}
}

type paymentRequest struct {
	PaymentID string       `json:"paymentId"`
	UserID    string       `json:"userId"`
	Amount    money.Amount `json:"amount"`
	PayBy     *time.Time   `json:"payBy,omitempty"`
}

// toPaymentRequest is the payment request for o: its id is the payment id, and billing
// debits it only before its pay deadline.
func toPaymentRequest(o order.Order) paymentRequest {
	r := paymentRequest{PaymentID: o.ID.String(), UserID: o.UserID.String(), Amount: o.Price}
	if !o.PayBy.IsZero() {
		payBy := o.PayBy.UTC()
		r.PayBy = &payBy
	}
	return r
}

type paymentResponse struct {
	Status string `json:"status"`
	// Balance is read with money.ParseBalance, not as an amount: an account from before
	// billing capped balances may hold more than any amount, and its payments are answers
	// all the same.
	Balance json.RawMessage `json:"balance"`
}

// Pay implements order.BillingClient.
func (c *Client) Pay(ctx context.Context, o order.Order) (order.Payment, error) {
	return c.post(ctx, "/internal/payments", toPaymentRequest(o))
}

// Void implements order.BillingClient.
func (c *Client) Void(ctx context.Context, o order.Order) (order.Payment, error) {
	r := toPaymentRequest(o)
	r.PayBy = nil // a void never debits
	return c.post(ctx, "/internal/payments/void", r)
}

// post sends a payment request to billing's path and records the call's latency by outcome.
func (c *Client) post(ctx context.Context, path string, r paymentRequest) (order.Payment, error) {
	start := time.Now()
	p, outcome, err := c.call(ctx, path, r)
	c.latency.WithLabelValues(outcome).Observe(time.Since(start).Seconds())
	return p, err
}

// call trusts only answers that can come from billing itself: a stored outcome, or a 404
// that says the user has no account. Anything else (a route's 404, a 400 from a version
// skew, an outcome this client does not know) leaves the outcome unknown: unavailable, so
// the order stays pending and is retried rather than failed by mistake.
func (c *Client) call(ctx context.Context, path string, req paymentRequest) (order.Payment, string, error) {
	status, body, err := httpclient.DoJSON(ctx, c.http, http.MethodPost, c.baseURL+path, req.PaymentID, req)
	if err != nil {
		return order.Payment{}, "unreachable", apperr.Wrap(err, apperr.Unavailable, "billing unreachable")
	}
	switch {
	case status == http.StatusOK:
		var resp paymentResponse
		if err := json.Unmarshal(body, &resp); err != nil {
			return order.Payment{}, "bad_response", apperr.Wrap(err, apperr.Unavailable, "billing answered an unreadable payment")
		}
		balance, err := money.ParseBalance(string(resp.Balance))
		if err != nil {
			return order.Payment{}, "bad_response", apperr.Wrap(err, apperr.Unavailable, "billing answered an unreadable balance")
		}
		switch outcome := payments.Outcome(resp.Status); outcome {
		case payments.Completed, payments.InsufficientFunds, payments.Voided:
			return order.Payment{Outcome: outcome, Balance: balance}, resp.Status, nil
		}
		return order.Payment{}, "bad_response", apperr.New(apperr.Unavailable, "billing answered payment %s with unknown status %q", req.PaymentID, resp.Status)
	case status == http.StatusNotFound && accountMissing(body, req.UserID):
		return order.Payment{}, "not_found", apperr.New(apperr.NotFound, "no billing account for user %s", req.UserID)
	case status >= 500:
		return order.Payment{}, "unavailable", apperr.New(apperr.Unavailable, "billing answered %d", status)
	default:
		return order.Payment{}, "rejected", apperr.New(apperr.Unavailable, "billing answered payment %s with %d %.200s", req.PaymentID, status, body)
	}
}

// accountMissing reports whether body is billing's own answer that userID has no account:
// code not_found naming that user. Any 404 for a route (an older billing without the
// endpoint, a wrong BILLING_URL) says not_found too, but names no user.
func accountMissing(body []byte, userID string) bool {
	var e struct {
		Code   apperr.Code `json:"code"`
		UserID string      `json:"userId"`
	}
	_ = json.Unmarshal(body, &e) // not JSON: not billing's answer
	return e.Code == apperr.NotFound && e.UserID == userID
}
