package postgres_test

import (
	"context"
	"errors"
	"io/fs"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/order-system/order-system/api/payments"
	"github.com/order-system/order-system/pkg/apperr"
	"github.com/order-system/order-system/pkg/database"
	"github.com/order-system/order-system/pkg/dbtest"
	"github.com/order-system/order-system/pkg/idempotency"
	"github.com/order-system/order-system/pkg/migrate"
	"github.com/order-system/order-system/pkg/money"
	"github.com/order-system/order-system/services/billing/internal/billing"
	"github.com/order-system/order-system/services/billing/internal/postgres"
	"github.com/order-system/order-system/services/billing/migrations"
)

// noKey is the Idempotency-Key of a request without the header.
var noKey idempotency.Key[billing.Account]

func newLedger(t *testing.T) *postgres.Ledger {
	l, _ := newLedgerDB(t)
	return l
}

func newLedgerDB(t *testing.T) (*postgres.Ledger, *sqlx.DB) {
	t.Helper()
	db := dbtest.New(t, migrations.FS)
	return postgres.NewLedger(db), db
}

func openWith(t *testing.T, l *postgres.Ledger, balance money.Amount) uuid.UUID {
	t.Helper()
	ctx := context.Background()
	user := uuid.New()
	if _, created, err := l.OpenAccount(ctx, user); err != nil || !created {
		t.Fatalf("OpenAccount = %v, %v", created, err)
	}
	if balance > 0 {
		if _, err := l.Deposit(ctx, billing.Deposit{ID: uuid.New(), UserID: user, Amount: balance}, noKey); err != nil {
			t.Fatal(err)
		}
	}
	return user
}

