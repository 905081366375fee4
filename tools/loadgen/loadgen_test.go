package main

import (
	"testing"
	"time"
)

func TestSummarize(t *testing.T) {
	var sample []time.Duration
	for i := 100; i >= 1; i-- {
		sample = append(sample, time.Duration(i)*time.Millisecond)
	}
	p := summarize(sample)
	if p.Count != 100 || p.P50 != 50 || p.P95 != 95 || p.P99 != 99 || p.Max != 100 {
		t.Fatalf("summarize = %+v", p)
	}
	if (summarize(nil) != Percentiles{}) {
		t.Fatal("empty sample should summarise to zero")
	}
}

func TestParseAmount(t *testing.T) {
	for in, want := range map[string]int64{"500": 50000, "499.5": 49950, "0.01": 1, "0": 0} {
		if got := parseAmount(in); got != want {
			t.Errorf("parseAmount(%q) = %d, want %d", in, got, want)
		}
	}
}

func TestCheck(t *testing.T) {
	healthy := func() *UserState {
		return &UserState{
			Deposited: 1000,
			Orders:    map[string]Order{"a": {Price: 300, Outcome: Completed}, "b": {Price: 5000, Outcome: Insufficient}},
			DebitRows: map[string]int{"a": 1},
			Balance:   700,
			Notes:     map[string]string{"a": "success", "b": "failure"},
			NoteCount: map[string]int{"a": 1, "b": 1},
		}
	}
	if v := check(map[string]*UserState{"u": healthy()}); v.Total() != 0 {
		t.Fatalf("healthy user: %+v", v)
	}
	tests := map[string]func(u *UserState) int{
		"double debit":      func(u *UserState) int { u.DebitRows["a"] = 2; return 1 },
		"refused debited":   func(u *UserState) int { u.DebitRows["b"] = 1; return 1 },
		"balance off":       func(u *UserState) int { u.Balance = 699; return 1 },
		"lost notification": func(u *UserState) int { delete(u.NoteCount, "a"); return 1 },
		"duplicate":         func(u *UserState) int { u.NoteCount["b"] = 2; return 1 },
		"wrong type":        func(u *UserState) int { u.Notes["a"] = "failure"; return 1 },
		"unknown note":      func(u *UserState) int { u.NoteCount["zzz"] = 1; return 1 },
		"debit unknown":     func(u *UserState) int { u.DebitRows["zzz"] = 1; return 1 },
	}
	for name, breakIt := range tests {
		u := healthy()
		want := breakIt(u)
		if v := check(map[string]*UserState{"u": u}); v.Total() != want {
			t.Errorf("%s: %d violations (%+v), want %d", name, v.Total(), v, want)
		}
	}
}
