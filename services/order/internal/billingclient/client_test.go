package billingclient_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/order-system/order-system/api/payments"
	"github.com/order-system/order-system/pkg/apperr"
	"github.com/order-system/order-system/pkg/auth"
	"github.com/order-system/order-system/pkg/logger"
	"github.com/order-system/order-system/services/order/internal/billingclient"
	"github.com/order-system/order-system/services/order/internal/order"
)

// TestOnlyBillingsOwnAnswersDecideAnOrder: only billing's own answers decide an order; anything else leaves the
// outcome unknown (unavailable), so the order is retried instead of failed by mistake.
func TestOnlyBillingsOwnAnswersDecideAnOrder(t *testing.T) {
	t.Parallel()
	user := uuid.New()
	tests := []struct {
		name    string
		status  int
		body    string
		want    order.Payment
		wantErr apperr.Code
	}{
		{"paid", 200, `{"status":"completed","balance":499.5}`, order.Payment{Outcome: payments.Completed, Balance: 499_50}, ""},
		{"refused", 200, `{"status":"insufficient_funds","balance":10}`, order.Payment{Outcome: payments.InsufficientFunds, Balance: 10_00}, ""},
		{"voided", 200, `{"status":"voided","balance":0}`, order.Payment{Outcome: payments.Voided}, ""},
		// Accounts from before billing's cap may hold more than an order can cost.
		{"paid, balance above the cap", 200, `{"status":"completed","balance":1000000000000000.5}`, order.Payment{Outcome: payments.Completed, Balance: 100000000000000050}, ""},
		{"refused, largest balance", 200, `{"status":"insufficient_funds","balance":92233720368547758.07}`, order.Payment{Outcome: payments.InsufficientFunds, Balance: 1<<63 - 1}, ""},
		{"balance beyond any amount", 200, `{"status":"completed","balance":92233720368547758.08}`, order.Payment{}, apperr.Unavailable},
		{"unknown outcome", 200, `{"status":"maybe","balance":0}`, order.Payment{}, apperr.Unavailable},
		{"unreadable answer", 200, `<html>`, order.Payment{}, apperr.Unavailable},
		{"no account", 404, `{"code":"not_found","message":"no billing account","userId":"` + user.String() + `"}`, order.Payment{}, apperr.NotFound},
		{"no account of another user", 404, `{"code":"not_found","userId":"` + uuid.NewString() + `"}`, order.Payment{}, apperr.Unavailable},
		{"a route that does not exist", 404, `{"code":"not_found","message":"resource not found"}`, order.Payment{}, apperr.Unavailable},
		{"a proxy's 404", 404, `<html>not found</html>`, order.Payment{}, apperr.Unavailable},
		{"billing down", 503, `{"code":"unavailable"}`, order.Payment{}, apperr.Unavailable},
		{"billing fails", 500, `{"code":"internal"}`, order.Payment{}, apperr.Unavailable},
		{"mismatch", 422, `{"code":"payment_mismatch"}`, order.Payment{}, apperr.Unavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var path, requestID, key string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				path, requestID, key = r.URL.Path, r.Header.Get("X-Request-ID"), r.Header.Get("Idempotency-Key")
				w.WriteHeader(tt.status)
				io.WriteString(w, tt.body)
			}))
			defer srv.Close()
			c := billingclient.New(srv.URL, time.Second, auth.Config{}, prometheus.NewRegistry())
			ctx := logger.WithRequestID(context.Background(), "req-7")
			for _, call := range []struct {
				do   func(context.Context, order.Order) (order.Payment, error)
				path string
			}{{c.Pay, "/internal/payments"}, {c.Void, "/internal/payments/void"}} {
				payment := uuid.New()
				got, err := call.do(ctx, order.Order{ID: payment, UserID: user, Price: 1_00})
				if tt.wantErr != "" && !apperr.Is(err, tt.wantErr) || tt.wantErr == "" && err != nil {
					t.Fatalf("%s: err = %v, want code %q", call.path, err, tt.wantErr)
				}
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("%s: payment (-want +got):\n%s", call.path, diff)
				}
				if path != call.path || requestID != "req-7" {
					t.Errorf("request to %s with request id %q, want %s with req-7", path, requestID, call.path)
				}
				// The payment id as Idempotency-Key lets the transport resend the call on a
				// new connection when billing closed a kept-alive one without answering.
				if key != payment.String() {
					t.Errorf("%s: Idempotency-Key %q, want the payment id %s", call.path, key, payment)
				}
			}
		})
	}
}

func TestUnreachableAndTimeout(t *testing.T) {
	t.Parallel()
	hung := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { time.Sleep(2 * time.Second) }))
	defer hung.Close()
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	for name, url := range map[string]string{"hung": hung.URL, "closed": closed.URL} {
		start := time.Now()
		_, err := billingclient.New(url, 200*time.Millisecond, auth.Config{}, prometheus.NewRegistry()).Pay(context.Background(), order.Order{ID: uuid.New(), UserID: uuid.New(), Price: 1})
		if !apperr.Is(err, apperr.Unavailable) {
			t.Errorf("%s billing: err = %v, want unavailable", name, err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("%s billing: the call took %s, want it cut at the 200ms timeout", name, d)
		}
	}
}

// TestPayCarriesTheDeadline: billing is told the order's pay deadline with a payment, so
// that a call it only gets to after the deadline does not debit; a void never debits and
// carries none.
func TestPayCarriesTheDeadline(t *testing.T) {
	t.Parallel()
	bodies := map[string]string{}
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies[r.URL.Path] = string(b)
		mu.Unlock()
		io.WriteString(w, `{"status":"voided","balance":0}`)
	}))
	defer srv.Close()
	c := billingclient.New(srv.URL, time.Second, auth.Config{}, prometheus.NewRegistry())
	o := order.Order{ID: uuid.New(), UserID: uuid.New(), Price: 2_50, PayBy: time.Date(2026, 12, 6, 12, 30, 0, 123456000, time.FixedZone("", 3600))}
	if _, err := c.Pay(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Void(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"/internal/payments":      `{"paymentId":"` + o.ID.String() + `","userId":"` + o.UserID.String() + `","amount":2.5,"payBy":"2026-12-06T11:30:00.123456Z"}`,
		"/internal/payments/void": `{"paymentId":"` + o.ID.String() + `","userId":"` + o.UserID.String() + `","amount":2.5}`,
	}
	if diff := cmp.Diff(want, bodies); diff != "" {
		t.Errorf("request bodies (-want +got):\n%s", diff)
	}
}

// TestEveryOrderOutcomeIsExportedFromTheStart: before any call, the outcomes that finish an
// order (completed, and the failures) are series with a count of 0, so the rate of failed
// orders is 0 rather than missing until the first failure.
func TestEveryOrderOutcomeIsExportedFromTheStart(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	billingclient.New("http://127.0.0.1:1", time.Second, auth.Config{}, reg)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	exported := map[string]bool{}
	for _, f := range families {
		if f.GetName() != "billing_call_duration_seconds" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "outcome" && m.GetHistogram().GetSampleCount() == 0 {
					exported[l.GetValue()] = true
				}
			}
		}
	}
	for _, outcome := range []string{"completed", "insufficient_funds", "voided", "not_found"} {
		if !exported[outcome] {
			t.Errorf("no billing_call_duration_seconds{outcome=%q} with a count of 0 among %v", outcome, exported)
		}
	}
}
