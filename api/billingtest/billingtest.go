// Package billingtest is a fake of billing's internal API (api/billing-internal.yaml) for the
// tests of the services that call it: accounts and balances in memory, one stored outcome per
// payment id, a log of the calls, and switches for the failures a caller must survive.
//
// Like billing before it stored "no account" as an outcome, it stores no outcome for a user
// without an account: a payment for one is a 404 that names the user, every time.
package billingtest

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/order-system/order-system/api/payments"
	"github.com/order-system/order-system/pkg/money"
)

// Call is a request the fake got.
type Call struct {
	Method, Path, RequestID string
}

// Billing is the fake; serve it with httptest.NewServer.
type Billing struct {
	// Down makes every call a 503.
	Down atomic.Bool
	// LoseAnswer makes a payment or a void happen, and the caller told 503: the answer is
	// lost on its way back.
	LoseAnswer atomic.Bool

	mu       sync.Mutex
	gate     chan struct{}            // when set, every call waits until it is closed
	held     map[string]chan struct{} // a payment id's next call waits until its channel is closed
	arrived  map[string]chan struct{} // closed when that call arrives
	balances map[string]money.Amount  // the open accounts
	outcomes map[string]payments.Outcome
	debits   map[string]int
	calls    []Call
}

// New returns a fake with no account open.
func New() *Billing {
	return &Billing{held: map[string]chan struct{}{}, arrived: map[string]chan struct{}{}, balances: map[string]money.Amount{},
		outcomes: map[string]payments.Outcome{}, debits: map[string]int{}}
}

// SetBalance opens the user's account, if it is not open, with balance.
func (f *Billing) SetBalance(user string, balance money.Amount) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.balances[user] = balance
}

// Balance is the user's balance (0 without an account).
func (f *Billing) Balance(user string) money.Amount {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.balances[user]
}

// Debits is how many times the payment id was debited.
func (f *Billing) Debits(payment string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.debits[payment]
}

// Outcome is the stored outcome of the payment id ("" for none).
func (f *Billing) Outcome(payment string) payments.Outcome {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.outcomes[payment]
}

// Calls returns the calls made so far.
func (f *Billing) Calls() []Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Call(nil), f.calls...)
}

// Hold makes the next call for the payment id wait until release is called; arrived is
// closed once that call has arrived.
func (f *Billing) Hold(payment string) (arrived <-chan struct{}, release func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	gate, here := make(chan struct{}), make(chan struct{})
	f.held[payment], f.arrived[payment] = gate, here
	return here, sync.OnceFunc(func() { close(gate) })
}

// Gate makes every call wait until open is called.
func (f *Billing) Gate() (open func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	gate := make(chan struct{})
	f.gate = gate
	return sync.OnceFunc(func() { close(gate) })
}

type paymentRequest struct {
	PaymentID string      `json:"paymentId"`
	UserID    string      `json:"userId"`
	Amount    json.Number `json:"amount"`
}

// ServeHTTP implements billing's internal routes: PUT /internal/accounts/{userId}, POST
// /internal/payments and POST /internal/payments/void.
func (f *Billing) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.calls = append(f.calls, Call{Method: r.Method, Path: r.URL.Path, RequestID: r.Header.Get("X-Request-ID")})
	gate := f.gate
	f.mu.Unlock()
	if gate != nil {
		<-gate
	}
	if f.Down.Load() {
		reply(w, http.StatusServiceUnavailable, `{"code":"unavailable","message":"billing is down"}`)
		return
	}
	switch {
	case r.Method == http.MethodPut && strings.HasPrefix(r.URL.Path, "/internal/accounts/"):
		f.openAccount(w, strings.TrimPrefix(r.URL.Path, "/internal/accounts/"))
	case r.Method == http.MethodPost && (r.URL.Path == "/internal/payments" || r.URL.Path == "/internal/payments/void"):
		client := w
		if f.LoseAnswer.Load() {
			// Process the payment, answer into the void, and tell the client 503.
			defer reply(client, http.StatusServiceUnavailable, `{"code":"unavailable","message":"answer lost"}`)
			w = discard{}
		}
		f.pay(w, r)
	default:
		reply(w, http.StatusNotFound, `{"code":"not_found","message":"resource not found"}`)
	}
}

func (f *Billing) openAccount(w http.ResponseWriter, user string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	status := http.StatusOK
	if _, open := f.balances[user]; !open {
		f.balances[user], status = 0, http.StatusCreated
	}
	reply(w, status, `{"userId":"`+user+`","balance":`+f.balances[user].String()+`,"currency":"RUB"}`)
}

func (f *Billing) pay(w http.ResponseWriter, r *http.Request) {
	var req paymentRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		reply(w, http.StatusBadRequest, `{"code":"invalid_request","message":"not a payment"}`)
		return
	}
	amount, err := money.ParsePositive(req.Amount.String())
	if err != nil {
		reply(w, http.StatusBadRequest, `{"code":"invalid_request","message":"not an amount"}`)
		return
	}
	f.mu.Lock()
	gate, held := f.held[req.PaymentID]
	arrived := f.arrived[req.PaymentID]
	delete(f.held, req.PaymentID)
	f.mu.Unlock()
	if held {
		close(arrived)
		<-gate
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	balance, open := f.balances[req.UserID]
	if !open {
		reply(w, http.StatusNotFound, `{"code":"not_found","message":"no billing account","userId":"`+req.UserID+`"}`)
		return
	}
	outcome, seen := f.outcomes[req.PaymentID]
	switch {
	case !seen && r.URL.Path == "/internal/payments/void":
		outcome = payments.Voided
	case !seen && balance >= amount:
		f.balances[req.UserID] -= amount
		f.debits[req.PaymentID]++
		outcome = payments.Completed
	case !seen:
		outcome = payments.InsufficientFunds
	}
	f.outcomes[req.PaymentID] = outcome
	reply(w, http.StatusOK, `{"paymentId":"`+req.PaymentID+`","userId":"`+req.UserID+`","amount":`+amount.String()+
		`,"status":"`+string(outcome)+`","balance":`+f.balances[req.UserID].String()+`}`)
}

func reply(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	io.WriteString(w, body)
}

// discard is a ResponseWriter that drops the answer.
type discard struct{}

func (discard) Header() http.Header         { return http.Header{} }
func (discard) Write(b []byte) (int, error) { return len(b), nil }
func (discard) WriteHeader(int)             {}
