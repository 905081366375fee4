package postgres

import (
	"context"
	"fmt"

	"github.com/order-system/order-system/services/billing/internal/billing"
)

// invariants are the ledger's promises, each as a query returning the rows that break it.
var invariants = []struct {
	name  string
	query string
}{
	{"balance equals the sum of entries", `
		SELECT a.user_id::text AS subject,
		       format('balance %s, entries sum to %s', a.balance, COALESCE(sum(CASE e.type WHEN 'deposit' THEN e.amount ELSE -e.amount END), 0)) AS detail
		FROM accounts a LEFT JOIN entries e ON e.user_id = a.user_id
		GROUP BY a.user_id, a.balance
		HAVING a.balance <> COALESCE(sum(CASE e.type WHEN 'deposit' THEN e.amount ELSE -e.amount END), 0)`},
	{"balance is never negative", `
		SELECT user_id::text AS subject, format('balance %s', balance) AS detail FROM accounts WHERE balance < 0`},
	{"every completed payment has exactly one debit of its amount", `
		SELECT p.payment_id::text AS subject,
		       format('%s debit entries, amounts %s, payment amount %s', count(e.id), COALESCE(string_agg(e.amount::text, ','), '-'), p.amount) AS detail
		FROM payments p LEFT JOIN entries e ON e.operation_id = p.payment_id AND e.type = 'debit'
		WHERE p.status = 'completed'
		GROUP BY p.payment_id, p.amount
		HAVING count(e.id) <> 1 OR min(e.amount) <> p.amount OR max(e.user_id::text) <> max(p.user_id::text)`},
	{"every debit belongs to a completed payment", `
		SELECT e.operation_id::text AS subject, format('debit %s without a completed payment', e.amount) AS detail
		FROM entries e LEFT JOIN payments p ON p.payment_id = e.operation_id AND p.status = 'completed'
		WHERE e.type = 'debit' AND p.payment_id IS NULL`},
	{"a refused or voided payment moved no money", `
		SELECT p.payment_id::text AS subject, p.status || ' payment has a ledger entry' AS detail
		FROM payments p JOIN entries e ON e.operation_id = p.payment_id
		WHERE p.status IN ('insufficient_funds', 'voided', 'account_not_found')`},
	{"a payment other than account_not_found names an account", `
		SELECT p.payment_id::text AS subject, format('%s payment of user %s, who has no account', p.status, p.user_id) AS detail
		FROM payments p LEFT JOIN accounts a ON a.user_id = p.user_id
		WHERE p.status <> 'account_not_found' AND a.user_id IS NULL`},
}

// Verify checks the ledger's invariants on the live database and returns every violation.
func (l *Ledger) Verify(ctx context.Context) ([]billing.Violation, error) {
	var out []billing.Violation
	for _, inv := range invariants {
		var rows []struct {
			Subject string `db:"subject"`
			Detail  string `db:"detail"`
		}
		if err := l.db.SelectContext(ctx, &rows, inv.query); err != nil {
			return nil, fmt.Errorf("check %q: %w", inv.name, err)
		}
		for _, r := range rows {
			out = append(out, billing.Violation{Invariant: inv.name, Subject: r.Subject, Detail: r.Detail})
		}
	}
	return out, nil
}
