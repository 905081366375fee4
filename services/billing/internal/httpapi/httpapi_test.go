package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/prometheus/client_golang/prometheus"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/order-system/order-system/api/events"
	"github.com/order-system/order-system/pkg/apitest"
	"github.com/order-system/order-system/pkg/dbtest"
	"github.com/order-system/order-system/pkg/httpx"
	"github.com/order-system/order-system/pkg/idempotency"
	"github.com/order-system/order-system/pkg/rabbit"
	"github.com/order-system/order-system/services/billing/internal/billing"
	"github.com/order-system/order-system/services/billing/internal/consumer"
	"github.com/order-system/order-system/services/billing/internal/httpapi"
	"github.com/order-system/order-system/services/billing/internal/postgres"
	"github.com/order-system/order-system/services/billing/migrations"
)

type api struct {
	apitest.Client
	t   *testing.T
	svc *billing.Service
	db  *sqlx.DB
}

func newAPI(t *testing.T) *api {
	t.Helper()
	db := dbtest.New(t, migrations.FS)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc := billing.NewService(postgres.NewLedger(db), log)
	e := httpapi.New(svc, nil, idempotency.NewStore(db, time.Hour, time.Minute), map[string]httpx.Check{"database": db.PingContext}, log, prometheus.NewRegistry())
	return &api{Client: apitest.Serve(t, e), t: t, svc: svc, db: db}
}

func (a *api) do(method, path, body string) (int, string) {
	a.t.Helper()
	r := a.Call(a.t, method, path, body)
	return r.Status, r.Text()
}

func TestAccountLifecycle(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	user := uuid.NewString()
	steps := []struct {
		method, path, body string
		status             int
		want               string
	}{
		{"GET", "/billing/balance/" + user, "", 404, `"code":"not_found"`},
		{"PUT", "/internal/accounts/" + user, "", 201, `{"userId":"` + user + `","balance":0,"currency":"RUB"}`},
		{"PUT", "/internal/accounts/" + user, "", 200, `{"userId":"` + user + `","balance":0,"currency":"RUB"}`},
		{"GET", "/billing/balance/" + user, "", 200, `{"userId":"` + user + `","balance":0,"currency":"RUB"}`},
		{"POST", "/billing/deposit", `{"userId":"` + user + `","amount":1000}`, 200, `"balance":1000,`},
		{"POST", "/billing/deposit", `{"userId":"` + user + `","amount":0.5}`, 200, `"balance":1000.5,`},
		{"POST", "/internal/payments", `{"paymentId":"` + user + `","userId":"` + user + `","amount":500}`, 200, `"status":"completed","balance":500.5}`},
		{"POST", "/internal/payments", `{"paymentId":"` + user + `","userId":"` + user + `","amount":500}`, 200, `"status":"completed","balance":500.5}`},
		{"POST", "/internal/payments", `{"paymentId":"` + user + `","userId":"` + user + `","amount":501}`, 422, `"code":"payment_mismatch"`},
		{"POST", "/internal/payments", `{"paymentId":"` + uuid.NewString() + `","userId":"` + user + `","amount":1000}`, 200, `"status":"insufficient_funds","balance":500.5}`},
		{"GET", "/billing/balance/" + user, "", 200, `"balance":500.5,`},
		// Bad input never reaches the ledger.
		{"POST", "/billing/deposit", `{"userId":"` + user + `","amount":0}`, 400, `"amount":"must be greater than 0"`},
		{"POST", "/billing/deposit", `{"userId":"` + user + `","amount":-5}`, 400, `"amount":"must be greater than 0"`},
		{"POST", "/billing/deposit", `{"userId":"` + user + `","amount":1.001}`, 400, `"amount":"must be a decimal number with at most 2 decimals"`},
		{"POST", "/billing/deposit", `{"userId":"nope","amount":1}`, 400, `"userId":"must be a UUID"`},
		{"POST", "/billing/deposit", `{"userId":"` + uuid.NewString() + `","amount":1}`, 404, `"code":"not_found"`},
		{"GET", "/billing/balance/nope", "", 400, `"userId":"must be a UUID"`},
		{"GET", "/billing/transactions/" + uuid.NewString(), "", 404, `"code":"not_found"`},
		{"DELETE", "/billing/deposit", "", 405, `"code":"method_not_allowed"`},
	}
	for _, s := range steps {
		status, body := a.do(s.method, s.path, s.body)
		if status != s.status || !strings.Contains(body, s.want) {
			t.Fatalf("%s %s %s = %d %s; want %d containing %s", s.method, s.path, s.body, status, body, s.status, s.want)
		}
	}

	_, body := a.do("GET", "/billing/transactions/"+user, "")
	var entries []struct {
		Type         string          `json:"type"`
		Amount       json.RawMessage `json:"amount"`
		BalanceAfter json.RawMessage `json:"balanceAfter"`
		PaymentID    string          `json:"paymentId"`
	}
	if err := json.Unmarshal([]byte(body), &entries); err != nil {
		t.Fatal(err)
	}
	// Newest first; the refused payment left no entry.
	if len(entries) != 3 || entries[0].Type != "debit" || entries[0].PaymentID != user || string(entries[0].BalanceAfter) != "500.5" ||
		entries[1].Type != "deposit" || string(entries[1].Amount) != "0.5" || entries[2].PaymentID != "" {
		t.Fatalf("transactions = %s", body)
	}
}

