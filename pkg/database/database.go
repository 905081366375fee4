// Package database opens the connection pool a service uses and runs transactions.
package database

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/order-system/order-system/pkg/apperr"
)

// Config sizes the pool. Zero values take the defaults below.
type Config struct {
	URL string
	// MaxOpenConns defaults to 10: the database has a few cores, so more connections per
	// service only queue inside PostgreSQL, and four services with replicas must stay well
	// under its max_connections (100 by default).
	MaxOpenConns int
	MaxIdleConns int // default MaxOpenConns, so bursts do not reconnect
	// AsyncCommit turns off synchronous_commit for this pool: commits return before the WAL
	// reaches the disk. Only for writes whose loss in a crash is harmless, such as marking
	// outbox events published (a lost mark means a duplicate that consumers drop).
	AsyncCommit bool
	// ConnectTimeout bounds opening a connection, handshake included; default 5 s. Without
	// it lib/pq waits forever for a server that accepted the TCP connection and went silent.
	// A connect_timeout in URL takes precedence.
	ConnectTimeout time.Duration
	// StatementTimeout is the server's statement_timeout for the pool's sessions; default
	// 30 s. A statement_timeout in URL takes precedence.
	StatementTimeout time.Duration
	// ReadTimeout bounds every wait for the server's answer on an open connection; default
	// the statement timeout (the URL's, if it names one) plus 5 s, so that a server that
	// answers at all answers first, and none when the URL turns statement_timeout off. It is
	// what ends a query to a partitioned server, which neither the query's context nor
	// statement_timeout can.
	ReadTimeout time.Duration
}

// Defaults of Config's timeouts.
const (
	DefaultConnectTimeout   = 5 * time.Second
	DefaultStatementTimeout = 30 * time.Second
	readTimeoutMargin       = 5 * time.Second
)

// Open returns a pool connected to cfg.URL. It retries until the database answers or ctx
// ends, because in a cluster the database often starts after the services.
func Open(ctx context.Context, cfg Config) (*sqlx.DB, error) {
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = DefaultConnectTimeout
	}
	if cfg.StatementTimeout == 0 {
		cfg.StatementTimeout = DefaultStatementTimeout
	}
	if cfg.ReadTimeout == 0 {
		statement, ok := statementTimeoutIn(cfg.URL)
		switch {
		case !ok:
			cfg.ReadTimeout = cfg.StatementTimeout + readTimeoutMargin
		case statement > 0:
			cfg.ReadTimeout = statement + readTimeoutMargin
		}
	}
	dsn, err := withSettings(cfg)
	if err != nil {
		return nil, err
	}
	pqConnector, err := pq.NewConnector(dsn)
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	pqConnector.Dialer(deadlineDialer{dialer: net.Dialer{KeepAlive: 15 * time.Second}, read: cfg.ReadTimeout})
	db := sqlx.NewDb(sql.OpenDB(connector{pqConnector}), "postgres")
	if cfg.MaxOpenConns == 0 {
		cfg.MaxOpenConns = 10
	}
	if cfg.MaxIdleConns == 0 {
		cfg.MaxIdleConns = cfg.MaxOpenConns
	}
	db.SetMaxOpenConns(cfg.MaxOpenConns)
	db.SetMaxIdleConns(cfg.MaxIdleConns)
	db.SetConnMaxIdleTime(5 * time.Minute)

	delay := 200 * time.Millisecond
	for {
		err = db.PingContext(ctx)
		if err == nil {
			return db, nil
		}
		select {
		case <-ctx.Done():
			db.Close()
			return nil, fmt.Errorf("ping database: %w", errors.Join(ctx.Err(), err))
		case <-time.After(delay):
		}
		delay = min(delay*2, 5*time.Second)
	}
}