func verifyClean(t *testing.T, l *postgres.Ledger) {
	t.Helper()
	violations, err := l.Verify(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range violations {
		t.Errorf("ledger violation: %s on %s: %s", v.Invariant, v.Subject, v.Detail)
	}
}

func TestOpenAccountIsIdempotent(t *testing.T) {
	t.Parallel()
	l := newLedger(t)
	user := openWith(t, l, 0)
	a, created, err := l.OpenAccount(context.Background(), user)
	if err != nil || created || a.Balance != 0 || a.Currency != billing.Currency {
		t.Fatalf("second OpenAccount = %+v, created=%v, %v", a, created, err)
	}
}

func TestConcurrentDepositsSumExactly(t *testing.T) {
	t.Parallel()
	l := newLedger(t)
	user := openWith(t, l, 0)
	keyed := uuid.New() // one deposit id repeated: applies once
	var wg sync.WaitGroup
	for i := range 100 {
		wg.Go(func() {
			if _, err := l.Deposit(context.Background(), billing.Deposit{ID: uuid.New(), UserID: user, Amount: money.Amount(100 + i)}, noKey); err != nil {
				t.Error(err)
			}
		})
		wg.Go(func() {
			if _, err := l.Deposit(context.Background(), billing.Deposit{ID: keyed, UserID: user, Amount: 1}, noKey); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	a, err := l.Account(context.Background(), user)
	want := money.Amount(100*100 + 99*100/2 + 1)
	if err != nil || a.Balance != want {
		t.Fatalf("balance = %v (%v), want %v", a.Balance, err, want)
	}
	verifyClean(t, l)
}

func TestConcurrentPaymentsNeverOverdraw(t *testing.T) {
	t.Parallel()
	l := newLedger(t)
	user := openWith(t, l, 1000_00)
	const price = money.Amount(70_00)
	var (
		mu        sync.Mutex
		completed int
		refused   int
		wg        sync.WaitGroup
	)
	for range 40 {
		wg.Go(func() {
			p, err := l.Pay(context.Background(), billing.Payment{ID: uuid.New(), UserID: user, Amount: price})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				t.Error(err)
			case p.Status == payments.Completed:
				completed++
			default:
				refused++
			}
		})
	}
	wg.Wait()
	a, _ := l.Account(context.Background(), user)
	if completed != 14 || refused != 26 || a.Balance != 1000_00-14*price {
		t.Fatalf("completed=%d refused=%d balance=%v; want 14, 26, %v", completed, refused, a.Balance, 1000_00-14*price)
	}
	verifyClean(t, l)
}

func TestSamePaymentIDDebitsOnce(t *testing.T) {
	t.Parallel()
	l := newLedger(t)
	user := openWith(t, l, 100_00)
	payment := billing.Payment{ID: uuid.New(), UserID: user, Amount: 30_00}
	results := make(chan billing.Payment, 30)
	var wg sync.WaitGroup
	for range 30 {
		wg.Go(func() {
			p, err := l.Pay(context.Background(), payment)
			if err != nil {
				t.Error(err)
				return
			}
			results <- p
		})
	}
	wg.Wait()
	close(results)
	for p := range results {
		if p.Status != payments.Completed || p.Balance != 70_00 {
			t.Fatalf("repeated payment returned %+v, want the first outcome: completed, balance 70", p)
		}
	}
	entries, _ := l.Entries(context.Background(), user, 100)
	if len(entries) != 2 {
		t.Fatalf("%d entries, want the deposit and one debit", len(entries))
	}
	// Another amount under the same id is refused.
	_, err := l.Pay(context.Background(), billing.Payment{ID: payment.ID, UserID: user, Amount: 1})
	if !apperr.Is(err, billing.CodePaymentMismatch) {
		t.Fatalf("same id, other amount: err = %v, want payment_mismatch", err)
	}
	verifyClean(t, l)
}

func TestInsufficientFundsIsStored(t *testing.T) {
	t.Parallel()
	l := newLedger(t)
	user := openWith(t, l, 10_00)
	id := uuid.New()
	first, err := l.Pay(context.Background(), billing.Payment{ID: id, UserID: user, Amount: 20_00})
	if err != nil || first.Status != payments.InsufficientFunds || first.Balance != 10_00 {
		t.Fatalf("Pay = %+v, %v; want insufficient_funds with balance 10", first, err)
	}
	// Money arriving later does not turn a refused payment into a debit.
	if _, err := l.Deposit(context.Background(), billing.Deposit{ID: uuid.New(), UserID: user, Amount: 100_00}, noKey); err != nil {
		t.Fatal(err)
	}
	again, err := l.Pay(context.Background(), billing.Payment{ID: id, UserID: user, Amount: 20_00})
	if err != nil || again.Status != payments.InsufficientFunds {
		t.Fatalf("repeated refused payment = %+v, %v; want the stored insufficient_funds", again, err)
	}
	verifyClean(t, l)
}

func TestVoidSettlesAnUnknownOutcome(t *testing.T) {
	t.Parallel()
	l := newLedger(t)
	ctx := context.Background()
	user := openWith(t, l, 100_00)

	// Never paid: voided, and a late payment with the id charges nothing.
	unpaid := billing.Payment{ID: uuid.New(), UserID: user, Amount: 30_00}
	if v, err := l.Void(ctx, unpaid); err != nil || v.Status != payments.Voided {
		t.Fatalf("Void of an unpaid id = %+v, %v; want voided", v, err)
	}
	if p, err := l.Pay(ctx, unpaid); err != nil || p.Status != payments.Voided {
		t.Fatalf("Pay after Void = %+v, %v; want the stored voided", p, err)
	}
	// Already paid: the void reports the debit instead of undoing or hiding it.
	paid := billing.Payment{ID: uuid.New(), UserID: user, Amount: 40_00}
	if _, err := l.Pay(ctx, paid); err != nil {
		t.Fatal(err)
	}
	if v, err := l.Void(ctx, paid); err != nil || v.Status != payments.Completed || v.Balance != 60_00 {
		t.Fatalf("Void of a paid id = %+v, %v; want completed, balance 60", v, err)
	}
	if _, err := l.Void(ctx, billing.Payment{ID: paid.ID, UserID: user, Amount: 1}); !apperr.Is(err, billing.CodePaymentMismatch) {
		t.Fatalf("Void with another amount: err = %v, want payment_mismatch", err)
	}
	if _, err := l.Void(ctx, billing.Payment{ID: uuid.New(), UserID: uuid.New(), Amount: 1}); !apperr.Is(err, apperr.NotFound) {
		t.Fatalf("Void without an account: err = %v, want not_found", err)
	}
	if a, _ := l.Account(ctx, user); a.Balance != 60_00 {
		t.Fatalf("balance = %s, want 60 (one debit)", a.Balance)
	}
	verifyClean(t, l)
}

func TestVoidRacingPayDecidesOnce(t *testing.T) {
	t.Parallel()
	l := newLedger(t)
	ctx := context.Background()
	user := openWith(t, l, 1000_00)
	for range 50 {
		p := billing.Payment{ID: uuid.New(), UserID: user, Amount: 1_00}
		var paid, voided billing.Payment
		var payErr, voidErr error
		var wg sync.WaitGroup
		wg.Go(func() { paid, payErr = l.Pay(ctx, p) })
		wg.Go(func() { voided, voidErr = l.Void(ctx, p) })
		wg.Wait()
		if payErr != nil || voidErr != nil {
			t.Fatalf("Pay: %v, Void: %v", payErr, voidErr)
		}
		if paid.Status != voided.Status {
			t.Fatalf("Pay saw %s, Void saw %s: one outcome must win for both", paid.Status, voided.Status)
		}
	}
	verifyClean(t, l)
}

// TestVoidWhilePaymentWaits: a payment call waiting on the account's row lock while the
// void of its id commits finds the void when it gets the lock, and debits nothing.
func TestVoidWhilePaymentWaits(t *testing.T) {
	t.Parallel()
	l, db := newLedgerDB(t)
	ctx := context.Background()
	user := openWith(t, l, 100_00)
	p := billing.Payment{ID: uuid.New(), UserID: user, Amount: 30_00}

	// Hold the account row the way a concurrent debit does: Pay's UPDATE waits behind it,
	// Void's insert (which only needs the key to stay) does not.
	tx := db.MustBegin()
	defer tx.Rollback()
	tx.MustExec(`SELECT 1 FROM accounts WHERE user_id = $1 FOR NO KEY UPDATE`, user)
	paid := make(chan billing.Payment, 1)
	go func() {
		out, err := l.Pay(ctx, p)
		if err != nil {
			t.Error(err)
		}
		paid <- out
	}()
	dbtest.WaitForLockWaits(t, db, 1) // Pay is now waiting for the row
	if v, err := l.Void(ctx, p); err != nil || v.Status != payments.Voided {
		t.Fatalf("Void while Pay waits = %+v, %v; want voided", v, err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if out := <-paid; out.Status != payments.Voided {
		t.Fatalf("the waiting Pay = %+v, want the stored voided", out)
	}
	if a, _ := l.Account(ctx, user); a.Balance != 100_00 {
		t.Fatalf("balance = %s, want 100: a voided payment debits nothing", a.Balance)
	}
	verifyClean(t, l)
}

func TestDepositAboveTheBalanceCapIsRefused(t *testing.T) {
	t.Parallel()
	l := newLedger(t)
	ctx := context.Background()
	user := openWith(t, l, money.Max)
	_, err := l.Deposit(ctx, billing.Deposit{ID: uuid.New(), UserID: user, Amount: 1}, noKey)
	var ae *apperr.Error
	if !errors.As(err, &ae) || ae.Code != apperr.Invalid || ae.Fields["amount"] == "" {
		t.Fatalf("deposit above the limit: err = %v, want invalid_request on amount", err)
	}
	if a, _ := l.Account(ctx, user); a.Balance != money.Max {
		t.Fatalf("balance = %s, want %s unchanged", a.Balance, money.Max)
	}
	verifyClean(t, l)
}

func TestAUserWithoutAnAccountIsNotFound(t *testing.T) {
	t.Parallel()
	l := newLedger(t)
	ctx := context.Background()
	nobody := uuid.New()
	if _, err := l.Pay(ctx, billing.Payment{ID: uuid.New(), UserID: nobody, Amount: 1}); !apperr.Is(err, apperr.NotFound) {
		t.Errorf("Pay: err = %v, want not_found", err)
	}
	if _, err := l.Deposit(ctx, billing.Deposit{ID: uuid.New(), UserID: nobody, Amount: 1}, noKey); !apperr.Is(err, apperr.NotFound) {
		t.Errorf("Deposit: err = %v, want not_found", err)
	}
	if _, err := l.Entries(ctx, nobody, 10); !apperr.Is(err, apperr.NotFound) {
		t.Errorf("Entries: err = %v, want not_found", err)
	}
}

func TestVerifyReportsTampering(t *testing.T) {
	t.Parallel()
	l, db := newLedgerDB(t)
	user := openWith(t, l, 50_00)
	if _, err := l.Pay(context.Background(), billing.Payment{ID: uuid.New(), UserID: user, Amount: 10_00}); err != nil {
		t.Fatal(err)
	}
	verifyClean(t, l)
	// A balance changed behind the ledger's back, and a payment whose debit went missing.
	db.MustExec(`UPDATE accounts SET balance = balance + 1 WHERE user_id = $1`, user)
	db.MustExec(`INSERT INTO payments (payment_id, user_id, amount, status, balance) VALUES ($1, $2, 5, 'completed', 0)`, uuid.New(), user)
	violations, err := l.Verify(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, v := range violations {
		got[v.Invariant] = true
	}
	for _, want := range []string{"balance equals the sum of entries", "every completed payment has exactly one debit of its amount"} {
		if !got[want] {
			t.Errorf("Verify missed %q; got %+v", want, violations)
		}
	}
	// Entries are immutable.
	if _, err := db.Exec(`DELETE FROM entries WHERE user_id = $1`, user); err == nil {
		t.Error("deleting a ledger entry succeeded, want the immutability trigger to refuse")
	}
}

// TestNoAccountIsAFinalAnswer: "no account" is a payment id's first definitive answer like
// any other. Opening the account and depositing afterwards must not let a later call with
// the id debit it: the order it pays was failed for good on that answer.
func TestNoAccountIsAFinalAnswer(t *testing.T) {
	t.Parallel()
	for _, first := range []struct {
		name string
		call func(*postgres.Ledger) func(context.Context, billing.Payment) (billing.Payment, error)
	}{
		{"pay", func(l *postgres.Ledger) func(context.Context, billing.Payment) (billing.Payment, error) { return l.Pay }},
		{"void", func(l *postgres.Ledger) func(context.Context, billing.Payment) (billing.Payment, error) {
			return l.Void
		}},
	} {
		t.Run(first.name, func(t *testing.T) {
			t.Parallel()
			l := newLedger(t)
			ctx := context.Background()
			user := uuid.New()
			p := billing.Payment{ID: uuid.New(), UserID: user, Amount: 1_00}
			if _, err := first.call(l)(ctx, p); !apperr.Is(err, apperr.NotFound) {
				t.Fatalf("%s before the account exists: err = %v, want not_found", first.name, err)
			}
			if _, created, err := l.OpenAccount(ctx, user); err != nil || !created {
				t.Fatalf("OpenAccount = %v, %v", created, err)
			}
			if _, err := l.Deposit(ctx, billing.Deposit{ID: uuid.New(), UserID: user, Amount: 10_00}, noKey); err != nil {
				t.Fatal(err)
			}
			// Repeats race each other: the stored refusal answers every one of them.
			var wg sync.WaitGroup
			for i := range 20 {
				wg.Go(func() {
					call := l.Pay
					if i%2 == 1 {
						call = l.Void
					}
					if out, err := call(ctx, p); !apperr.Is(err, apperr.NotFound) {
						t.Errorf("repeat %d after the account opened = %+v, %v; want the stored not_found", i, out, err)
					}
				})
			}
			wg.Wait()
			if _, err := l.Pay(ctx, billing.Payment{ID: p.ID, UserID: user, Amount: 2_00}); !apperr.Is(err, billing.CodePaymentMismatch) {
				t.Errorf("same id, other amount: err = %v, want payment_mismatch", err)
			}
			if a, _ := l.Account(ctx, user); a.Balance != 10_00 {
				t.Fatalf("balance = %s, want 10: the id's first answer was no account", a.Balance)
			}
			verifyClean(t, l)
		})
	}
}

// TestRetriedDepositNearTheCapReturnsTheApplied: a deposit that took the balance to the cap
// and is then retried (concurrently, too) returns the applied result; the retry is found
// to be a repeat before the cap is checked.
func TestRetriedDepositNearTheCapReturnsTheApplied(t *testing.T) {
	t.Parallel()
	l := newLedger(t)
	ctx := context.Background()
	user := openWith(t, l, money.Max-10_00)
	d := billing.Deposit{ID: uuid.New(), UserID: user, Amount: 10_00}
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			if a, err := l.Deposit(ctx, d, noKey); err != nil || a.Balance != money.Max {
				t.Errorf("deposit %d of one id = %+v, %v; want the applied balance %s", i, a, err, money.Max)
			}
		})
	}
	wg.Wait()
	if a, err := l.Deposit(ctx, d, noKey); err != nil || a.Balance != money.Max {
		t.Fatalf("retry after the others = %+v, %v; want the applied balance %s", a, err, money.Max)
	}
	entries, _ := l.Entries(ctx, user, 10)
	if len(entries) != 2 {
		t.Fatalf("%d entries, want the opening deposit and the one retried", len(entries))
	}
	verifyClean(t, l)
}

// TestAccountAboveTheCapCanStillPay: the cap came after the balances, so a database from
// before it may hold an account above it. Upgraded, that account must still be debited:
// the cap stops growth, not use.
func TestAccountAboveTheCapCanStillPay(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := dbtest.NewDatabase(t, "billing")
	older, err := sqlx.Open("postgres", url)
	if err != nil {
		t.Fatal(err)
	}
	defer older.Close()
	// The database as migrations 1 and 2 left it, recorded the way the migration tool does.
	for _, name := range []string{"000001_init.up.sql", "000002_voided_payments.up.sql"} {
		script, err := fs.ReadFile(migrations.FS, name)
		if err != nil {
			t.Fatal(err)
		}
		older.MustExec(string(script))
	}
	older.MustExec(`CREATE TABLE schema_migrations (version bigint NOT NULL PRIMARY KEY, dirty boolean NOT NULL)`)
	older.MustExec(`INSERT INTO schema_migrations VALUES (2, false)`)
	user := uuid.New()
	above := money.Max + 1_000_00
	older.MustExec(`INSERT INTO accounts (user_id, balance) VALUES ($1, $2)`, user, int64(above))
	older.MustExec(`INSERT INTO entries (user_id, type, amount, balance_after, operation_id) VALUES ($1, 'deposit', $2, $2, $3)`, user, int64(above), uuid.New())

	db, err := migrate.Open(ctx, database.Config{URL: url}, migrations.FS)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	l := postgres.NewLedger(db)
	p, err := l.Pay(ctx, billing.Payment{ID: uuid.New(), UserID: user, Amount: 10_00})
	if err != nil || p.Status != payments.Completed || p.Balance != above-10_00 {
		t.Fatalf("Pay on an account above the cap = %+v, %v; want completed, balance %s", p, err, above-10_00)
	}
	// Growing it further is refused as before, and so is a new account's deposit past the cap.
	if _, err := l.Deposit(ctx, billing.Deposit{ID: uuid.New(), UserID: user, Amount: 1}, noKey); !apperr.Is(err, apperr.Invalid) {
		t.Fatalf("deposit on an account above the cap: err = %v, want invalid_request", err)
	}
	other := openWith(t, l, money.Max)
	if _, err := l.Deposit(ctx, billing.Deposit{ID: uuid.New(), UserID: other, Amount: 1}, noKey); !apperr.Is(err, apperr.Invalid) {
		t.Fatalf("deposit past the cap: err = %v, want invalid_request", err)
	}
	if a, _ := l.Account(ctx, user); a.Balance != above-10_00 {
		t.Fatalf("balance = %s, want %s", a.Balance, above-10_00)
	}
	verifyClean(t, l)
}

// TestPaymentPastItsDeadlineIsVoided: a payment request billing gets to after its deadline
// (on the database clock) is voided and debits nothing, for good; one before it pays.
func TestPaymentPastItsDeadlineIsVoided(t *testing.T) {
	t.Parallel()
	l, db := newLedgerDB(t)
	ctx := context.Background()
	user := openWith(t, l, 100_00)
	var now time.Time
	if err := db.Get(&now, `SELECT now()`); err != nil {
		t.Fatal(err)
	}
	late := billing.Payment{ID: uuid.New(), UserID: user, Amount: 10_00, PayBy: now.Add(-time.Millisecond)}
	got, err := l.Pay(ctx, late)
	if err != nil || got.Status != payments.Voided || got.Balance != 100_00 {
		t.Fatalf("Pay past its deadline = %+v, %v; want voided with the balance untouched", got, err)
	}
	late.PayBy = time.Time{} // a repeat without a deadline gets the stored outcome
	if got, err := l.Pay(ctx, late); err != nil || got.Status != payments.Voided {
		t.Fatalf("Pay again = %+v, %v; want the stored voided", got, err)
	}
	inTime := billing.Payment{ID: uuid.New(), UserID: user, Amount: 10_00, PayBy: time.Now().Add(time.Minute)}
	if got, err := l.Pay(ctx, inTime); err != nil || got.Status != payments.Completed || got.Balance != 90_00 {
		t.Fatalf("Pay before its deadline = %+v, %v; want completed, balance 90.00", got, err)
	}
	if a, err := l.Account(ctx, user); err != nil || a.Balance != 90_00 {
		t.Fatalf("balance %v, %v; want 90.00: one debit", a.Balance, err)
	}
	verifyClean(t, l)
}
