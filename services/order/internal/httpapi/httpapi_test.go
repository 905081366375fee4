package httpapi_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/order-system/order-system/api/billingtest"
	"github.com/order-system/order-system/api/payments"
	"github.com/order-system/order-system/pkg/apitest"
	"github.com/order-system/order-system/pkg/auth"
	"github.com/order-system/order-system/pkg/dbtest"
	"github.com/order-system/order-system/pkg/httpx"
	"github.com/order-system/order-system/pkg/idempotency"
	"github.com/order-system/order-system/pkg/money"
	"github.com/order-system/order-system/services/order/internal/billingclient"
	"github.com/order-system/order-system/services/order/internal/httpapi"
	"github.com/order-system/order-system/services/order/internal/order"
	"github.com/order-system/order-system/services/order/internal/postgres"
	"github.com/order-system/order-system/services/order/migrations"
)

type env struct {
	apitest.Client
	t          *testing.T
	db         *sqlx.DB
	billingURL string
	svc        *order.Service
	billing    *billingtest.Billing
}

func newEnv(t *testing.T) *env {
	t.Helper()
	db := dbtest.New(t, migrations.FS)
	fb := billingtest.New()
	billingSrv := httptest.NewServer(fb)
	t.Cleanup(billingSrv.Close)

	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	reg := prometheus.NewRegistry()
	svc := order.NewService(postgres.NewOrders(db, func() {}, 2*time.Second), billingclient.New(billingSrv.URL, time.Second, auth.Config{}, reg), log)
	e := httpapi.New(svc, nil, idempotency.NewStore(db, time.Hour, time.Minute), map[string]httpx.Check{}, log, reg)
	return &env{Client: apitest.Serve(t, e), t: t, db: db, billingURL: billingSrv.URL, svc: svc, billing: fb}
}

func (e *env) user(balance int64) string {
	id := uuid.NewString()
	e.billing.SetBalance(id, money.Amount(balance))
	return id
}

type orderBody struct {
	ID            string `json:"id"`
	Status        string `json:"status"`
	FailureReason string `json:"failureReason"`
}

type response struct {
	Status  int
	Raw     string
	Code    string    `json:"code"`
	Message string    `json:"message"`
	Order   orderBody `json:"order"`
	orderBody
	Cached string
}