// A user registered while billing was down has no account until billing consumes the
// user.created event. A deposit in that window is told to retry, and the keyed retry after
// the account opened deposits instead of replaying the 404.
func TestDepositBeforeAccountOpens(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	user := uuid.NewString()
	deposit := func() (apitest.Response, string) {
		r := a.Call(t, "POST", "/billing/deposit", `{"userId":"`+user+`","amount":10}`, idempotency.HeaderKey, "deposit-"+user)
		return r, string(r.Body)
	}
	for _, path := range []string{"/billing/balance/" + user, "/billing/transactions/" + user} {
		resp := a.Call(t, "GET", path, "")
		if resp.Status != 404 || resp.Header.Get("Retry-After") != "1" {
			t.Fatalf("GET %s = %d Retry-After=%q, want 404 with Retry-After: 1", path, resp.Status, resp.Header.Get("Retry-After"))
		}
	}
	resp, body := deposit()
	if resp.Status != 404 || resp.Header.Get("Retry-After") != "1" || !strings.Contains(body, `"userId":"`+user+`"`) {
		t.Fatalf("deposit before the account = %d Retry-After=%q %s, want 404 naming the user with Retry-After: 1", resp.Status, resp.Header.Get("Retry-After"), body)
	}
	if status, body := a.do("PUT", "/internal/accounts/"+user, ""); status != 201 {
		t.Fatalf("open account = %d %s", status, body)
	}
	resp, body = deposit()
	if resp.Status != 200 || resp.Header.Get(idempotency.HeaderCached) != "" || !strings.Contains(body, `"balance":10,`) {
		t.Fatalf("keyed retry after the account opened = %d cached=%q %s, want a fresh deposit", resp.Status, resp.Header.Get(idempotency.HeaderCached), body)
	}
	resp, body = deposit()
	if resp.Status != 200 || resp.Header.Get(idempotency.HeaderCached) != "true" || !strings.Contains(body, `"balance":10,`) {
		t.Fatalf("third call = %d cached=%q %s, want the stored deposit", resp.Status, resp.Header.Get(idempotency.HeaderCached), body)
	}
	if status, body := a.do("GET", "/billing/balance/"+user, ""); status != 200 || !strings.Contains(body, `"balance":10,`) {
		t.Fatalf("balance = %d %s, want 10: one deposit", status, body)
	}
}

func TestUserCreatedOpensAccount(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	handle := consumer.Handler(a.svc)
	user := uuid.NewString()
	env, _ := events.New("test", events.UserCreated, events.UserCreatedData{UserID: user, Name: "A", Email: "a@b.cd"}, time.Now())
	body, _ := json.Marshal(env)
	for range 2 { // a redelivery changes nothing
		if err := handle(context.Background(), amqp.Delivery{Body: body}); err != nil {
			t.Fatal(err)
		}
	}
	if status, got := a.do("GET", "/billing/balance/"+user, ""); status != 200 || !strings.Contains(got, `"balance":0`) {
		t.Fatalf("balance after user.created = %d %s", status, got)
	}
	for _, poison := range []string{`not json`, `{"specversion":"1.0","id":"x","type":"user.created","data":{"userId":"nope"}}`} {
		if err := handle(context.Background(), amqp.Delivery{Body: []byte(poison)}); !errors.Is(err, rabbit.ErrPoison) {
			t.Errorf("handler(%s) = %v, want a poison error", poison, err)
		}
	}
}

