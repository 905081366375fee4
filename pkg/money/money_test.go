package money_test

import (
	"errors"
	"math"
	"strconv"
	"testing"

	"github.com/order-system/order-system/pkg/money"
)

func TestParseReadsExactAmounts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want money.Amount
		err  error
	}{
		{"0", 0, nil},
		{"500", 50000, nil},
		{"499.5", 49950, nil},
		{"499.50", 49950, nil},
		{"0.01", 1, nil},
		{"-3", -300, nil},
		{"999999999999.99", money.Max, nil},
		{"1000000000000", 0, money.ErrTooLarge},
		{"1.234", 0, money.ErrSyntax},
		{"1.", 0, money.ErrSyntax},
		{".5", 0, money.ErrSyntax},
		{"1e3", 0, money.ErrSyntax},
		{"007", 0, money.ErrSyntax},
		{"", 0, money.ErrSyntax},
		{"-", 0, money.ErrSyntax},
		{"\"5\"", 0, money.ErrSyntax},
		{"1 ", 0, money.ErrSyntax},
	}
	for _, tt := range tests {
		got, err := money.Parse(tt.in)
		if !errors.Is(err, tt.err) || got != tt.want {
			t.Errorf("Parse(%q) = %d, %v; want %d, %v", tt.in, got, err, tt.want, tt.err)
		}
	}
}

func TestParseBalance(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want money.Amount
		err  error
	}{
		{"499.5", 49950, nil},
		{"999999999999.99", money.Max, nil},
		{"1000000000000", money.Max + 1, nil},
		{"92233720368547758.07", math.MaxInt64, nil},
		{"-92233720368547758.07", -math.MaxInt64, nil},
		{"92233720368547758.08", 0, money.ErrTooLarge},
		{"92233720368547759", 0, money.ErrTooLarge},
		{"999999999999999999.99", 0, money.ErrTooLarge},
		{"1000000000000000000", 0, money.ErrTooLarge},
		{"1.234", 0, money.ErrSyntax},
		{"1e20", 0, money.ErrSyntax},
	}
	for _, tt := range tests {
		got, err := money.ParseBalance(tt.in)
		if !errors.Is(err, tt.err) || got != tt.want {
			t.Errorf("ParseBalance(%q) = %d, %v; want %d, %v", tt.in, got, err, tt.want, tt.err)
		}
		if err == nil && got.String() != tt.in {
			t.Errorf("ParseBalance(%q) prints back as %q", tt.in, got.String())
		}
	}
}

func TestParsePositive(t *testing.T) {
	t.Parallel()
	for _, in := range []string{"0", "-1", "0.00"} {
		if _, err := money.ParsePositive(in); !errors.Is(err, money.ErrNotPositive) {
			t.Errorf("ParsePositive(%q) error = %v, want ErrNotPositive", in, err)
		}
	}
}

func TestAmountPrintsAsAShortDecimal(t *testing.T) {
	t.Parallel()
	tests := map[money.Amount]string{0: "0", 50000: "500", 49950: "499.5", 1: "0.01", 10: "0.1", -250: "-2.5", money.Max: "999999999999.99"}
	for a, want := range tests {
		if got := a.String(); got != want {
			t.Errorf("Amount(%d).String() = %q, want %q", int64(a), got, want)
		}
	}
}

// FuzzRoundTrip checks that every accepted text prints back to a text that parses to the
// same amount, and that printing is canonical (parse(print(a)) == a, print(parse(s)) is
// stable), for arbitrary input.
func FuzzRoundTrip(f *testing.F) {
	for _, s := range []string{"0", "500", "499.5", "0.01", "-3", "1.234", "1e3", "999999999999.99", "00", "1.0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := money.Parse(s)
		if err != nil {
			return
		}
		printed := a.String()
		b, err := money.Parse(printed)
		if err != nil || b != a {
			t.Fatalf("Parse(%q) = %d prints %q which parses to %d, %v", s, a, printed, b, err)
		}
		// The accepted text and the printed one denote the same decimal value.
		if f1, _ := strconv.ParseFloat(s, 64); f1 != float64(a)/100 && abs(f1-float64(a)/100) > 1e-6*abs(f1) {
			t.Fatalf("Parse(%q) = %d minor units, float reading %v", s, a, f1)
		}
		if a > money.Max || a < -money.Max {
			t.Fatalf("Parse(%q) = %d beyond Max", s, a)
		}
	})
}

func abs(f float64) float64 {
	if f < 0 {
		return -f
	}
	return f
}