func (e *env) post(key, body string) response {
	e.t.Helper()
	r, err := e.send(key, body)
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

// send is post for a spawned goroutine, which must not end the test.
func (e *env) send(key, body string) (response, error) {
	var header []string
	if key != "" {
		header = []string{idempotency.HeaderKey, key}
	}
	resp, err := e.Do(http.MethodPost, "/orders", body, header...)
	if err != nil {
		return response{}, err
	}
	r := response{Status: resp.Status, Raw: string(resp.Body), Cached: resp.Header.Get(idempotency.HeaderCached)}
	json.Unmarshal(resp.Body, &r)
	json.Unmarshal(resp.Body, &r.orderBody)
	return r, nil
}

// reconcile makes every pending order due and runs one reconcile pass; it returns how many
// orders the pass took.
func (e *env) reconcile(cfg order.ReconcilerConfig) int {
	e.t.Helper()
	e.db.MustExec(`UPDATE orders SET next_attempt_at = now()`)
	n, err := e.svc.Reconcile(context.Background(), cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	return n
}

func orderJSON(user string, price string) string {
	return `{"userId":"` + user + `","email":"buyer@example.com","price":` + price + `}`
}

// events returns the routing keys in the outbox for an order.
func (e *env) events(orderID string) []string {
	var keys []string
	if err := e.db.Select(&keys, `SELECT routing_key FROM outbox WHERE convert_from(body, 'UTF8')::jsonb->'data'->>'orderId' = $1`, orderID); err != nil {
		e.t.Fatal(err)
	}
	return keys
}

func TestBasicScenario(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	user := e.user(1000_00)

	ok := e.post("", orderJSON(user, "500"))
	if ok.Status != 201 || ok.orderBody.Status != "completed" || !strings.Contains(ok.Raw, `"price":500,`) {
		t.Fatalf("order for 500 = %d %s", ok.Status, ok.Raw)
	}
	if got := e.events(ok.ID); len(got) != 1 || got[0] != "order.completed" {
		t.Fatalf("outbox for completed order = %v", got)
	}

	poor := e.post("", orderJSON(user, "1000"))
	if poor.Status != 400 || poor.Code != "insufficient_funds" || poor.Message != "Insufficient funds: balance 500, price 1000" ||
		poor.Order.Status != "failed" || poor.Order.ID == "" {
		t.Fatalf("order for 1000 = %d %s", poor.Status, poor.Raw)
	}
	if got := e.events(poor.Order.ID); len(got) != 1 || got[0] != "order.failed" {
		t.Fatalf("outbox for failed order = %v", got)
	}

	first := e.post("key-1", orderJSON(user, "100"))
	again := e.post("key-1", orderJSON(user, "100"))
	if first.Status != 201 || again.Raw != first.Raw || again.Cached != "true" || first.Cached != "" {
		t.Fatalf("idempotent repeat: first %d %s, again %d %s cached=%q", first.Status, first.Raw, again.Status, again.Raw, again.Cached)
	}
	if mismatch := e.post("key-1", orderJSON(user, "200")); mismatch.Status != 422 || mismatch.Code != "idempotency_key_mismatch" {
		t.Fatalf("same key, other price = %d %s", mismatch.Status, mismatch.Raw)
	}
	if e.billing.Balance(user) != 400_00 || e.billing.Debits(first.ID) != 1 {
		t.Fatalf("balance %d, debits of the keyed order %d; want 40000 and 1", e.billing.Balance(user), e.billing.Debits(first.ID))
	}

	status, body := e.get(t, "/orders/"+poor.Order.ID)
	if status != 200 || !strings.Contains(body, `"status":"failed"`) {
		t.Fatalf("GET failed order = %d %s", status, body)
	}
}

func TestBadInputAndUnknowns(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	user := e.user(10_00)
	tests := []struct {
		body   string
		status int
		want   string
	}{
		{orderJSON(user, "0"), 400, `"price":"must be greater than 0"`},
		{orderJSON(user, "1.999"), 400, `"price":"must be a decimal number with at most 2 decimals"`},
		{orderJSON(user, `"5"`), 400, `"price":"must be a decimal number with at most 2 decimals"`},
		{`{"userId":"x","email":"no","price":1}`, 400, `"email":"must be an e-mail address","userId":"must be a UUID"`},
		{`{"price":1}`, 400, `"email":"is required","userId":"is required"`},
		{`nonsense`, 400, `"code":"invalid_request"`},
		{orderJSON(uuid.NewString(), "1"), 404, `"failureReason":"account_not_found"`},
	}
	for _, tt := range tests {
		if r := e.post("", tt.body); r.Status != tt.status || !strings.Contains(r.Raw, tt.want) {
			t.Errorf("POST %s = %d %s; want %d containing %s", tt.body, r.Status, r.Raw, tt.status, tt.want)
		}
	}
	for path, want := range map[string]int{"/orders/" + uuid.NewString(): 404, "/orders/nope": 400} {
		if status, body := e.get(t, path); status != want {
			t.Errorf("GET %s = %d %s, want %d", path, status, body, want)
		}
	}
}

func TestBillingDownLeavesPendingThenReconcilerFinishes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	user := e.user(100_00)
	e.billing.Down.Store(true)

	r := e.post("retry-key", orderJSON(user, "30"))
	if r.Status != 503 || r.Code != "unavailable" || r.Order.Status != "pending" {
		t.Fatalf("order while billing is down = %d %s", r.Status, r.Raw)
	}
	// A retry with the key while billing is still down resumes the same order.
	if again := e.post("retry-key", orderJSON(user, "30")); again.Status != 503 || again.Order.ID != r.Order.ID || again.Cached != "" {
		t.Fatalf("retry while down = %d %s; want a fresh 503 for order %s", again.Status, again.Raw, r.Order.ID)
	}
	other := e.post("", orderJSON(user, "20"))

	e.billing.Down.Store(false)
	// The retry after recovery resumes the same order and completes it.
	if resumed := e.post("retry-key", orderJSON(user, "30")); resumed.Status != 201 || resumed.ID != r.Order.ID {
		t.Fatalf("retry after recovery = %d %s; want 201 for order %s", resumed.Status, resumed.Raw, r.Order.ID)
	}
	// The order placed without a key is finished by the reconciler.
	cfg := order.ReconcilerConfig{MaxAttempts: 5, BaseBackoff: time.Millisecond, MaxBackoff: time.Millisecond, CallTimeout: time.Second}
	if n := e.reconcile(cfg); n != 1 {
		t.Fatalf("Reconcile took %d orders; want the one pending order", n)
	}
	if status, body := e.get(t, "/orders/"+other.Order.ID); status != 200 || !strings.Contains(body, `"status":"completed"`) {
		t.Fatalf("reconciled order = %d %s", status, body)
	}
	for _, id := range []string{r.Order.ID, other.Order.ID} {
		if e.billing.Debits(id) != 1 || len(e.events(id)) != 1 {
			t.Errorf("order %s: %d debits, events %v; want 1 and 1", id, e.billing.Debits(id), e.events(id))
		}
	}
	if e.billing.Balance(user) != 50_00 {
		t.Errorf("balance %d, want 5000", e.billing.Balance(user))
	}
}

func TestReconcilerGivesUpAfterMaxAttempts(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	user := e.user(100_00)
	e.billing.Down.Store(true)
	r := e.post("", orderJSON(user, "30"))
	cfg := order.ReconcilerConfig{MaxAttempts: 3, BaseBackoff: time.Millisecond, MaxBackoff: time.Millisecond, CallTimeout: time.Second}
	// Three payment attempts and a first void attempt find billing down: still pending,
	// because nobody knows yet whether the user was charged.
	for range 4 {
		e.reconcile(cfg)
	}
	if status, body := e.get(t, "/orders/"+r.Order.ID); status != 200 || !strings.Contains(body, `"status":"pending"`) {
		t.Fatalf("order while its payment cannot be voided = %d %s, want pending", status, body)
	}
	e.billing.Down.Store(false)
	e.reconcile(cfg)
	status, body := e.get(t, "/orders/"+r.Order.ID)
	if status != 200 || !strings.Contains(body, `"status":"failed"`) || !strings.Contains(body, `"failureReason":"billing_unreachable"`) {
		t.Fatalf("order after its payment was voided = %d %s", status, body)
	}
	if got := e.events(r.Order.ID); len(got) != 1 || got[0] != "order.failed" {
		t.Fatalf("events = %v, want one order.failed", got)
	}
	if e.billing.Debits(r.Order.ID) != 0 || e.billing.Outcome(r.Order.ID) != payments.Voided {
		t.Fatalf("billing: %d debits, outcome %q; want 0, voided", e.billing.Debits(r.Order.ID), e.billing.Outcome(r.Order.ID))
	}
}

// TestGivenUpOrderAnswersItsKeyForGood: a keyed order that billing never answered and the
// reconciler failed gets a final answer of its own, stored under the key like any other.
func TestGivenUpOrderAnswersItsKeyForGood(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	user := e.user(100_00)
	e.billing.Down.Store(true)
	r := e.post("given-up", orderJSON(user, "30"))
	cfg := order.ReconcilerConfig{MaxAttempts: 1, BaseBackoff: time.Millisecond, MaxBackoff: time.Millisecond, CallTimeout: time.Second}
	e.reconcile(cfg)
	e.billing.Down.Store(false)
	e.reconcile(cfg) // voids the payment: failed, nothing charged

	retry := e.post("given-up", orderJSON(user, "30"))
	if retry.Status != http.StatusFailedDependency || retry.Code != "payment_unavailable" || retry.Order.ID != r.Order.ID ||
		retry.Order.Status != "failed" || retry.Order.FailureReason != "billing_unreachable" || retry.Cached != "" {
		t.Fatalf("retry of a given-up order = %d %s; want 424 payment_unavailable with failed order %s", retry.Status, retry.Raw, r.Order.ID)
	}
	replay := e.post("given-up", orderJSON(user, "30"))
	if replay.Status != retry.Status || replay.Raw != retry.Raw || replay.Cached != "true" {
		t.Fatalf("second retry = %d %s cached=%q; want the stored answer replayed", replay.Status, replay.Raw, replay.Cached)
	}
	if e.billing.Debits(r.Order.ID) != 0 || e.billing.Balance(user) != 100_00 {
		t.Fatalf("billing: %d debits, balance %d; want 0 and 10000", e.billing.Debits(r.Order.ID), e.billing.Balance(user))
	}
}

// TestGivingUpFindsALostDebit: billing debits but every answer is lost; when the reconciler
// gives up, the void reports the debit and the order completes instead of failing with the
// user's money taken.
func TestGivingUpFindsALostDebit(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	user := e.user(100_00)
	e.billing.LoseAnswer.Store(true)
	r := e.post("", orderJSON(user, "30"))
	if r.Status != 503 || r.Order.Status != "pending" {
		t.Fatalf("order whose answer was lost = %d %s, want 503 pending", r.Status, r.Raw)
	}
	cfg := order.ReconcilerConfig{MaxAttempts: 2, BaseBackoff: time.Millisecond, MaxBackoff: time.Millisecond, CallTimeout: time.Second}
	for range 2 {
		e.reconcile(cfg)
	}
	e.billing.LoseAnswer.Store(false)
	e.reconcile(cfg)
	if status, body := e.get(t, "/orders/"+r.Order.ID); status != 200 || !strings.Contains(body, `"status":"completed"`) {
		t.Fatalf("order after the void found its debit = %d %s, want completed", status, body)
	}
	if e.billing.Debits(r.Order.ID) != 1 || e.billing.Balance(user) != 70_00 {
		t.Fatalf("billing: %d debits, balance %d; want 1 and 7000", e.billing.Debits(r.Order.ID), e.billing.Balance(user))
	}
}

func TestConcurrentOrdersOneKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	user := e.user(1000_00)
	var wg sync.WaitGroup
	results := make(chan response, 30)
	for range 30 {
		wg.Go(func() {
			r, err := e.send("burst", orderJSON(user, "10"))
			if err != nil {
				t.Error(err)
			}
			results <- r
		})
	}
	wg.Wait()
	close(results)
	ids := map[string]bool{}
	for r := range results {
		switch r.Status {
		case 201:
			ids[r.ID] = true
		case 409:
		default:
			t.Fatalf("unexpected response %d %s", r.Status, r.Raw)
		}
	}
	var orders int
	e.db.Get(&orders, `SELECT count(*) FROM orders`)
	if len(ids) != 1 || orders != 1 || e.billing.Balance(user) != 990_00 {
		t.Fatalf("ids %v, %d orders stored, balance %d; want one order debited once", ids, orders, e.billing.Balance(user))
	}
}

