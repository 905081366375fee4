package idempotency

import (
	"log/slog"
	"time"

	"github.com/order-system/order-system/pkg/env"
)

// Config is the configuration of a service's Idempotency-Key records.
type Config struct {
	// TTL is how long a key and its response are kept (IDEMPOTENCY_TTL, default 24h).
	TTL time.Duration
	// PurgeInterval is how often expired records are deleted (IDEMPOTENCY_PURGE_INTERVAL,
	// default 10m).
	PurgeInterval time.Duration
	// Lease is how long a request holds its key (IDEMPOTENCY_LEASE, default 10s): a retry
	// during the lease gets 409. It must outlast the slowest request; if the process dies,
	// the key is free again after it.
	Lease time.Duration
}

// DefaultTTL is how long a key and its response are kept unless IDEMPOTENCY_TTL says
// otherwise.
const DefaultTTL = 24 * time.Hour

// LoadConfig reads the configuration from the environment, with the defaults Config gives.
func LoadConfig() (Config, error) {
	ttl, err := env.Duration("IDEMPOTENCY_TTL", DefaultTTL)
	if err != nil {
		return Config{}, err
	}
	purge, err := env.Duration("IDEMPOTENCY_PURGE_INTERVAL", 10*time.Minute)
	if err != nil {
		return Config{}, err
	}
	lease, err := env.Duration("IDEMPOTENCY_LEASE", 10*time.Second)
	if err != nil {
		return Config{}, err
	}
	return Config{TTL: ttl, PurgeInterval: purge, Lease: lease}, nil
}

// LogValue shows the configuration in a log line.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(slog.String("ttl", c.TTL.String()), slog.String("purge_interval", c.PurgeInterval.String()), slog.String("lease", c.Lease.String()))
}
