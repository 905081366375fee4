package database_test

import (
	"context"
	"errors"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/order-system/order-system/pkg/apperr"
	"github.com/order-system/order-system/pkg/database"
	"github.com/order-system/order-system/pkg/dbtest"
)

// partition forwards TCP connections to a PostgreSQL server until cut is set; from then on it
// keeps every connection open and forwards nothing, in either direction, as a network
// partition does.
type partition struct {
	ln       net.Listener
	upstream string
	cut      atomic.Bool
	mu       sync.Mutex
	conns    []net.Conn
}

func newPartition(t *testing.T, upstream string) *partition {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &partition{ln: ln, upstream: upstream}
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, c := range p.conns {
			c.Close()
		}
	})
	return p
}

func (p *partition) serve() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.keep(client)
		if p.cut.Load() {
			continue // accepted, never answered
		}
		server, err := net.Dial("tcp", p.upstream)
		if err != nil {
			client.Close()
			continue
		}
		p.keep(server)
		go p.pipe(server, client)
		go p.pipe(client, server)
	}
}

func (p *partition) keep(c net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.conns = append(p.conns, c)
}

// pipe copies from src to dst until the partition is cut, then swallows what src sends.
func (p *partition) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if err != nil {
			return
		}
		if p.cut.Load() {
			continue
		}
		if _, err := dst.Write(buf[:n]); err != nil {
			return
		}
	}
}

// TestPartitionedDatabase cuts the network between a pool and its server: a query on an open
// connection and the opening of a new one both fail within their timeouts instead of
// waiting for TCP to give up, and a statement that runs too long is stopped by the server.
func TestPartitionedDatabase(t *testing.T) {
	t.Parallel()
	u, err := url.Parse(dbtest.NewDatabase(t, "part"))
	if err != nil {
		t.Fatal(err)
	}
	p := newPartition(t, u.Host)
	u.Host = p.ln.Addr().String()
	cfg := database.Config{URL: u.String(), MaxOpenConns: 1, ConnectTimeout: time.Second, StatementTimeout: time.Second, ReadTimeout: 2 * time.Second}
	ctx := context.Background()
	db, err := database.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	start := time.Now()
	_, err = db.ExecContext(ctx, `SELECT pg_sleep(5)`)
	t.Logf("pg_sleep(5) with a 1 s statement timeout: %v after %v", err, time.Since(start).Round(time.Millisecond))
	if err == nil || time.Since(start) > 4*time.Second {
		t.Fatalf("pg_sleep(5) with a 1 s statement timeout = %v after %v, want an error within about 1 s", err, time.Since(start))
	}

	p.cut.Store(true)
	bounded := func(what string, within time.Duration, query func(ctx context.Context) error) {
		t.Helper()
		ctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		defer cancel()
		done := make(chan error, 1)
		start := time.Now()
		go func() { done <- query(ctx) }()
		select {
		case err := <-done:
			took := time.Since(start)
			t.Logf("%s across the partition: %v after %v", what, err, took.Round(time.Millisecond))
			if err == nil {
				t.Errorf("%s across the partition succeeded", what)
			}
			if took > within {
				t.Errorf("%s took %v, want at most %v", what, took, within)
			}
		case <-time.After(15 * time.Second):
			t.Errorf("%s across the partition: no answer after 15 s", what)
		}
	}
	// The pool's one connection is open: the query waits on a read.
	bounded("a query on an open connection", cfg.ReadTimeout+2*time.Second, func(ctx context.Context) error {
		_, err := db.ExecContext(ctx, `SELECT 1`)
		return err
	})
	// That connection is broken now: the next query opens another, whose handshake hangs.
	bounded("opening a connection", cfg.ConnectTimeout+2*time.Second, func(ctx context.Context) error {
		_, err := db.ExecContext(ctx, `SELECT 1`)
		return err
	})
}

