// Package metrics gives a service its Prometheus registry, served at /metrics by httpx.
package metrics

import (
	"database/sql"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// NewRegistry returns a registry with the Go runtime, process and connection-pool (db, named
// after the service) collectors already registered.
func NewRegistry(db *sql.DB, service string) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewDBStatsCollector(db, service))
	return reg
}

// Pool collects the statistics of another connection pool of the service (such as the outbox
// relay's own), as the go_sql_* series with db_name set to name: open, in use, idle, the
// maximum, and how often and how long requests waited for a connection.
func Pool(db *sql.DB, name string) prometheus.Collector {
	return collectors.NewDBStatsCollector(db, name)
}
