package system_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/order-system/order-system/pkg/dbtest"
)

type orderJSON struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	Code   string `json:"code"`
	Order  struct {
		ID     string `json:"id"`
		Status string `json:"status"`
	} `json:"order"`
}

type entryJSON struct {
	Type      string  `json:"type"`
	Amount    float64 `json:"amount"`
	PaymentID string  `json:"paymentId"`
}

func (s *system) entries(user string) []entryJSON {
	s.t.Helper()
	r := s.call("GET", s.url("billing")+"/billing/transactions/"+user, "")
	var out []entryJSON
	r.json(s.t, &out)
	return out
}

func (s *system) balance(user string) string {
	s.t.Helper()
	r := s.call("GET", s.url("billing")+"/billing/balance/"+user, "")
	var b struct {
		Balance jsonNumber `json:"balance"`
	}
	r.json(s.t, &b)
	return string(b.Balance)
}

type jsonNumber string

func (n *jsonNumber) UnmarshalJSON(b []byte) error { *n = jsonNumber(b); return nil }

func debitsFor(entries []entryJSON, orderID string) int {
	n := 0
	for _, e := range entries {
		if e.Type == "debit" && e.PaymentID == orderID {
			n++
		}
	}
	return n
}

// notifications returns how many notifications each order of the user has.
func (s *system) notifications(user string) map[string]int {
	r := s.call("GET", s.url("notification")+"/notifications/"+user, "")
	var list []struct{ OrderID string }
	if r.Status != 200 {
		return nil
	}
	r.json(s.t, &list)
	out := map[string]int{}
	for _, n := range list {
		out[n.OrderID]++
	}
	return out
}

// a. 50 concurrent requests with one key and one body make one order and one debit.
func TestOneKeyUnderConcurrency(t *testing.T) {
	s := newSystem(t, nil)
	s.startAll()
	user := s.newUser("1000")
	key := uuid.NewString()
	var wg sync.WaitGroup
	results := make(chan response, 50)
	for range 50 {
		wg.Go(func() { results <- s.order(key, user, "10") })
	}
	wg.Wait()
	close(results)
	var bodies [][]byte
	statuses := map[int]int{}
	for r := range results {
		statuses[r.Status]++
		if r.Status == 201 {
			bodies = append(bodies, r.Body)
		}
	}
	if statuses[201]+statuses[409] != 50 || statuses[201] == 0 {
		t.Fatalf("statuses %v: want only 201 (first or replay) and 409 (in flight)", statuses)
	}
	for _, b := range bodies[1:] {
		if !bytes.Equal(b, bodies[0]) {
			t.Fatalf("two different 201 bodies for one key:\n%s\n%s", bodies[0], b)
		}
	}
	var o orderJSON
	response{Body: bodies[0]}.json(t, &o)
	if n := s.count(`SELECT count(*) FROM orders.orders`); n != 1 {
		t.Fatalf("%d orders stored, want 1", n)
	}
	if d := debitsFor(s.entries(user), o.ID); d != 1 || s.balance(user) != "990" {
		t.Fatalf("%d debits, balance %s; want 1 debit and 990", d, s.balance(user))
	}
	s.verifyLedger()
}

// b. The same key with another body is refused; the replay is byte for byte.
func TestReplayAndMismatch(t *testing.T) {
	s := newSystem(t, nil)
	s.startAll()
	user := s.newUser("100")
	first := s.order("k-1", user, "30")
	replay := s.call("POST", s.url("order")+"/orders", "{\n \"price\": 30, \"email\": \"buyer@example.com\", \"userId\": \""+user+"\"}", "Idempotency-Key", "k-1")
	other := s.order("k-1", user, "31")
	if first.Status != 201 || first.Header.Get("X-Idempotency-Cached") != "" {
		t.Fatalf("first: %d cached=%q", first.Status, first.Header.Get("X-Idempotency-Cached"))
	}
	if replay.Status != 201 || !bytes.Equal(replay.Body, first.Body) || replay.Header.Get("X-Idempotency-Cached") != "true" || replay.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replay (keys reordered): %d %s %v", replay.Status, replay.Body, replay.Header)
	}
	if other.Status != 422 || !strings.Contains(string(other.Body), "idempotency_key_mismatch") {
		t.Fatalf("other body: %d %s, want 422 idempotency_key_mismatch", other.Status, other.Body)
	}
	// Same key on another endpoint is another request; a 256-character key is refused.
	if r := s.call("POST", s.url("billing")+"/billing/deposit", `{"userId":"`+user+`","amount":5}`, "Idempotency-Key", "k-1"); r.Status != 200 {
		t.Fatalf("same key on deposit: %d %s", r.Status, r.Body)
	}
	if r := s.order(strings.Repeat("k", 256), user, "1"); r.Status != 400 {
		t.Fatalf("256-character key: %d %s, want 400", r.Status, r.Body)
	}
}