// TestConflictIsUnavailable: two transactions that lock two rows in opposite orders deadlock,
// and PostgreSQL rolls one back. That request did nothing and can simply be sent again, so
// Wrap answers it 503 unavailable, not 500.
func TestConflictIsUnavailable(t *testing.T) {
	t.Parallel()
	db := dbtest.New(t, fstest.MapFS{"000001_rows.up.sql": {Data: []byte(`CREATE TABLE rows (id int PRIMARY KEY, n int NOT NULL);
		INSERT INTO rows VALUES (1, 0), (2, 0);`)}})
	ctx := context.Background()
	locked := make(chan struct{}, 2)
	errs := make(chan error, 2)
	for _, order := range [][2]int{{1, 2}, {2, 1}} {
		go func() {
			errs <- database.InTx(ctx, db, func(tx *sqlx.Tx) error {
				if _, err := tx.ExecContext(ctx, `UPDATE rows SET n = n + 1 WHERE id = $1`, order[0]); err != nil {
					return err
				}
				locked <- struct{}{}
				for len(locked) < 2 { // both hold their first row
					time.Sleep(time.Millisecond)
				}
				_, err := tx.ExecContext(ctx, `UPDATE rows SET n = n + 1 WHERE id = $1`, order[1])
				return err
			})
		}()
	}
	var failed []error
	for range 2 {
		if err := <-errs; err != nil {
			failed = append(failed, err)
		}
	}
	if len(failed) != 1 {
		t.Fatalf("%d transactions failed (%v), want the one PostgreSQL chose to break the deadlock", len(failed), failed)
	}
	if err := database.Wrap("update rows", failed[0]); !apperr.Is(err, apperr.Unavailable) {
		t.Fatalf("Wrap(%v) = %v, want unavailable", failed[0], err)
	}
}

// TestClientGoneIsNotAnInternalError: a request whose client hung up ends its transaction
// with context.Canceled while it waits for a pool connection, or with sql.ErrTxDone between
// two statements (database/sql rolled the transaction back). Nothing was done; neither is a
// fault of the service, so neither may be logged and counted as a 500.
func TestClientGoneIsNotAnInternalError(t *testing.T) {
	t.Parallel()
	db := dbtest.New(t, fstest.MapFS{"000001_rows.up.sql": {Data: []byte(`CREATE TABLE rows (id int PRIMARY KEY);`)}})
	db.SetMaxOpenConns(1)
	busy, err := db.Beginx() // the pool's only connection
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel) // the client hangs up
	waiting := database.InTx(ctx, db, func(*sqlx.Tx) error { return nil })
	busy.Rollback()

	ctx, hangUp := context.WithCancel(context.Background())
	between := database.InTx(ctx, db, func(tx *sqlx.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO rows VALUES (1)`); err != nil {
			return err
		}
		hangUp()
		for range 100 { // database/sql rolls back asynchronously once ctx ends
			if _, err := tx.ExecContext(context.Background(), `INSERT INTO rows VALUES (2)`); err != nil {
				return err
			}
			time.Sleep(10 * time.Millisecond)
		}
		return nil
	})
	for name, err := range map[string]error{"waiting for a connection": waiting, "between statements": between} {
		if err == nil {
			t.Fatalf("%s: the transaction succeeded although its context ended", name)
		}
		if wrapped := database.Wrap("deposit", err); !apperr.Is(wrapped, apperr.Unavailable) {
			t.Errorf("%s: Wrap(%v) = %v, want unavailable", name, err, wrapped)
		}
	}
	var n int
	if err := db.Get(&n, `SELECT count(*) FROM rows`); err != nil || n != 0 {
		t.Fatalf("%d rows, %v; want none: both transactions rolled back", n, err)
	}
}

// TestFailoverErrorsAreUnavailable: while a standby is promoted, a pool meets servers that
// are read-only (a pooled connection to the demoted primary, or to a standby) and hosts none
// of which is writable (target_session_attrs=read-write refuses each). Both are answered 503,
// never 500. Here the machine's PostgreSQL plays them: a session set read-only, and a pool
// that accepts only a standby.
func TestFailoverErrorsAreUnavailable(t *testing.T) {
	t.Parallel()
	url := dbtest.NewDatabase(t, "s")
	db, err := database.Open(context.Background(), database.Config{URL: url + "&default_transaction_read_only=on"})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_, err = db.Exec(`CREATE TABLE t (n int)`)
	if err := database.Wrap("create", err); !apperr.Is(err, apperr.Unavailable) {
		t.Fatalf("a write on a read-only server: Wrap = %v, want unavailable", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err = database.Open(ctx, database.Config{URL: url + "&target_session_attrs=standby"})
	var connectErr *database.ConnectError
	if !errors.As(err, &connectErr) || !database.IsUnavailable(connectErr) {
		t.Fatalf("no host acceptable: Open = %v, want a ConnectError that is unavailable", err)
	}
}
