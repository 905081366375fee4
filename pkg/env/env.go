// Package env reads configuration from environment variables with defaults in code, and holds
// the settings every service shares.
package env

import (
	"fmt"
	"os"
	"strconv"
	"time"
)

// String returns the variable's value, or def when unset or empty.
func String(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// Duration parses a Go duration ("15s", "24h"), or returns def when unset.
func Duration(name string, def time.Duration) (time.Duration, error) {
	v := os.Getenv(name)
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%s: %q is not a positive duration", name, v)
	}
	return d, nil
}

// Common is the configuration every service has.
type Common struct {
	HTTPAddr        string
	DatabaseURL     string
	AMQPURL         string
	LogLevel        string
	ShutdownTimeout time.Duration
	Pprof           bool
}

// LoadCommon reads the shared settings. port and schema give the developer-machine defaults:
// the service's local port and the schema its database role owns.
func LoadCommon(role, schema, port string) (Common, error) {
	shutdown, err := Duration("SHUTDOWN_TIMEOUT", 15*time.Second)
	if err != nil {
		return Common{}, err
	}
	return Common{
		HTTPAddr:        String("HTTP_ADDR", ":"+port),
		DatabaseURL:     String("DATABASE_URL", fmt.Sprintf("postgres://%[1]s:%[1]s@127.0.0.1:5432/order_system?sslmode=disable&search_path=%[2]s", role, schema)),
		AMQPURL:         String("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"),
		LogLevel:        String("LOG_LEVEL", "info"),
		ShutdownTimeout: shutdown,
		Pprof:           os.Getenv("PPROF") == "true",
	}, nil
}

// Int parses a positive integer, or returns def when unset.
func Int(name string, def int) (int, error) {
	v := os.Getenv(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%s: %q is not a positive integer", name, v)
	}
	return n, nil
}

// Idempotency is the configuration of Idempotency-Key records.
type Idempotency struct {
	TTL           time.Duration // how long a key and its response are kept
	PurgeInterval time.Duration // how often expired records are deleted
	// Lease is how long a request holds its key: a retry during the lease gets 409. It must
	// outlast the slowest request; if the process dies, the key is free again after it.
	Lease time.Duration
}

// LoadIdempotency reads IDEMPOTENCY_TTL (default 24h), IDEMPOTENCY_PURGE_INTERVAL (10m) and
// IDEMPOTENCY_LEASE (10s).
func LoadIdempotency() (Idempotency, error) {
	ttl, err := Duration("IDEMPOTENCY_TTL", 24*time.Hour)
	if err != nil {
		return Idempotency{}, err
	}
	purge, err := Duration("IDEMPOTENCY_PURGE_INTERVAL", 10*time.Minute)
	if err != nil {
		return Idempotency{}, err
	}
	lease, err := Duration("IDEMPOTENCY_LEASE", 10*time.Second)
	if err != nil {
		return Idempotency{}, err
	}
	return Idempotency{TTL: ttl, PurgeInterval: purge, Lease: lease}, nil
}