// c. Orders worth more than the balance, all at once: the balance never goes below zero and
// every completed order is debited exactly once.
func TestNoOverdraftUnderConcurrency(t *testing.T) {
	// The 200 debits queue on one account's row: on a machine short of CPU (the race detector,
	// other work) the last of them can wait longer than the default 3 s billing timeout, and
	// an order is then answered 503 pending instead. The test is about overdraft, not
	// timeouts: give the calls time, within the test client's own 30 s.
	s := newSystem(t, map[string]string{"BILLING_TIMEOUT": "20s"})
	s.startAll()
	user := s.newUser("1000")
	var wg sync.WaitGroup
	var mu sync.Mutex
	completed, refused := map[string]bool{}, 0
	for range 200 {
		wg.Go(func() {
			r := s.order("", user, "7.5")
			var o orderJSON
			if err := json.Unmarshal(r.Body, &o); err != nil {
				t.Errorf("answer %d %q: %v", r.Status, r.Body, err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			switch {
			case r.Status == 201 && o.Status == "completed":
				completed[o.ID] = true
			case r.Status == 400 && o.Code == "insufficient_funds" && o.Order.Status == "failed":
				refused++
			default:
				t.Errorf("unexpected answer %d %s", r.Status, r.Body)
			}
		})
	}
	wg.Wait()
	entries := s.entries(user)
	debited := 0.0
	for _, e := range entries {
		if e.Type == "debit" {
			debited += e.Amount
			if !completed[e.PaymentID] {
				t.Errorf("debit for %s, which was not reported completed", e.PaymentID)
			}
		}
	}
	if len(completed) != 133 || refused != 67 || debited != 133*7.5 || s.balance(user) != "2.5" {
		t.Fatalf("completed %d, refused %d, debited %v, balance %s; want 133, 67, 997.5, 2.5", len(completed), refused, debited, s.balance(user))
	}
	s.verifyLedger()
}

// d. Concurrent deposits add up exactly; a repeated keyed deposit applies once.
func TestConcurrentDeposits(t *testing.T) {
	s := newSystem(t, nil)
	s.startAll()
	user := s.newUser("0")
	var wg sync.WaitGroup
	for i := range 100 {
		wg.Go(func() {
			if r := s.call("POST", s.url("billing")+"/billing/deposit", fmt.Sprintf(`{"userId":"%s","amount":%d.01}`, user, i)); r.Status != 200 {
				t.Errorf("deposit: %d %s", r.Status, r.Body)
			}
		})
		wg.Go(func() {
			r := s.call("POST", s.url("billing")+"/billing/deposit", `{"userId":"`+user+`","amount":1000}`, "Idempotency-Key", "once")
			if r.Status != 200 && r.Status != 409 {
				t.Errorf("keyed deposit: %d %s", r.Status, r.Body)
			}
		})
	}
	wg.Wait()
	// 0.01 × 100 + (0 + … + 99) + 1000 once
	if got := s.balance(user); got != "5951" {
		t.Fatalf("balance %s, want 5951", got)
	}
	s.verifyLedger()
}

// e. With billing down an order answers 503 quickly and stays pending; when billing is back
// the reconciler pays it once and one notification follows.
func TestBillingOutageIsReconciled(t *testing.T) {
	s := newSystem(t, map[string]string{"BILLING_TIMEOUT": "2s", "RECONCILE_INTERVAL": "200ms", "RECONCILE_BACKOFF": "200ms", "RECONCILE_MAX_BACKOFF": "1s"})
	s.startAll()
	user := s.newUser("100")
	s.signal("billing", syscall.SIGTERM)

	start := time.Now()
	r := s.order("", user, "40")
	elapsed := time.Since(start)
	var o orderJSON
	r.json(t, &o)
	if r.Status != 503 || o.Code != "unavailable" || o.Order.Status != "pending" || elapsed > 5*time.Second {
		t.Fatalf("order with billing down: %d %s after %v; want a 503 with the pending order within 5 s", r.Status, r.Body, elapsed)
	}
	if g := s.call("GET", s.url("order")+"/orders/"+o.Order.ID, ""); !strings.Contains(string(g.Body), `"status":"pending"`) {
		t.Fatalf("order while billing is down: %s", g.Body)
	}

	s.start("billing")
	dbtest.Eventually(t, 30*time.Second, "the reconciler to complete the order", func() bool {
		g := s.call("GET", s.url("order")+"/orders/"+o.Order.ID, "")
		return strings.Contains(string(g.Body), `"status":"completed"`)
	})
	dbtest.Eventually(t, 10*time.Second, "the notification", func() bool { return s.notifications(user)[o.Order.ID] == 1 })
	time.Sleep(500 * time.Millisecond)
	if n := s.notifications(user)[o.Order.ID]; n != 1 {
		t.Fatalf("%d notifications for the order, want 1", n)
	}
	if d := debitsFor(s.entries(user), o.Order.ID); d != 1 || s.balance(user) != "60" {
		t.Fatalf("%d debits, balance %s; want 1 and 60", d, s.balance(user))
	}
	s.verifyLedger()
}

// f. The order service dies after billing debited but before it stored the outcome: after a
// restart the order ends completed, debited once, and a retry with its key resumes it.
func TestOrderKilledAfterDebit(t *testing.T) {
	s := newSystem(t, nil)
	s.start("billing")
	s.start("notification")
	s.start("user")

	// A proxy in front of billing that forwards the first payment, then swallows billing's
	// answer: the debit is committed, the order service never hears of it.
	billingURL, _ := url.Parse(s.url("billing"))
	forward := httputil.NewSingleHostReverseProxy(billingURL)
	var swallowed atomic.Bool
	debited := make(chan struct{})
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/internal/payments" || swallowed.Swap(true) {
			forward.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		forward.ServeHTTP(rec, r)
		close(debited)
		<-r.Context().Done() // hold the connection until the caller dies
	}))
	defer proxy.Close()
	s.env = map[string]string{"BILLING_URL": proxy.URL, "RECONCILE_INTERVAL": "200ms", "RECONCILE_BACKOFF": "200ms", "BILLING_TIMEOUT": "30s", "IDEMPOTENCY_LEASE": "2s"}
	s.start("order")

	user := s.newUser("100")
	key := uuid.NewString()
	answered := make(chan response, 1)
	go func() { answered <- s.order(key, user, "25") }()
	select {
	case <-debited:
	case <-time.After(10 * time.Second):
		t.Fatal("billing never received the payment")
	}
	s.signal("order", syscall.SIGKILL)
	if r := <-answered; r.Status != 0 && r.Status < 500 {
		t.Fatalf("the killed request answered %d %s", r.Status, r.Body)
	}
	if n := s.count(`SELECT count(*) FROM orders.orders WHERE status = 'pending'`); n != 1 {
		t.Fatalf("%d pending orders after the kill, want 1", n)
	}

	s.start("order")
	// The client retries with its key: 409 while the dead request's lease lasts, then the
	// same order is resumed, not a second one created.
	var retry response
	dbtest.Eventually(t, 10*time.Second, "the key's lease to end", func() bool {
		retry = s.order(key, user, "25")
		return retry.Status != 409
	})
	var o orderJSON
	retry.json(t, &o)
	if retry.Status != 201 || o.Status != "completed" {
		t.Fatalf("retry after restart: %d %s", retry.Status, retry.Body)
	}
	if n := s.count(`SELECT count(*) FROM orders.orders`); n != 1 {
		t.Fatalf("%d orders, want the one resumed", n)
	}
	if d := debitsFor(s.entries(user), o.ID); d != 1 || s.balance(user) != "75" {
		t.Fatalf("%d debits, balance %s; want 1 and 75", d, s.balance(user))
	}
	dbtest.Eventually(t, 10*time.Second, "the notification", func() bool { return s.notifications(user)[o.ID] == 1 })
	s.verifyLedger()
}

