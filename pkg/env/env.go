// Package env reads configuration from environment variables, with defaults given by the
// caller, and reads the settings every service binary has (Common).
package env

import (
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strconv"
	"strings"
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

// Common is the configuration every service binary has.
type Common struct {
	HTTPAddr    string
	DatabaseURL string
	AMQPURL     string
	// DBMaxOpenConns sizes the service's pool and DBRelayMaxOpenConns the outbox relay's
	// own one (services that publish events): replicas × pools must stay under the
	// database's max_connections.
	DBMaxOpenConns      int
	DBRelayMaxOpenConns int
	ShutdownTimeout     time.Duration
	Pprof               bool
}

// commonNames are the variables LoadCommon reads.
var commonNames = []string{"HTTP_ADDR", "DATABASE_URL", "AMQP_URL", "DB_MAX_OPEN_CONNS", "DB_RELAY_MAX_OPEN_CONNS", "SHUTDOWN_TIMEOUT", "PPROF"}

// Unset makes the named variables, and those LoadCommon reads, unset for the rest of test t
// (an empty variable counts as unset): a configuration test so sees the defaults whatever
// the process inherited.
func Unset(t interface{ Setenv(key, value string) }, names ...string) {
	for _, name := range append(names, commonNames...) {
		t.Setenv(name, "")
	}
}

// LoadCommon reads HTTP_ADDR, DATABASE_URL, AMQP_URL, DB_MAX_OPEN_CONNS (default 10),
// DB_RELAY_MAX_OPEN_CONNS (2), SHUTDOWN_TIMEOUT (15s) and PPROF. httpAddr and databaseURL
// are the service's own defaults: its port and its database on a developer machine.
func LoadCommon(httpAddr, databaseURL string) (Common, error) {
	c := Common{
		HTTPAddr:    String("HTTP_ADDR", httpAddr),
		DatabaseURL: String("DATABASE_URL", databaseURL),
		AMQPURL:     String("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"),
		Pprof:       os.Getenv("PPROF") == "true",
	}
	var err error
	if c.DBMaxOpenConns, err = Int("DB_MAX_OPEN_CONNS", 10); err != nil {
		return Common{}, err
	}
	if c.DBRelayMaxOpenConns, err = Int("DB_RELAY_MAX_OPEN_CONNS", 2); err != nil {
		return Common{}, err
	}
	if c.ShutdownTimeout, err = Duration("SHUTDOWN_TIMEOUT", 15*time.Second); err != nil {
		return Common{}, err
	}
	return c, nil
}

// Attrs returns the settings for a start-up log line, with the passwords in the URLs masked.
func (c Common) Attrs() []slog.Attr {
	return []slog.Attr{
		slog.String("http_addr", c.HTTPAddr),
		slog.String("database_url", Masked(c.DatabaseURL)),
		slog.String("amqp_url", Masked(c.AMQPURL)),
		slog.Int("db_max_open_conns", c.DBMaxOpenConns),
		slog.Int("db_relay_max_open_conns", c.DBRelayMaxOpenConns),
		slog.String("shutdown_timeout", c.ShutdownTimeout.String()),
		slog.Bool("pprof", c.Pprof),
	}
}

// Masked returns a URL, or a list of URLs separated by commas (AMQP_URL's nodes of a
// cluster), with the passwords replaced by "xxxxx"; text that does not parse as a URL is
// masked whole, since it may hold a password anywhere.
func Masked(rawURL string) string {
	parts := strings.Split(rawURL, ",")
	for i, part := range parts {
		u, err := url.Parse(part)
		if err != nil {
			return "xxxxx"
		}
		parts[i] = u.Redacted()
	}
	return strings.Join(parts, ",")
}