func (e *env) get(t *testing.T, path string) (int, string) {
	t.Helper()
	r := e.Call(t, http.MethodGet, path, "")
	return r.Status, string(r.Body)
}

// TestAnOutdatedClaimNeverPaysAFailedOrder: two replicas' reconcilers on one database. A
// claims two orders and is held up on the first; its claim on the second runs out, B claims
// that one and fails it (the user has no account yet). When A gets to it, the account
// exists: A must see that the order is no longer its own and not pay it.
func TestAnOutdatedClaimNeverPaysAFailedOrder(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// Claims last 200 ms: long enough for the first call, not for A's whole batch.
	cfg := order.ReconcilerConfig{MaxAttempts: 5, BaseBackoff: time.Millisecond, MaxBackoff: time.Millisecond, CallTimeout: 100 * time.Millisecond}
	replicaB := order.NewService(postgres.NewOrders(e.db, func() {}, 2*time.Second), billingclient.New(e.billingURL, time.Second, auth.Config{}, prometheus.NewRegistry()), slog.New(slog.NewTextHandler(io.Discard, nil)))

	e.billing.Down.Store(true)
	slow := e.post("", orderJSON(e.user(100_00), "10"))
	noAccount := uuid.NewString()
	failing := e.post("", orderJSON(noAccount, "10"))
	e.billing.Down.Store(false)
	// slow is claimed first; its payment call waits until released.
	e.db.MustExec(`UPDATE orders SET next_attempt_at = now() - interval '2 seconds' WHERE id = $1`, slow.Order.ID)
	e.db.MustExec(`UPDATE orders SET next_attempt_at = now() - interval '1 second' WHERE id = $1`, failing.Order.ID)
	arrived, release := e.billing.Hold(slow.Order.ID)
	defer release() // a test that fails half-way must not leave billing's handler waiting

	replicaA := make(chan error, 1)
	go func() {
		_, err := e.svc.Reconcile(context.Background(), cfg)
		replicaA <- err
	}()
	select {
	case <-arrived:
	case err := <-replicaA:
		t.Fatalf("replica A's pass ended (%v) before its call for the slow order arrived", err)
	case <-time.After(10 * time.Second):
		t.Fatal("replica A's call for the slow order did not arrive within 10 s")
	}
	// A's hold on both orders runs out, and both are due again.
	e.db.MustExec(`UPDATE orders SET next_attempt_at = now() - interval '1 millisecond' WHERE status = 'pending'`)
	if _, err := replicaB.Reconcile(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if status, body := e.get(t, "/orders/"+failing.Order.ID); !strings.Contains(body, `"failureReason":"account_not_found"`) {
		t.Fatalf("order of a user without an account after B's pass = %d %s, want failed", status, body)
	}
	e.billing.SetBalance(noAccount, 100_00) // the account opens meanwhile
	release()
	if err := <-replicaA; err != nil {
		t.Fatal(err)
	}

	if d := e.billing.Debits(failing.Order.ID); d != 0 || e.billing.Balance(noAccount) != 100_00 {
		t.Fatalf("the failed order was debited %d times, balance %d; want 0 and 10000", d, e.billing.Balance(noAccount))
	}
	if d := e.billing.Debits(slow.Order.ID); d != 1 {
		t.Fatalf("the slow order was debited %d times, want 1", d)
	}
}

// TestKeyedOrderStoresItsAnswerWithItsFinish: the finished order, its event and the stored
// answer are written by one transaction, and the answer is the one the client got.
func TestKeyedOrderStoresItsAnswerWithItsFinish(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	user := e.user(100_00)
	r := e.post("atomic", orderJSON(user, "30"))
	if r.Status != http.StatusCreated {
		t.Fatalf("order = %d %s, want 201", r.Status, r.Raw)
	}
	var n int
	if err := e.db.Get(&n, `SELECT count(*) FROM orders JOIN idempotency_keys k ON k.xmin = orders.xmin
		JOIN outbox ON outbox.xmin = orders.xmin
		WHERE orders.id = $1 AND orders.status = 'completed' AND k.key = 'atomic' AND k.status_code = 201
		  AND k.body = convert_to($2, 'UTF8') AND k.lease_owner IS NULL`, r.ID, r.Raw); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("completed order, its event and its stored answer %s in one transaction: %d rows, want 1", r.Raw, n)
	}
	if replay := e.post("atomic", orderJSON(user, "30")); replay.Raw != r.Raw || replay.Cached != "true" {
		t.Fatalf("replay = %d %s cached=%q, want %s", replay.Status, replay.Raw, replay.Cached, r.Raw)
	}
}