// f'. Without a client retry the reconciler finishes the order the crash left pending.
func TestReconcilerFinishesCrashedOrder(t *testing.T) {
	s := newSystem(t, map[string]string{"RECONCILE_INTERVAL": "200ms", "RECONCILE_BACKOFF": "200ms"})
	s.startAll()
	user := s.newUser("100")
	// What a crash between the debit and the final commit leaves behind: billing debited the
	// payment, the order is still pending and due for a retry.
	orderID := uuid.NewString()
	if r := s.call("POST", s.url("billing")+"/internal/payments", `{"paymentId":"`+orderID+`","userId":"`+user+`","amount":25}`); r.Status != 200 {
		t.Fatalf("payment: %d %s", r.Status, r.Body)
	}
	if _, err := s.db.Exec(`INSERT INTO orders.orders (id, user_id, email, price, status, pay_by) VALUES ($1, $2, 'buyer@example.com', 2500, 'pending', now() + interval '1 hour')`, orderID, user); err != nil {
		t.Fatal(err)
	}
	dbtest.Eventually(t, 15*time.Second, "the reconciler", func() bool {
		return s.count(`SELECT count(*) FROM orders.orders WHERE id = $1 AND status = 'completed'`, orderID) == 1
	})
	dbtest.Eventually(t, 10*time.Second, "the notification", func() bool { return s.notifications(user)[orderID] == 1 })
	if d := debitsFor(s.entries(user), orderID); d != 1 || s.balance(user) != "75" {
		t.Fatalf("%d debits, balance %s; want 1 and 75", d, s.balance(user))
	}
	s.verifyLedger()
}