// keyedDeposit sends a deposit with an Idempotency-Key and returns the status, the body as
// sent and whether it was a replay.
func (a *api) keyedDeposit(key, body string) (int, string, bool) {
	a.t.Helper()
	r := a.Call(a.t, "POST", "/billing/deposit", body, idempotency.HeaderKey, key)
	return r.Status, string(r.Body), r.Header.Get(idempotency.HeaderCached) == "true"
}

// TestKeyedDepositCommitsWithItsAnswer: the key, the credit, its entry and the stored answer
// are one transaction; a repeat replays the answer, another payload writes nothing.
func TestKeyedDepositCommitsWithItsAnswer(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	user := uuid.NewString()
	if status, body := a.do("PUT", "/internal/accounts/"+user, ""); status != 201 {
		t.Fatalf("open account = %d %s", status, body)
	}
	body := `{"userId":"` + user + `","amount":10}`
	status, first, _ := a.keyedDeposit("dep", body)
	if status != 200 || !strings.Contains(first, `"balance":10,`) {
		t.Fatalf("deposit = %d %s, want 200 balance 10", status, first)
	}
	var together int
	if err := a.db.Get(&together, `SELECT count(*) FROM entries JOIN accounts ON accounts.xmin = entries.xmin
		JOIN idempotency_keys k ON k.xmin = entries.xmin
		WHERE entries.user_id = $1 AND k.key = 'dep' AND k.status_code = 200 AND k.body = convert_to($2, 'UTF8')`, user, first); err != nil {
		t.Fatal(err)
	}
	if together != 1 {
		t.Fatalf("credit, entry and stored answer %s in one transaction: %d rows, want 1", first, together)
	}
	if status, again, cached := a.keyedDeposit("dep", body); status != 200 || again != first || !cached {
		t.Fatalf("repeat = %d %s cached=%v, want %s replayed", status, again, cached, first)
	}
	if status, other, _ := a.keyedDeposit("dep", `{"userId":"`+user+`","amount":20}`); status != 422 {
		t.Fatalf("other payload = %d %s, want 422", status, other)
	}
	var entries int
	a.db.Get(&entries, `SELECT count(*) FROM entries WHERE user_id = $1`, user)
	if _, balance := a.do("GET", "/billing/balance/"+user, ""); entries != 1 || !strings.Contains(balance, `"balance":10,`) {
		t.Fatalf("%d entries, balance %s; want one deposit of 10", entries, balance)
	}
}

// TestKeyedDepositAboveTheCapIsStoredAsRefused: a deposit the cap refuses rolls its
// transaction back, key included; the 400 is then stored under the key and replayed.
func TestKeyedDepositAboveTheCapIsStoredAsRefused(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	user := uuid.NewString()
	a.do("PUT", "/internal/accounts/"+user, "")
	if status, body, _ := a.keyedDeposit("fill", `{"userId":"`+user+`","amount":999999999999}`); status != 200 {
		t.Fatalf("deposit to just below the cap = %d %s", status, body)
	}
	body := `{"userId":"` + user + `","amount":1}`
	status, first, _ := a.keyedDeposit("over", body)
	if status != 400 || !strings.Contains(first, "would take the balance above") {
		t.Fatalf("deposit above the cap = %d %s, want 400", status, first)
	}
	if status, again, cached := a.keyedDeposit("over", body); status != 400 || again != first || !cached {
		t.Fatalf("repeat = %d %s cached=%v, want the 400 replayed", status, again, cached)
	}
	if _, balance := a.do("GET", "/billing/balance/"+user, ""); !strings.Contains(balance, `"balance":999999999999,`) {
		t.Fatalf("balance %s, want unchanged", balance)
	}
}
