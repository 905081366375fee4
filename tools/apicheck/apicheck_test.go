package apicheck_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/order-system/order-system/tools/apicheck"
)

func load(t *testing.T) *apicheck.Checker {
	t.Helper()
	c, err := apicheck.Load(context.Background(), "../../api/openapi.yaml", "../../api/billing-internal.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

const (
	userID  = "6f1c2a5e-8a3b-4c1d-9e2f-0a1b2c3d4e5f"
	orderID = "0b9e8d7c-6a5b-4c3d-8e2f-1a2b3c4d5e6f"
)

// TestCheckReportsEveryExchangeTheDocumentsRefuse feeds the checker exchanges that match the documents and exchanges that do not;
// each that does not must be reported with the reason.
func TestCheckReportsEveryExchangeTheDocumentsRefuse(t *testing.T) {
	t.Parallel()
	order := `{"id":"` + orderID + `","userId":"` + userID + `","email":"a@example.com","price":0.3,"status":"completed","createdAt":"2026-01-02T03:04:05.123456Z"}`
	failed := `{"id":"` + orderID + `","userId":"` + userID + `","email":"a@example.com","price":1000,"status":"failed","failureReason":"insufficient_funds","createdAt":"2026-01-02T03:04:05Z"}`
	tests := []struct {
		name          string
		method, path  string
		reqHeader     []string
		reqBody       string
		status        int
		header        []string // X-Request-ID is added unless noRequestID
		noRequestID   bool
		body          string
		wantViolation string // a substring of the one expected violation, "" for none
	}{
		{name: "user created", method: "POST", path: "/users", reqBody: `{"name":"Ann","email":"ann@example.com"}`,
			status: 201, body: `{"id":"` + userID + `","name":"Ann","email":"ann@example.com","createdAt":"2026-01-02T03:04:05Z"}`},
		{name: "user with a field the document does not have", method: "POST", path: "/users", reqBody: `{"name":"Ann","email":"ann@example.com"}`,
			status: 201, body: `{"id":"` + userID + `","name":"Ann","email":"ann@example.com","createdAt":"2026-01-02T03:04:05Z","admin":true}`,
			wantViolation: "does not match"},
		{name: "undocumented status", method: "GET", path: "/users/" + userID, status: 202, body: `{}`, wantViolation: "does not match"},
		{name: "no request id", method: "GET", path: "/users/" + userID, status: 404, noRequestID: true,
			body: `{"code":"not_found","message":"user not found"}`, wantViolation: "X-Request-ID"},
		{name: "a 404 with the code of a 400", method: "GET", path: "/users/" + userID, status: 404,
			body: `{"code":"invalid_request","message":"x"}`, wantViolation: "does not match"},
		{name: "order paid, exact cents", method: "POST", path: "/orders", reqBody: `{"userId":"` + userID + `","email":"a@example.com","price":0.3}`,
			status: 201, body: order},
		{name: "insufficient funds with the order", method: "POST", path: "/orders", reqBody: `{"userId":"` + userID + `","email":"a@example.com","price":1000}`,
			status: 400, body: `{"code":"insufficient_funds","message":"Insufficient funds","order":` + failed + `}`},
		{name: "insufficient funds without the order", method: "POST", path: "/orders", reqBody: `{"userId":"` + userID + `","email":"a@example.com","price":1000}`,
			status: 400, body: `{"code":"insufficient_funds","message":"Insufficient funds"}`, wantViolation: "does not match"},
		{name: "failed order without a reason", method: "GET", path: "/orders/" + orderID,
			status: 200, body: strings.Replace(failed, `"failureReason":"insufficient_funds",`, "", 1), wantViolation: "does not match"},
		{name: "replayed order", method: "POST", path: "/orders", reqHeader: []string{"Idempotency-Key", "k1"}, reqBody: `{"userId":"` + userID + `","email":"a@example.com","price":0.3}`,
			status: 201, header: []string{"X-Idempotency-Cached", "true", "Idempotent-Replayed", "true"}, body: order},
		{name: "price with three decimals accepted", method: "POST", path: "/orders", reqBody: `{"userId":"` + userID + `","email":"a@example.com","price":0.301}`,
			status: 201, body: order, wantViolation: "not refused with a 4xx"},
		{name: "price with three decimals refused", method: "POST", path: "/orders", reqBody: `{"userId":"` + userID + `","email":"a@example.com","price":0.301}`,
			status: 400, body: `{"code":"invalid_request","message":"request validation failed","fields":{"price":"must have at most 2 decimals"}}`},
		{name: "negative balance", method: "GET", path: "/billing/balance/" + userID,
			status: 200, body: `{"userId":"` + userID + `","balance":-1,"currency":"RUB"}`, wantViolation: "does not match"},
		{name: "no account, the user named", method: "GET", path: "/billing/balance/" + userID,
			status: 404, header: []string{"Retry-After", "1"}, body: `{"code":"not_found","message":"no billing account","userId":"` + userID + `"}`},
		{name: "no account, the user not named", method: "GET", path: "/billing/balance/" + userID,
			status: 404, header: []string{"Retry-After", "1"}, body: `{"code":"not_found","message":"no billing account"}`, wantViolation: "does not match"},
		{name: "no account, no Retry-After", method: "GET", path: "/billing/balance/" + userID,
			status: 404, body: `{"code":"not_found","message":"no billing account","userId":"` + userID + `"}`, wantViolation: "Retry-After"},
		{name: "a 500", method: "GET", path: "/billing/balance/" + userID,
			status: 500, body: `{"code":"internal","message":"internal error"}`, wantViolation: "500 internal"},
		{name: "unknown path", method: "GET", path: "/nothing", status: 404, body: `{"code":"not_found","message":"resource not found"}`},
		{name: "unknown path answered 200", method: "GET", path: "/nothing", status: 200, body: `{"code":"not_found","message":"resource not found"}`, wantViolation: "want 404"},
		{name: "wrong method", method: "DELETE", path: "/orders", status: 405, body: `{"code":"method_not_allowed","message":"method not allowed"}`},
		{name: "internal payment", method: "POST", path: "/internal/payments", reqBody: `{"paymentId":"` + orderID + `","userId":"` + userID + `","amount":5}`,
			status: 200, body: `{"paymentId":"` + orderID + `","userId":"` + userID + `","amount":5,"status":"completed","balance":995}`},
		{name: "internal payment, unknown outcome", method: "POST", path: "/internal/payments", reqBody: `{"paymentId":"` + orderID + `","userId":"` + userID + `","amount":5}`,
			status: 200, body: `{"paymentId":"` + orderID + `","userId":"` + userID + `","amount":5,"status":"maybe","balance":995}`, wantViolation: "does not match"},
	}
	c := load(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, "http://gateway"+tt.path, strings.NewReader(tt.reqBody))
			if err != nil {
				t.Fatal(err)
			}
			if tt.reqBody != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			for i := 0; i+1 < len(tt.reqHeader); i += 2 {
				req.Header.Set(tt.reqHeader[i], tt.reqHeader[i+1])
			}
			h := http.Header{"Content-Type": {"application/json"}}
			if !tt.noRequestID {
				h.Set("X-Request-ID", "r1")
			}
			for i := 0; i+1 < len(tt.header); i += 2 {
				h.Set(tt.header[i], tt.header[i+1])
			}
			got := c.Check(context.Background(), apicheck.Exchange{Request: req, RequestBody: []byte(tt.reqBody), Status: tt.status, Header: h, ResponseBody: []byte(tt.body)})
			switch {
			case tt.wantViolation == "" && len(got) > 0:
				t.Errorf("unexpected violations: %q", got)
			case tt.wantViolation != "" && (len(got) != 1 || !strings.Contains(got[0], tt.wantViolation)):
				t.Errorf("violations %q, want one containing %q", got, tt.wantViolation)
			}
		})
	}
}

// TestReportNamesUnreachedOperations: the report says which operations no exchange reached.
func TestReportNamesUnreachedOperations(t *testing.T) {
	t.Parallel()
	c := load(t)
	req, _ := http.NewRequest("GET", "http://gateway/users/"+userID, nil)
	c.Check(context.Background(), apicheck.Exchange{Request: req, Status: 404,
		Header: http.Header{"X-Request-Id": {"r"}, "Content-Type": {"application/json"}}, ResponseBody: []byte(`{"code":"not_found","message":"no"}`)})
	r := c.Report()
	for _, op := range r.Uncovered {
		if strings.Contains(op, "(getUser)") {
			t.Errorf("getUser was exercised but is listed as uncovered")
		}
	}
	if !containsOp(r.Uncovered, "(createOrder)") || !containsOp(r.Uncovered, "(pay)") {
		t.Errorf("uncovered %q, want createOrder and pay among them", r.Uncovered)
	}
}

func containsOp(ops []string, id string) bool {
	for _, op := range ops {
		if strings.Contains(op, id) {
			return true
		}
	}
	return false
}
