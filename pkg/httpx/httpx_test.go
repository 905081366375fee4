package httpx_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/labstack/echo/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/order-system/order-system/pkg/httpx"
	"github.com/order-system/order-system/pkg/metrics"
	"github.com/order-system/order-system/pkg/money"
)

type payload struct {
	ID     string          `json:"id"`
	Email  string          `json:"email"`
	Amount json.RawMessage `json:"amount"`
}

func newEcho() *echo.Echo {
	e := httpx.New(slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	e.POST("/things", func(c *echo.Context) error {
		var p payload
		if err := httpx.Decode(c, &p); err != nil {
			return err
		}
		f := httpx.Fields{}
		f.UUID("id", p.ID)
		f.Email("email", p.Email)
		amount := f.Amount("amount", p.Amount)
		if err := f.Err(); err != nil {
			return err
		}
		return c.JSON(http.StatusOK, map[string]any{"amount": amount})
	})
	return e
}

func TestValidationAndErrors(t *testing.T) {
	t.Parallel()
	e := newEcho()
	const id = "6f1c1a52-7f0c-4c1e-9a55-3f7d8e2b9c10"
	tests := []struct {
		name   string
		method string
		body   string
		status int
		want   httpx.ErrorResponse
	}{
		{"not json", "POST", `{`, 400, httpx.ErrorResponse{Code: "invalid_request", Message: "request body must be a JSON object"}},
		{"empty", "POST", ``, 400, httpx.ErrorResponse{Code: "invalid_request", Message: "request body must be a JSON object"}},
		{"array", "POST", `[]`, 400, httpx.ErrorResponse{Code: "invalid_request", Message: "request body must be a JSON object"}},
		{"two objects", "POST", `{} {}`, 400, httpx.ErrorResponse{Code: "invalid_request", Message: "request body must hold a single JSON object"}},
		{"trailing brace", "POST", `{}}`, 400, httpx.ErrorResponse{Code: "invalid_request", Message: "request body must hold a single JSON object"}},
		{"trailing text", "POST", `{"email":"a@b.cd"} x`, 400, httpx.ErrorResponse{Code: "invalid_request", Message: "request body must hold a single JSON object"}},
		{"key twice", "POST", `{"amount":1,"amount":5}`, 400, httpx.ErrorResponse{Code: "invalid_request", Message: "request validation failed",
			Fields: map[string]string{"amount": "is given twice"}}},
		{"key in two letter cases", "POST", `{"amount":1,"AMOUNT":5}`, 400, httpx.ErrorResponse{Code: "invalid_request", Message: "request validation failed",
			Fields: map[string]string{"AMOUNT": `is given twice (as "amount" and "AMOUNT"; keys do not depend on letter case)`}}},
		{"Kelvin sign folds to k", "POST", `{"k":1,"\u212a":5}`, 400, httpx.ErrorResponse{Code: "invalid_request", Message: "request validation failed",
			Fields: map[string]string{"\u212a": "is given twice (as \"k\" and \"\u212a\"; keys do not depend on letter case)"}}},
		{"nested key twice", "POST", `{"extra":[{"a":1,"A":2}]}`, 400, httpx.ErrorResponse{Code: "invalid_request", Message: "request validation failed",
			Fields: map[string]string{"A": `is given twice (as "a" and "A"; keys do not depend on letter case)`}}},
		{"wrong type", "POST", `{"email": 5}`, 400, httpx.ErrorResponse{Code: "invalid_request", Message: "request validation failed", Fields: map[string]string{"email": "must be a string"}}},
		{"missing", "POST", `{}`, 400, httpx.ErrorResponse{Code: "invalid_request", Message: "request validation failed",
			Fields: map[string]string{"id": "is required", "email": "is required", "amount": "is required"}}},
		{"bad values", "POST", `{"id":"x","email":"a@","amount":1.234}`, 400, httpx.ErrorResponse{Code: "invalid_request", Message: "request validation failed",
			Fields: map[string]string{"id": "must be a UUID", "email": "must be an e-mail address", "amount": "must be a decimal number with at most 2 decimals"}}},
		{"display name email, zero, string amount", "POST", `{"id":"` + id + `","email":"A <a@b.cd>","amount":0}`, 400, httpx.ErrorResponse{Code: "invalid_request", Message: "request validation failed",
			Fields: map[string]string{"email": "must be an e-mail address", "amount": "must be greater than 0"}}},
		{"amount as a string", "POST", `{"id":"` + id + `","email":"a@b.cd","amount":"5"}`, 400, httpx.ErrorResponse{Code: "invalid_request", Message: "request validation failed",
			Fields: map[string]string{"amount": "must be a decimal number with at most 2 decimals"}}},
		{"wrong method", "DELETE", ``, 405, httpx.ErrorResponse{Code: "method_not_allowed", Message: "method not allowed"}},
		{"too large", "POST", `{"email":"` + strings.Repeat("a", 70_000) + `"}`, 413, httpx.ErrorResponse{Code: "payload_too_large", Message: "request body is larger than 64KB"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec := httptest.NewRecorder()
			e.ServeHTTP(rec, httptest.NewRequest(tt.method, "/things", strings.NewReader(tt.body)))
			var got httpx.ErrorResponse
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
				t.Fatalf("body %q: %v", rec.Body, err)
			}
			if rec.Code != tt.status {
				t.Errorf("status = %d, want %d", rec.Code, tt.status)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("body (-want +got):\n%s", diff)
			}
		})
	}
}

