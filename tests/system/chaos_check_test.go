package system_test

import (
	"fmt"
	"testing"
	"time"
)

// check is the chaos oracle: it compares what the databases hold with each other and with
// what the clients were told, and records every violation of a promise as an anomaly.
func check(t *testing.T, s *system, h *chaosHistory) {
	t.Helper()
	type order struct {
		user          string
		price         int64
		status        string
		reason        string
		debits, spent int64
	}
	orders := map[string]*order{}
	s.rows(func(scan func(...any)) {
		var id string
		o := &order{}
		scan(&id, &o.user, &o.price, &o.status, &o.reason)
		orders[id] = o
	}, `SELECT id, user_id, price, status, failure_reason FROM orders.orders`)

	// Debits: a completed order has exactly one, of its price; a failed one none; and no
	// debit exists without an order.
	s.rows(func(scan func(...any)) {
		var id string
		var n, sum int64
		scan(&id, &n, &sum)
		o := orders[id]
		if o == nil {
			h.anomaly("debit-without-order", fmt.Sprintf("payment %s: %d debits of %s in total and no order", id, n, kopecks(sum)))
			return
		}
		o.debits, o.spent = n, sum
	}, `SELECT operation_id, count(*), sum(amount) FROM billing.entries WHERE type = 'debit' GROUP BY operation_id`)
	spent := map[string]int64{} // user → the prices of their completed orders
	for id, o := range orders {
		switch o.status {
		case "pending":
			h.anomaly("pending", fmt.Sprintf("order %s is still pending after the faults stopped", id))
		case "completed":
			spent[o.user] += o.price
			if o.debits != 1 || o.spent != o.price {
				h.anomaly("completed-debits", fmt.Sprintf("order %s completed at %s has %d debits of %s in total", id, kopecks(o.price), o.debits, kopecks(o.spent)))
			}
		case "failed":
			if o.debits != 0 {
				h.anomaly("failed-charged", fmt.Sprintf("order %s failed (%s) has %d debits of %s in total", id, o.reason, o.debits, kopecks(o.spent)))
			}
		}
	}

	// Balances: the account equals its deposits minus its completed orders, never below zero;
	// the deposits are every one answered 200, plus at most those whose answer was lost.
	accounts := map[string]bool{}
	s.rows(func(scan func(...any)) {
		var user string
		var balance, deposits, debits int64
		scan(&user, &balance, &deposits, &debits)
		accounts[user] = true
		if balance < 0 {
			h.anomaly("negative-balance", fmt.Sprintf("user %s: balance %d kopecks", user, balance))
		}
		if balance != deposits-spent[user] {
			h.anomaly("balance", fmt.Sprintf("user %s: balance %s, deposits %s, completed orders %s, debits %s",
				user, kopecks(balance), kopecks(deposits), kopecks(spent[user]), kopecks(debits)))
		}
		h.mu.Lock()
		d := h.deposits[user]
		h.mu.Unlock()
		if d == nil {
			d = &depositTally{}
		}
		switch {
		case deposits < d.acked:
			h.anomaly("deposit-lost", fmt.Sprintf("user %s: deposits %s in the ledger, %s answered 200", user, kopecks(deposits), kopecks(d.acked)))
		case deposits > d.acked+d.uncertain:
			h.anomaly("deposit-extra", fmt.Sprintf("user %s: deposits %s in the ledger, %s answered 200 and %s unknown",
				user, kopecks(deposits), kopecks(d.acked), kopecks(d.uncertain)))
		}
	}, `SELECT a.user_id, a.balance,
			coalesce(sum(e.amount) FILTER (WHERE e.type = 'deposit'), 0),
			coalesce(sum(e.amount) FILTER (WHERE e.type = 'debit'), 0)
		FROM billing.accounts a LEFT JOIN billing.entries e ON e.user_id = a.user_id GROUP BY a.user_id, a.balance`)

	// Users: every user answered 201 exists and has an account.
	users := map[string]bool{}
	s.rows(func(scan func(...any)) {
		var id string
		scan(&id)
		users[id] = true
	}, `SELECT id FROM users.users`)
	h.mu.Lock()
	created := append([]chaosUser(nil), h.users...)
	h.mu.Unlock()
	for _, u := range created {
		switch {
		case !users[u.id]:
			h.anomaly("user-lost", fmt.Sprintf("user %s was answered 201 and is not stored", u.id))
		case !accounts[u.id]:
			h.anomaly("account-missing", fmt.Sprintf("user %s has no billing account after the faults stopped", u.id))
		}
	}

	// Notifications: exactly one per finished order, of the matching type, and none for an
	// order that is not finished.
	wantType := map[string]string{"completed": "success", "failed": "failure"}
	notified := map[string]bool{}
	s.rows(func(scan func(...any)) {
		var id, types string
		var n int
		scan(&id, &n, &types)
		notified[id] = true
		o := orders[id]
		switch {
		case o == nil || o.status == "pending":
			h.anomaly("notification-unexpected", fmt.Sprintf("order %s is not finished and has notifications %s", id, types))
		case n != 1:
			h.anomaly("notification-duplicate", fmt.Sprintf("order %s (%s) has %d notifications: %s", id, o.status, n, types))
		case types != wantType[o.status]:
			h.anomaly("notification-type", fmt.Sprintf("order %s is %s and its notification is %s", id, o.status, types))
		}
	}, `SELECT order_id, count(*), string_agg(type, ',' ORDER BY created_at) FROM notifications.notifications GROUP BY order_id`)
	for id, o := range orders {
		if o.status != "pending" && !notified[id] {
			h.anomaly("notification-missing", fmt.Sprintf("order %s is %s and has no notification", id, o.status))
		}
	}

	// What the clients were told: every order named in an answer exists, and a finished
	// status they saw is the one stored.
	h.mu.Lock()
	seen := make(map[string]map[string]string, len(h.orders))
	for id, statuses := range h.orders {
		seen[id] = statuses
	}
	h.mu.Unlock()
	for id, statuses := range seen {
		o := orders[id]
		if o == nil {
			h.anomaly("order-lost", fmt.Sprintf("order %s was named in an answer and is not stored", id))
			continue
		}
		for _, status := range []string{"completed", "failed"} {
			if source, ok := statuses[status]; ok && o.status != status {
				h.anomaly("answer-mismatch", fmt.Sprintf("order %s was told %s (%s) and is stored %s (%s)", id, status, source, o.status, o.reason))
			}
		}
	}

	// One key, at most one paid order at a time: a key reused after it expired (or after an
	// answer that said Retry-After) may name a new order, but an earlier order of the key is
	// never debited after a later one was placed, i.e. after the key could be reused.
	placedAt := map[string]time.Time{}
	s.rows(func(scan func(...any)) {
		var id string
		var at time.Time
		scan(&id, &at)
		placedAt[id] = at
	}, `SELECT id, created_at FROM orders.orders`)
	debited := map[string]time.Time{}
	s.rows(func(scan func(...any)) {
		var id string
		var at time.Time
		scan(&id, &at)
		debited[id] = at
	}, `SELECT operation_id, min(created_at) FROM billing.entries WHERE type = 'debit' GROUP BY operation_id`)
	h.mu.Lock()
	keys := append([]*orderKey(nil), h.keys...)
	h.mu.Unlock()
	for _, k := range keys {
		for earlier := range k.orders {
			paidAt, paid := debited[earlier]
			if !paid {
				continue
			}
			for later := range k.orders {
				if at, ok := placedAt[later]; ok && placedAt[earlier].Before(at) && !paidAt.Before(at) {
					h.anomaly("key-paid-after-reuse", fmt.Sprintf("key %q (%s): order %s was debited at %s, after order %s was placed under the same key at %s",
						k.key, k.body, earlier, paidAt.Format(time.RFC3339Nano), later, at.Format(time.RFC3339Nano)))
				}
			}
		}
	}

	// The mechanism behind it: no order is debited after its pay deadline.
	s.rows(func(scan func(...any)) {
		var id string
		var paidAt, payBy time.Time
		scan(&id, &paidAt, &payBy)
		h.anomaly("paid-after-deadline", fmt.Sprintf("order %s was debited at %s, after its pay deadline %s",
			id, paidAt.Format(time.RFC3339Nano), payBy.Format(time.RFC3339Nano)))
	}, `SELECT o.id, e.created_at, o.pay_by FROM billing.entries e JOIN orders.orders o ON o.id = e.operation_id
		WHERE e.type = 'debit' AND e.created_at > o.pay_by`)

	if err := s.ledgerViolations(); err != nil {
		h.anomaly("ledger", err.Error())
	}
}

// rows runs a query against the system's database and hands each row to fn.
func (s *system) rows(fn func(scan func(...any)), query string) {
	s.t.Helper()
	rows, err := s.db.Query(query)
	if err != nil {
		s.t.Fatalf("%s: %v", query, err)
	}
	defer rows.Close()
	for rows.Next() {
		fn(func(dest ...any) {
			if err := rows.Scan(dest...); err != nil {
				s.t.Fatalf("%s: %v", query, err)
			}
		})
	}
	if err := rows.Err(); err != nil {
		s.t.Fatalf("%s: %v", query, err)
	}
}
