package main

import (
	"fmt"

	"github.com/order-system/order-system/tools/loadgen/result"
)

// Outcome is what a client finally knows about an order.
type Outcome string

// Outcomes.
const (
	Completed    Outcome = "completed"
	Insufficient Outcome = "insufficient"
	// Pending: the answer was 503 with the order (billing unreachable); the service finishes
	// such an order on its own, and its final state is read before the check.
	Pending Outcome = "pending"
	Failed  Outcome = "failed" // a pending order the service finished as failed

)

// UserState is what the load generator did to one user and what the system says about them.
type UserState struct {
	Deposited int64             // minor units
	Orders    map[string]Order  // order id → what the client was told (definitive outcomes only)
	Debits    map[string]int64  // payment id → amount (minor units), from billing's ledger
	DebitRows map[string]int    // payment id → number of debit entries
	Balance   int64             // from billing
	Notes     map[string]string // order id → notification type; "dup" marks a second one
	NoteCount map[string]int
}

// Order is one order as the client saw it.
type Order struct {
	Price   int64
	Outcome Outcome
}

// add counts one violation and keeps the first few as examples.
func add(v *result.Violations, counter *int, format string, args ...any) {
	*counter++
	if len(v.Examples) < 10 {
		v.Examples = append(v.Examples, fmt.Sprintf(format, args...))
	}
}

// check verifies, per user: every completed order debited exactly once and nothing else
// debited, balance = deposits − completed prices, one notification of the right type per
// finished order and none for anything else.
func check(users map[string]*UserState) result.Violations {
	var v result.Violations
	for id, u := range users {
		var spent int64
		for oid, o := range u.Orders {
			switch o.Outcome {
			case Completed:
				spent += o.Price
				switch n := u.DebitRows[oid]; {
				case n == 0:
					add(&v, &v.MissingDebits, "order %s completed without a debit", oid)
				case n > 1:
					add(&v, &v.DoubleDebits, "order %s debited %d times", oid, n)
				}
				if u.NoteCount[oid] > 0 && u.Notes[oid] != "success" {
					add(&v, &v.WrongNoteType, "order %s completed, notification %s", oid, u.Notes[oid])
				}
			case Pending:
				add(&v, &v.Unfinished, "order %s is still pending", oid)
				continue
			case Insufficient, Failed:
				if u.DebitRows[oid] > 0 {
					add(&v, &v.UnexpectedDebits, "refused order %s was debited", oid)
				}
				if u.NoteCount[oid] > 0 && u.Notes[oid] != "failure" {
					add(&v, &v.WrongNoteType, "order %s refused, notification %s", oid, u.Notes[oid])
				}
			}
			switch n := u.NoteCount[oid]; {
			case n == 0:
				add(&v, &v.LostNotes, "order %s has no notification", oid)
			case n > 1:
				add(&v, &v.DuplicatedNotes, "order %s has %d notifications", oid, n)
			}
		}
		for pid := range u.DebitRows {
			if _, ok := u.Orders[pid]; !ok {
				add(&v, &v.UnexpectedDebits, "debit %s matches no order of user %s", pid, id)
			}
		}
		for oid := range u.NoteCount {
			if _, ok := u.Orders[oid]; !ok {
				add(&v, &v.UnexpectedNotes, "notification for unknown order %s", oid)
			}
		}
		if want := u.Deposited - spent; u.Balance != want {
			add(&v, &v.BalanceMismatches, "user %s balance %d, want %d (deposited %d, spent %d)", id, u.Balance, want, u.Deposited, spent)
		}
	}
	return v
}
