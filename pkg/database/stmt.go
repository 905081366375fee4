package database

import (
	"context"
	"database/sql"
	"sync"

	"github.com/jmoiron/sqlx"
)

// Stmt is a statement prepared on first use and reused afterwards. Hot statements of the
// order path are planned once per connection instead of on every call: for the multi-table
// statements of a payment, parsing and planning cost more than executing.
type Stmt struct {
	db    *sqlx.DB
	query string

	mu   sync.Mutex
	stmt *sqlx.Stmt
}

// Prepare returns a statement for query that is prepared when first executed, so a
// database that is down at start-up only fails the calls made while it is down.
func Prepare(db *sqlx.DB, query string) *Stmt {
	return &Stmt{db: db, query: query}
}

func (s *Stmt) prepared(ctx context.Context) (*sqlx.Stmt, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stmt != nil {
		return s.stmt, nil
	}
	stmt, err := s.db.PreparexContext(ctx, s.query)
	if err != nil {
		return nil, err
	}
	s.stmt = stmt
	return stmt, nil
}

// GetContext runs the statement and scans its single row into dest.
func (s *Stmt) GetContext(ctx context.Context, dest any, args ...any) error {
	stmt, err := s.prepared(ctx)
	if err != nil {
		return err
	}
	return stmt.GetContext(ctx, dest, args...)
}

// SelectContext runs the statement and scans every row into dest.
func (s *Stmt) SelectContext(ctx context.Context, dest any, args ...any) error {
	stmt, err := s.prepared(ctx)
	if err != nil {
		return err
	}
	return stmt.SelectContext(ctx, dest, args...)
}

// ExecContext runs the statement.
func (s *Stmt) ExecContext(ctx context.Context, args ...any) (sql.Result, error) {
	stmt, err := s.prepared(ctx)
	if err != nil {
		return nil, err
	}
	return stmt.ExecContext(ctx, args...)
}

// Close releases the statement.
func (s *Stmt) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stmt == nil {
		return nil
	}
	return s.stmt.Close()
}