// g. Keys past their TTL are purged, and the key may start a new request.
func TestExpiredKeysArePurged(t *testing.T) {
	// The order service wants its keys to outlive the reconciler's payments (4 s here).
	s := newSystem(t, map[string]string{"IDEMPOTENCY_TTL": "5s", "IDEMPOTENCY_PURGE_INTERVAL": "500ms",
		"BILLING_TIMEOUT": "1s", "RECONCILE_MAX_ATTEMPTS": "1"})
	s.startAll()
	user := s.newUser("100")
	first := s.order("reused", user, "10")
	if first.Status != 201 || s.count(`SELECT count(*) FROM orders.idempotency_keys`) != 1 {
		t.Fatalf("first order: %d %s", first.Status, first.Body)
	}
	dbtest.Eventually(t, 15*time.Second, "the purge", func() bool { return s.count(`SELECT count(*) FROM orders.idempotency_keys`) == 0 })
	second := s.order("reused", user, "10")
	var a, b orderJSON
	first.json(t, &a)
	second.json(t, &b)
	if second.Status != 201 || second.Header.Get("X-Idempotency-Cached") != "" || a.ID == b.ID {
		t.Fatalf("reused key after expiry: %d %s, first order %s", second.Status, second.Body, a.ID)
	}
	if s.balance(user) != "80" {
		t.Fatalf("balance %s, want 80: two orders", s.balance(user))
	}
}

