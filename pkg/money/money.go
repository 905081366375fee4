// Package money represents amounts exactly, as integer minor units (kopecks, cents), and
// converts them to and from the decimal JSON numbers of the API without floating point.
package money

import (
	"errors"
	"math"
	"strconv"
	"strings"
)

// Amount is a sum of money in minor units (1/100 of the currency unit).
type Amount int64

// Max is the largest amount the API accepts: 999 999 999 999.99. Billing holds balances to
// the same limit, so a balance always prints as an amount and sums never overflow int64.
const Max Amount = 99_999_999_999_999

// Parse errors. Their texts are shown to clients as the reason a field is invalid.
var (
	ErrSyntax      = errors.New("must be a decimal number with at most 2 decimals")
	ErrTooLarge    = errors.New("must be at most 999999999999.99")
	ErrNotPositive = errors.New("must be greater than 0")
)

// Parse reads a decimal number such as "500", "-3", "499.5" or "0.01". It accepts at most two
// decimals and no exponent, so every accepted text maps to exactly one Amount.
func Parse(s string) (Amount, error) {
	return parse(s, maxWholeDigits)
}

// ParseBalance is Parse for a balance billing reports: a ledger from before balances were
// capped at Max may hold more, up to whatever an Amount holds.
func ParseBalance(s string) (Amount, error) {
	return parse(s, 18)
}

// maxWholeDigits is how many digits Max has before the decimal point.
const maxWholeDigits = 12

// parse reads a decimal number with at most maxWhole digits before the point, as long as it
// fits an Amount.
func parse(s string, maxWhole int) (Amount, error) {
	neg := strings.HasPrefix(s, "-")
	if neg {
		s = s[1:]
	}
	whole, frac, hasDot := strings.Cut(s, ".")
	if whole == "" || !digits(whole) || (hasDot && (frac == "" || len(frac) > 2 || !digits(frac))) {
		return 0, ErrSyntax
	}
	// A JSON number never has leading zeros ("007"); reject them so the text form is canonical.
	if len(whole) > 1 && whole[0] == '0' {
		return 0, ErrSyntax
	}
	if len(whole) > maxWhole {
		return 0, ErrTooLarge
	}
	units, err := strconv.ParseInt(whole, 10, 64)
	if err != nil {
		return 0, ErrSyntax
	}
	var cents int64
	if hasDot {
		for len(frac) < 2 {
			frac += "0"
		}
		cents, _ = strconv.ParseInt(frac, 10, 64)
	}
	if units > (math.MaxInt64-cents)/100 {
		return 0, ErrTooLarge
	}
	a := Amount(units*100 + cents)
	if neg {
		a = -a
	}
	return a, nil
}

// ParsePositive is Parse for amounts that must be greater than zero.
func ParsePositive(s string) (Amount, error) {
	a, err := Parse(s)
	if err != nil {
		return 0, err
	}
	if a <= 0 {
		return 0, ErrNotPositive
	}
	return a, nil
}

// String prints the shortest exact decimal: 50000 → "500", 49950 → "499.5", 1 → "0.01".
func (a Amount) String() string {
	sign := ""
	v := int64(a)
	if v < 0 {
		sign, v = "-", -v
	}
	units, cents := v/100, v%100
	switch {
	case cents == 0:
		return sign + strconv.FormatInt(units, 10)
	case cents%10 == 0:
		return sign + strconv.FormatInt(units, 10) + "." + strconv.FormatInt(cents/10, 10)
	default:
		return sign + strconv.FormatInt(units, 10) + "." + strconv.FormatInt(cents/10, 10) + strconv.FormatInt(cents%10, 10)
	}
}

// MarshalJSON prints the amount as a JSON number.
func (a Amount) MarshalJSON() ([]byte, error) { return []byte(a.String()), nil }

// UnmarshalJSON reads a JSON number with at most two decimals.
func (a *Amount) UnmarshalJSON(b []byte) error {
	v, err := Parse(string(b))
	if err != nil {
		return err
	}
	*a = v
	return nil
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
