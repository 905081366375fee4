// Package payments is the vocabulary of a payment between the order service and billing
// (api/billing-internal.yaml): the outcome billing stores once per payment id. Billing stores
// it, the order service's client reads it, an order finishes by it, and the reasons of a
// failed order's event are named after it. One type, so that the four cannot drift apart.
package payments

// Outcome is billing's definitive, stored outcome of a payment id: repeating a payment
// returns its first outcome.
type Outcome string

// Payment outcomes.
const (
	// Completed: the amount was debited.
	Completed Outcome = "completed"
	// InsufficientFunds: nothing was debited, and never will be for the id.
	InsufficientFunds Outcome = "insufficient_funds"
	// Voided: the id was settled without a debit (a void, or a payment first seen after
	// its deadline), and never will be debited.
	Voided Outcome = "voided"
	// AccountNotFound: the user had no billing account at the id's first call; the id is
	// never debited. Billing answers it as the error not_found.
	AccountNotFound Outcome = "account_not_found"
)