// TestFailedFinishStoresNeitherAnswerNorFinish makes the final statement fail after billing
// paid: the order stays pending and the key holds no answer, so the retry resumes the order
// and billing's stored outcome completes it without a second debit.
func TestFailedFinishStoresNeitherAnswerNorFinish(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	user := e.user(100_00)
	e.db.MustExec(`CREATE FUNCTION refuse_event() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'no events'; END $$;
		CREATE TRIGGER refuse_event BEFORE INSERT ON outbox FOR EACH ROW EXECUTE FUNCTION refuse_event()`)
	r := e.post("finish-fails", orderJSON(user, "30"))
	if r.Status != http.StatusInternalServerError {
		t.Fatalf("order whose finish fails = %d %s, want 500", r.Status, r.Raw)
	}
	var state struct {
		Orders  int `db:"orders"`
		Pending int `db:"pending"`
		Answers int `db:"answers"`
	}
	if err := e.db.Get(&state, `SELECT (SELECT count(*) FROM orders) AS orders,
		(SELECT count(*) FROM orders WHERE status = 'pending') AS pending,
		(SELECT count(*) FROM idempotency_keys WHERE status_code IS NOT NULL) AS answers`); err != nil {
		t.Fatal(err)
	}
	if state.Orders != 1 || state.Pending != 1 || state.Answers != 0 {
		t.Fatalf("after the failed finish: %+v, want one pending order and no stored answer", state)
	}
	e.db.MustExec(`DROP TRIGGER refuse_event ON outbox`)
	retry := e.post("finish-fails", orderJSON(user, "30"))
	if retry.Status != http.StatusCreated || retry.Cached != "" {
		t.Fatalf("retry = %d %s cached=%q, want a fresh 201", retry.Status, retry.Raw, retry.Cached)
	}
	var id string
	e.db.Get(&id, `SELECT id FROM orders`)
	if retry.ID != id || e.billing.Debits(id) != 1 || e.billing.Balance(user) != 70_00 {
		t.Fatalf("retry completed %s (stored order %s), %d debits, balance %d; want the same order debited once",
			retry.ID, id, e.billing.Debits(id), e.billing.Balance(user))
	}
}

