package database

import (
	"testing"
	"time"
)

func TestStatementTimeoutIn(t *testing.T) {
	t.Parallel()
	tests := []struct {
		url  string
		want time.Duration
		ok   bool
	}{
		{"postgres://h/db", 0, false},
		{"postgres://h/db?statement_timeout=60000", time.Minute, true},
		{"postgres://h/db?statement_timeout=500ms", 500 * time.Millisecond, true},
		{"postgres://h/db?statement_timeout=45s", 45 * time.Second, true},
		{"postgres://h/db?statement_timeout=2min", 2 * time.Minute, true},
		{"postgres://h/db?statement_timeout=1h", time.Hour, true},
		{"postgres://h/db?statement_timeout=0", 0, true},
		{"postgres://h/db?statement_timeout=soon", 0, false},
	}
	for _, tt := range tests {
		got, ok := statementTimeoutIn(tt.url)
		if got != tt.want || ok != tt.ok {
			t.Errorf("statementTimeoutIn(%q) = %v, %v; want %v, %v", tt.url, got, ok, tt.want, tt.ok)
		}
	}
}

func TestWithSettingsKeepsTheURLs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		cfg  Config
		want string
	}{
		{Config{URL: "postgres://u@h/db?sslmode=disable", ConnectTimeout: 5 * time.Second, StatementTimeout: 30 * time.Second},
			"postgres://u@h/db?connect_timeout=5&sslmode=disable&statement_timeout=30000"},
		{Config{URL: "postgres://u@h/db?connect_timeout=2&statement_timeout=0", ConnectTimeout: 5 * time.Second, StatementTimeout: 30 * time.Second, AsyncCommit: true},
			"postgres://u@h/db?connect_timeout=2&statement_timeout=0&synchronous_commit=off"},
		{Config{URL: "host=h dbname=db", ConnectTimeout: 5 * time.Second}, "host=h dbname=db"},
	}
	for _, tt := range tests {
		got, err := withSettings(tt.cfg)
		if err != nil || got != tt.want {
			t.Errorf("withSettings(%q) = %q, %v; want %q", tt.cfg.URL, got, err, tt.want)
		}
	}
}
