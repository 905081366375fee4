// Package startup holds the start-up steps the services' run() share: reading the
// subcommand, opening and migrating the database, the metrics registry, and the outbox relay
// of the services that publish events.
package startup

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"

	"github.com/jmoiron/sqlx"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/order-system/order-system/pkg/env"
	"github.com/order-system/order-system/pkg/events"
	"github.com/order-system/order-system/pkg/migrate"
	"github.com/order-system/order-system/pkg/outbox"
	"github.com/order-system/order-system/pkg/postgres"
	"github.com/order-system/order-system/pkg/rabbit"
)

// Subcommands every service binary understands.
const (
	Serve       = "serve"       // the default: run the service
	Migrate     = "migrate"     // apply migrations and exit (Kubernetes runs it before the app)
	Healthcheck = "healthcheck" // probe a running instance's /readyz (containers have no curl)
)

// Command returns the subcommand named by args, Serve when there is none. extra lists the
// service's own subcommands besides the common ones.
func Command(args []string, extra ...string) (string, error) {
	if len(args) == 0 {
		return Serve, nil
	}
	for _, c := range append([]string{Serve, Migrate, Healthcheck}, extra...) {
		if args[0] == c {
			return c, nil
		}
	}
	return "", fmt.Errorf("unknown command %q", args[0])
}

// Database opens the service's pool and applies its migrations, so a service never runs
// against a schema older than its code. DB_MAX_OPEN_CONNS sizes the pool (default 10):
// replicas × pools must stay under the database's max_connections.
func Database(ctx context.Context, url string, migrations fs.FS) (*sqlx.DB, error) {
	size, err := env.Int("DB_MAX_OPEN_CONNS", 10)
	if err != nil {
		return nil, err
	}
	db, err := postgres.Open(ctx, postgres.Config{URL: url, MaxOpenConns: size})
	if err != nil {
		return nil, err
	}
	if err := migrate.Up(db.DB, migrations); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// Registry returns a metrics registry with the Go runtime, process and connection-pool
// collectors already registered.
func Registry(db *sqlx.DB, service string) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewDBStatsCollector(db.DB, service))
	return reg
}

// Relay returns the outbox relay of a service that publishes events, with its publisher to
// the events exchange (for the readiness check); closing stops both. The publisher dials
// the broker lazily, so a broker that is down does not keep the service from starting.
func Relay(ctx context.Context, databaseURL, amqpURL string, log *slog.Logger, reg prometheus.Registerer) (*outbox.Relay, *rabbit.Publisher, func(), error) {
	size, err := env.Int("DB_RELAY_MAX_OPEN_CONNS", 2)
	if err != nil {
		return nil, nil, nil, err
	}
	publisher := rabbit.NewPublisher(amqpURL, events.Exchange)
	// The relay's own small pool (DB_RELAY_MAX_OPEN_CONNS) commits asynchronously: losing the
	// mark "published" in a crash only republishes events, which consumers deduplicate.
	db, err := postgres.Open(ctx, postgres.Config{URL: databaseURL, MaxOpenConns: size, AsyncCommit: true})
	if err != nil {
		publisher.Close()
		return nil, nil, nil, err
	}
	relay := outbox.NewRelay(db, publisher, outbox.RelayConfig{}, log, reg)
	closing := func() {
		db.Close()
		publisher.Close()
	}
	return relay, publisher, closing, nil
}