// TestTakeoverAfterACrashResumesTheOrder leaves a key as a process that died mid-order
// does (leased to a request that will never answer, the order pending): once the lease is
// over, a retry takes the key over in the statement that reads the order, and completes
// the same order.
func TestTakeoverAfterACrashResumesTheOrder(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	user := e.user(100_00)
	e.billing.Down.Store(true)
	first := e.post("crash", orderJSON(user, "30"))
	if first.Status != http.StatusServiceUnavailable {
		t.Fatalf("first = %d %s, want 503", first.Status, first.Raw)
	}
	e.db.MustExec(`UPDATE idempotency_keys SET lease_owner = $1, locked_until = now() + interval '300 milliseconds'`, uuid.New())
	if r := e.post("crash", orderJSON(user, "30")); r.Status != http.StatusConflict {
		t.Fatalf("retry during the dead request's lease = %d %s, want 409", r.Status, r.Raw)
	}
	e.billing.Down.Store(false)
	e.db.MustExec(`UPDATE idempotency_keys SET locked_until = now() - interval '1 microsecond' WHERE key = 'crash'`) // the dead lease ends
	r := e.post("crash", orderJSON(user, "30"))
	if r.Status != http.StatusCreated || r.ID != first.Order.ID {
		t.Fatalf("retry after the lease = %d %s, want 201 for order %s", r.Status, r.Raw, first.Order.ID)
	}
	var orders int
	e.db.Get(&orders, `SELECT count(*) FROM orders`)
	if orders != 1 || e.billing.Debits(first.Order.ID) != 1 {
		t.Fatalf("%d orders, %d debits; want one order paid once", orders, e.billing.Debits(first.Order.ID))
	}
}