// withSettings adds the pool's session settings to a postgres:// URL: lib/pq sends parameters
// it does not know as run-time settings. A setting the URL names already is left alone.
func withSettings(cfg Config) (string, error) {
	if !strings.HasPrefix(cfg.URL, "postgres://") && !strings.HasPrefix(cfg.URL, "postgresql://") {
		return cfg.URL, nil // a key=value DSN is taken as it is
	}
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return "", fmt.Errorf("parse database url: %w", err)
	}
	q := u.Query()
	setDefault := func(key, value string) {
		if !q.Has(key) {
			q.Set(key, value)
		}
	}
	setDefault("connect_timeout", strconv.Itoa(max(1, int(cfg.ConnectTimeout.Round(time.Second)/time.Second))))
	setDefault("statement_timeout", strconv.FormatInt(cfg.StatementTimeout.Milliseconds(), 10))
	if cfg.AsyncCommit {
		q.Set("synchronous_commit", "off")
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// statementTimeoutIn returns the statement_timeout a postgres:// URL names, if it names one
// that reads as PostgreSQL does (milliseconds by default, or with a unit ms, s, min or h).
func statementTimeoutIn(dsn string) (time.Duration, bool) {
	u, err := url.Parse(dsn)
	if err != nil || !u.Query().Has("statement_timeout") {
		return 0, false
	}
	v := strings.TrimSpace(u.Query().Get("statement_timeout"))
	units := []struct {
		suffix string
		unit   time.Duration
	}{{"ms", time.Millisecond}, {"min", time.Minute}, {"s", time.Second}, {"h", time.Hour}, {"", time.Millisecond}}
	for _, u := range units {
		if n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(v, u.suffix)), 10, 64); err == nil && strings.HasSuffix(v, u.suffix) && n >= 0 {
			return time.Duration(n) * u.unit, true
		}
	}
	return 0, false
}

// InTx runs fn in a transaction, committing when fn returns nil and rolling back otherwise.
func InTx(ctx context.Context, db *sqlx.DB, fn func(tx *sqlx.Tx) error) error {
	tx, err := db.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// IsUniqueViolation reports whether err is a unique constraint violation.
func IsUniqueViolation(err error) bool {
	var pqErr *pq.Error
	return errors.As(err, &pqErr) && pqErr.Code == "23505"
}

// IsCheckViolation reports whether err violates the CHECK constraint named constraint.
func IsCheckViolation(err error, constraint string) bool {
	var pqErr *pq.Error
	return errors.As(err, &pqErr) && pqErr.Code == "23514" && pqErr.Constraint == constraint
}

// IsUnavailable reports whether err means the database cannot be reached right now
// (connection refused or reset, no connection could be opened, server shutting down, too
// many clients, a server that has become read-only in a failover), as opposed to a problem
// with the statement. Callers answer 503 for these instead of 500.
func IsUnavailable(err error) bool {
	if isConnectError(err) {
		return true
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return true
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) {
		return true
	}
	var pqErr *pq.Error
	if errors.As(err, &pqErr) {
		switch pqErr.Code.Class() {
		case "08", "57": // connection exception, operator intervention (shutdown)
			return true
		}
		// too_many_connections; read_only_sql_transaction: the connection's server was a
		// primary and is now demoted, or a standby not yet open for writes.
		return pqErr.Code == "53300" || pqErr.Code == "25006"
	}
	// A request whose client hung up gets context.Canceled, or sql.ErrTxDone once
	// database/sql rolled its transaction back: nothing was done, and it is no fault of the
	// service (nobody reads the 503 it is answered).
	return errors.Is(err, pq.ErrSSLNotSupported) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, context.Canceled) || errors.Is(err, sql.ErrTxDone) || isDriverBadConn(err)
}

// Wrap prepares a storage error for the layers above: coded errors pass unchanged, an
// unreachable database or a transaction rolled back for a conflict becomes 503 unavailable,
// bad data 400, and anything else gets op as context (and
// ends as a 500 whose details only the log sees).
func Wrap(op string, err error) error {
	var ae *apperr.Error
	if errors.As(err, &ae) {
		return err
	}
	if IsUnavailable(err) {
		return apperr.Wrap(err, apperr.Unavailable, "database unavailable")
	}
	var pqErr *pq.Error
	if errors.As(err, &pqErr) {
		switch pqErr.Code.Class() {
		case "22":
			// Data exceptions (a NUL byte in text, a value out of range) are the input's fault
			// and will fail the same way every time.
			return apperr.Wrap(err, apperr.Invalid, "a value cannot be stored: "+pqErr.Message)
		case "40":
			// A deadlock or serialization failure: PostgreSQL rolled the transaction back to
			// let a concurrent one through (a retried request taking over its key, say).
			// Nothing was done, and the request succeeds when sent again.
			return apperr.Wrap(err, apperr.Unavailable, "request conflicted with a concurrent one; retry")
		}
	}
	return fmt.Errorf("%s: %w", op, err)
}

// Interval renders d as a PostgreSQL interval literal, for parameters cast with ::interval.
func Interval(d time.Duration) string {
	return fmt.Sprintf("%d microseconds", d.Microseconds())
}