// SIGTERM under load: every request the order service accepted is answered, none fails.
func TestGracefulShutdownUnderLoad(t *testing.T) {
	s := newSystem(t, nil)
	s.startAll()
	user := s.newUser("100000")
	ctx, cancel := ctxTimeout(20 * time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var mu sync.Mutex
	accepted, refused := map[string]bool{}, 0
	for range 16 {
		wg.Go(func() {
			for ctx.Err() == nil {
				r := s.order("", user, "1")
				mu.Lock()
				switch {
				case r.Status == 201:
					var o orderJSON
					if err := json.Unmarshal(r.Body, &o); err != nil {
						t.Errorf("answer %d %q: %v", r.Status, r.Body, err)
						break
					}
					accepted[o.ID] = true
				case r.Status == 0: // connection refused: the server had stopped accepting
					refused++
				default:
					t.Errorf("request answered %d %s during shutdown", r.Status, r.Body)
				}
				mu.Unlock()
				if r.Status == 0 {
					return
				}
			}
		})
	}
	time.Sleep(1500 * time.Millisecond)
	s.signal("order", syscall.SIGTERM)
	cancel()
	wg.Wait()
	if len(accepted) == 0 {
		t.Fatal("no order was accepted before the stop")
	}
	for id := range accepted {
		if s.count(`SELECT count(*) FROM orders.orders WHERE id = $1 AND status = 'completed'`, id) != 1 {
			t.Errorf("accepted order %s is not stored completed", id)
		}
	}
	// The relay flushed on the way out: every accepted order's event left the outbox.
	if n := s.count(`SELECT count(*) FROM orders.outbox`); n != 0 {
		t.Errorf("%d events left in the outbox after a clean stop", n)
	}
	t.Logf("accepted %d orders, %d clients saw the closed port", len(accepted), refused)
}

// keyedOrderOutcome settles the system and returns, for user, how many of its orders
// completed, how many debits the ledger holds and the balance.
func (s *system) keyedOrderOutcome(user string) (completed, debits int, balance string) {
	s.t.Helper()
	dbtest.Eventually(s.t, 60*time.Second, "no order pending", func() bool {
		return s.count(`SELECT count(*) FROM orders.orders WHERE user_id = $1 AND status = 'pending'`, user) == 0
	})
	for _, e := range s.entries(user) {
		if e.Type == "debit" {
			debits++
		}
	}
	return s.count(`SELECT count(*) FROM orders.orders WHERE user_id = $1 AND status = 'completed'`, user), debits, s.balance(user)
}

// One Idempotency-Key never pays for two orders, even where the reconciler's schedule is
// longer than the key's life (a 2 s interval, 1 ms backoffs: 20 attempts take about 40 s,
// the key lives 15 s). A keyed order is placed while billing is frozen and stays pending; the
// key expires and the same request places a second order; billing comes back. The first
// order is past its pay deadline by then (and billing refuses the late calls it had queued):
// it is voided, and only the second is paid.
func TestExpiredKeyNeverPaysTwice(t *testing.T) {
	s := newSystem(t, map[string]string{"IDEMPOTENCY_TTL": "15s", "IDEMPOTENCY_LEASE": "2s", "IDEMPOTENCY_PURGE_INTERVAL": "1s",
		"BILLING_TIMEOUT": "300ms", "RECONCILE_BACKOFF": "1ms", "RECONCILE_MAX_BACKOFF": "1ms", "RECONCILE_INTERVAL": "2s"})
	s.startAll()
	user := s.newUser("100")
	s.pause("billing")
	resumed := false
	defer func() {
		if !resumed {
			s.resume("billing")
		}
	}()
	if r := s.order("k1", user, "10"); r.Status != 503 {
		t.Fatalf("order with billing frozen: %d %s, want 503", r.Status, r.Body)
	}
	dbtest.Eventually(t, 30*time.Second, "the key to expire", func() bool {
		return s.count(`SELECT count(*) FROM orders.idempotency_keys WHERE key = 'k1' AND expires_at >= now()`) == 0
	})
	if r := s.order("k1", user, "10"); r.Status != 503 {
		t.Fatalf("the same request after the key expired: %d %s, want 503 (a second order, pending)", r.Status, r.Body)
	}
	if n := s.count(`SELECT count(*) FROM orders.orders WHERE user_id = $1`, user); n != 2 {
		t.Fatalf("%d orders, want 2: the expired key placed a second one", n)
	}
	s.resume("billing")
	resumed = true
	completed, debits, balance := s.keyedOrderOutcome(user)
	if completed != 1 || debits != 1 || balance != "90" {
		t.Fatalf("%d orders completed, %d debits, balance %s; want one key to pay once: 1, 1, 90", completed, debits, balance)
	}
	s.verifyLedger()
}

// The same with the reconciler stopped, not slow: every order replica is down for longer
// than the key lives while a keyed order is pending. When the service comes back, the client's
// retry with the expired key places a second order, and the reconciler finds the first past
// its pay deadline: it voids it instead of paying it at its first attempt.
//
// Billing stays frozen until the key has expired, so the call it had queued for the first
// order arrives past the pay deadline and is voided. Were billing resumed at once, that call
// could still debit within the deadline (a handler may commit before it sees that its caller
// hung up): the first order would then be rightly paid, and a retry sent only after the key
// expired is a new request by the key's contract, so a second order would be paid too.
func TestReconcilerDownPastTheKeyNeverPaysTwice(t *testing.T) {
	s := newSystem(t, map[string]string{"IDEMPOTENCY_TTL": "6s", "IDEMPOTENCY_LEASE": "2s", "BILLING_TIMEOUT": "500ms",
		"RECONCILE_INTERVAL": "200ms", "RECONCILE_BACKOFF": "100ms", "RECONCILE_MAX_ATTEMPTS": "2"})
	s.startAll()
	user := s.newUser("100")
	s.pause("billing")
	resumed := false
	defer func() {
		if !resumed {
			s.resume("billing")
		}
	}()
	if r := s.order("k2", user, "10"); r.Status != 503 {
		t.Fatalf("order with billing frozen: %d %s, want 503", r.Status, r.Body)
	}
	s.signal("order", syscall.SIGKILL)
	dbtest.Eventually(t, 30*time.Second, "the key to expire", func() bool {
		return s.count(`SELECT count(*) FROM orders.idempotency_keys WHERE key = 'k2' AND expires_at >= now()`) == 0
	})
	s.resume("billing")
	resumed = true
	s.start("order")
	r := s.order("k2", user, "10")
	if r.Status != 201 {
		t.Fatalf("the same request after the key expired: %d %s, want 201 (a second order, paid)", r.Status, r.Body)
	}
	completed, debits, balance := s.keyedOrderOutcome(user)
	if completed != 1 || debits != 1 || balance != "90" {
		t.Fatalf("%d orders completed, %d debits, balance %s; want one key to pay once: 1, 1, 90", completed, debits, balance)
	}
	if n := s.count(`SELECT count(*) FROM orders.orders WHERE user_id = $1 AND status = 'failed' AND failure_reason = 'billing_unreachable'`, user); n != 1 {
		t.Fatalf("%d orders voided, want the first one", n)
	}
	s.verifyLedger()
}