// TestLateFinishLocksTheKeyBeforeTheOrder: a keyed request's final statement locks its key's
// record before the order's row, the order in which a retry taking the key over locks them
// (key, then order). While something holds the key's record, the finishing request waits
// without having locked the order, so a takeover and a late finish queue up instead of
// deadlocking.
func TestLateFinishLocksTheKeyBeforeTheOrder(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	user := e.user(100_00)
	open := e.billing.Gate()
	defer open()
	placed := make(chan response, 1)
	go func() {
		r, err := e.send("late", orderJSON(user, "30"))
		if err != nil {
			t.Error(err)
		}
		placed <- r
	}()
	var id string
	dbtest.Eventually(t, 5*time.Second, "the order stored", func() bool { return e.db.Get(&id, `SELECT id FROM orders`) == nil })
	takeover, err := e.db.Beginx() // stands in for a retry taking the key over
	if err != nil {
		t.Fatal(err)
	}
	defer takeover.Rollback()
	takeover.MustExec(`SELECT FROM idempotency_keys WHERE key = 'late' FOR UPDATE`)
	open()
	dbtest.WaitForLockWaits(t, e.db, 1)
	probe, err := e.db.Beginx()
	if err != nil {
		t.Fatal(err)
	}
	_, err = probe.Exec(`SELECT FROM orders WHERE id = $1 FOR UPDATE NOWAIT`, id)
	probe.Rollback()
	if err != nil {
		t.Errorf("the order's row while the finish waits for the key: %v; want it not locked", err)
	}
	takeover.Rollback()
	if r := <-placed; r.Status != http.StatusCreated {
		t.Fatalf("order = %d %s, want 201 once the key is free", r.Status, r.Raw)
	}
}