func TestValidRequestAndRequestID(t *testing.T) {
	t.Parallel()
	e := newEcho()
	req := httptest.NewRequest("POST", "/things", strings.NewReader(`{"id":"6f1c1a52-7f0c-4c1e-9a55-3f7d8e2b9c10","email":"a@b.cd","amount":499.5,"extra":true}`))
	req.Header.Set(httpx.HeaderRequestID, "trace-1")
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK || strings.TrimSpace(rec.Body.String()) != `{"amount":499.5}` {
		t.Fatalf("got %d %s, want 200 {\"amount\":499.5}", rec.Code, rec.Body)
	}
	if got := rec.Header().Get(httpx.HeaderRequestID); got != "trace-1" {
		t.Fatalf("X-Request-ID = %q, want the caller's trace-1", got)
	}
	rec = httptest.NewRecorder()
	e.ServeHTTP(rec, httptest.NewRequest("GET", "/nowhere", nil))
	if rec.Code != http.StatusNotFound || rec.Header().Get(httpx.HeaderRequestID) == "" {
		t.Fatalf("unknown route: %d, request id %q; want 404 with a generated id", rec.Code, rec.Header().Get(httpx.HeaderRequestID))
	}
}

func TestRequestIDIsReplacedUnlessSafe(t *testing.T) {
	t.Parallel()
	e := newEcho()
	tests := []struct {
		id   string
		kept bool
	}{
		{"6f1c1a52-7f0c-4c1e-9a55-3f7d8e2b9c10", true},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", true},
		{"svc.trace:42_a", true},
		{strings.Repeat("a", 128), true},
		{strings.Repeat("a", 129), false},
		{"a b", false},
		{"a\xffb", false},
		{"é", false},
		{"a/b", false},
	}
	for _, tt := range tests {
		req := httptest.NewRequest("GET", "/nowhere", nil)
		req.Header.Set(httpx.HeaderRequestID, tt.id)
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)
		got := rec.Header().Get(httpx.HeaderRequestID)
		if kept := got == tt.id; kept != tt.kept {
			t.Errorf("X-Request-ID %q answered as %q; kept = %v, want %v", tt.id, got, kept, tt.kept)
		}
		if got == "" {
			t.Errorf("X-Request-ID %q: no id in the response", tt.id)
		}
	}
}