// TestOrderBeforeTheAccountOpensIsToldToComeBack: an order for a user whose billing account
// is not open yet fails, uncharged, with a 404 that says Retry-After, as billing's own routes
// answer that state. With a key the answer is not stored and the key is freed, so the keyed
// retry once the account is open places a new order instead of getting the 404 replayed.
func TestOrderBeforeTheAccountOpensIsToldToComeBack(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	user := uuid.NewString() // registered, but billing has not opened the account yet
	first := e.post("early", orderJSON(user, "30"))
	if first.Status != http.StatusNotFound || first.Code != "not_found" || first.Order.Status != "failed" {
		t.Fatalf("order before the account = %d %s, want 404 not_found with the failed order", first.Status, first.Raw)
	}
	resp := e.Call(t, http.MethodPost, "/orders", orderJSON(user, "30"))
	if resp.Status != http.StatusNotFound || resp.Header.Get("Retry-After") != "1" {
		t.Fatalf("unkeyed order before the account = %d Retry-After=%q, want 404 with Retry-After 1", resp.Status, resp.Header.Get("Retry-After"))
	}
	e.billing.SetBalance(user, 100_00) // the account opens
	retry := e.post("early", orderJSON(user, "30"))
	if retry.Status != http.StatusCreated || retry.Cached != "" || retry.ID == first.Order.ID {
		t.Fatalf("keyed retry once the account is open = %d %s cached=%q, want a new order, paid", retry.Status, retry.Raw, retry.Cached)
	}
	if replay := e.post("early", orderJSON(user, "30")); replay.Status != http.StatusCreated || replay.Raw != retry.Raw || replay.Cached != "true" {
		t.Fatalf("third = %d %s cached=%q, want the 201 replayed", replay.Status, replay.Raw, replay.Cached)
	}
	if d := e.billing.Debits(first.Order.ID); d != 0 {
		t.Fatalf("the failed order was debited %d times", d)
	}
	if b := e.billing.Balance(user); b != 70_00 {
		t.Fatalf("balance %d, want 70.00: one order paid", b)
	}
}