// FuzzAmountField sends arbitrary text as the amount of a request: the API answers 200 with
// the same amount printed back when the text is an amount money.ParsePositive accepts, and
// 400 for anything else. Never a 500, never a rounded value.
func FuzzAmountField(f *testing.F) {
	for _, s := range []string{"500", "499.5", "0.01", "0", "-1", "1.234", "1e3", `"5"`, "null", "{}", "999999999999.99", "1000000000000"} {
		f.Add(s)
	}
	e := newEcho()
	f.Fuzz(func(t *testing.T, amount string) {
		body := `{"id":"6f1c1a52-7f0c-4c1e-9a55-3f7d8e2b9c10","email":"a@b.cd","amount":` + amount + `}`
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, httptest.NewRequest("POST", "/things", strings.NewReader(body)))
		// The oracle: the JSON value the server sees (whitespace around it is not part of it).
		var p payload
		err := json.Unmarshal([]byte(body), &p)
		var want money.Amount
		if err == nil {
			want, err = money.ParsePositive(string(p.Amount))
		}
		switch {
		case rec.Code >= 500:
			t.Fatalf("amount %q: status %d %s", amount, rec.Code, rec.Body)
		case err == nil:
			if rec.Code != http.StatusOK || strings.TrimSpace(rec.Body.String()) != `{"amount":`+want.String()+`}` {
				t.Fatalf("amount %q: got %d %s, want 200 with %s", amount, rec.Code, rec.Body, want)
			}
		case rec.Code != http.StatusBadRequest:
			t.Fatalf("amount %q (parse error %v): got %d %s, want 400", amount, err, rec.Code, rec.Body)
		}
	})
}

func TestReadinessIs503OnlyWhileARequiredCheckFails(t *testing.T) {
	t.Parallel()
	down := func(context.Context) error { return errors.New("down") }
	up := func(context.Context) error { return nil }
	tests := []struct {
		name   string
		checks map[string]httpx.Check
		status int
		body   string
	}{
		{"all up", map[string]httpx.Check{"database": up, "broker": httpx.Degraded(up)}, 200, `{"broker":"ok","database":"ok"}`},
		{"broker down", map[string]httpx.Check{"database": up, "broker": httpx.Degraded(down)}, 200, `{"broker":"degraded: down","database":"ok"}`},
		{"database down", map[string]httpx.Check{"database": down, "broker": httpx.Degraded(up)}, 503, `{"broker":"ok","database":"down"}`},
	}
	for _, tt := range tests {
		e := echo.New()
		httpx.Health(e, tt.checks, prometheus.NewRegistry())
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
		if rec.Code != tt.status || strings.TrimSpace(rec.Body.String()) != tt.body {
			t.Errorf("%s: /readyz = %d %s, want %d %s", tt.name, rec.Code, rec.Body, tt.status, tt.body)
		}
	}
}

// TestReadinessSeries: each check is readiness_check_up{check} at every scrape, 0 when it
// fails, degraded or not, and 0 when it hangs, within the scrape's bound.
func TestReadinessSeries(t *testing.T) {
	t.Parallel()
	hung := make(chan struct{})
	defer close(hung)
	broker := errors.New("down")
	reg := prometheus.NewRegistry()
	httpx.Health(echo.New(), map[string]httpx.Check{
		"database": func(context.Context) error { return nil },
		"broker":   httpx.Degraded(func(context.Context) error { return broker }),
		"cache":    func(context.Context) error { return errors.New("down") },
		"disk": func(context.Context) error {
			<-hung // ignores its context, as a driver waiting for a silent server does
			return nil
		},
	}, reg)
	scrape := func() map[string]float64 {
		start := time.Now()
		families, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d > metrics.ScrapeTimeout+time.Second {
			t.Errorf("scrape took %v, want at most the bound %v and a little", d, metrics.ScrapeTimeout)
		}
		got := map[string]float64{}
		for _, f := range families {
			if f.GetName() != "readiness_check_up" {
				continue
			}
			for _, m := range f.GetMetric() {
				got[m.GetLabel()[0].GetValue()] = m.GetGauge().GetValue()
			}
		}
		return got
	}
	want := map[string]float64{"database": 1, "broker": 0, "cache": 0, "disk": 0}
	if diff := cmp.Diff(want, scrape()); diff != "" {
		t.Errorf("readiness_check_up (-want +got):\n%s", diff)
	}
	broker = nil // the broker is back
	want["broker"] = 1
	if diff := cmp.Diff(want, scrape()); diff != "" {
		t.Errorf("readiness_check_up once the broker is back (-want +got):\n%s", diff)
	}
}
