// Package migrate applies a service's embedded SQL migrations to its own schema.
package migrate

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"

	gomigrate "github.com/golang-migrate/migrate/v4"
	"github.com/golang-migrate/migrate/v4/database/postgres"
	"github.com/golang-migrate/migrate/v4/source/iofs"
	"github.com/jmoiron/sqlx"

	"github.com/order-system/order-system/pkg/database"
)

// Open opens a service's pool and applies its migrations, so a service never runs against a
// schema older than its code.
func Open(ctx context.Context, cfg database.Config, fsys fs.FS) (*sqlx.DB, error) {
	db, err := database.Open(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := Up(ctx, db.DB, fsys); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// Up applies every pending migration found at the root of fsys. The migrations table lives in
// the connection's current schema (set by search_path in DATABASE_URL), so services sharing a
// database never see each other's history. golang-migrate takes an advisory lock, so replicas
// starting together apply each migration once.
//
// The migrations run on one connection taken from db for the duration and given back at the
// end: golang-migrate's driver otherwise keeps a connection of the pool for itself as long as
// the process lives (and closing that driver would close the whole pool).
func Up(ctx context.Context, db *sql.DB, fsys fs.FS) error {
	src, err := iofs.New(fsys, ".")
	if err != nil {
		return fmt.Errorf("read migrations: %w", err)
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		src.Close()
		return fmt.Errorf("migration connection: %w", err)
	}
	driver, err := postgres.WithConnection(ctx, conn, &postgres.Config{MigrationsTable: "schema_migrations"})
	if err != nil {
		src.Close()
		conn.Close()
		return fmt.Errorf("migration driver: %w", err)
	}
	m, err := gomigrate.NewWithInstance("iofs", src, "postgres", driver)
	if err != nil {
		src.Close()
		driver.Close() // gives conn back
		return fmt.Errorf("migrate: %w", err)
	}
	// Closing m closes the source and the driver, which gives conn back to the pool.
	defer m.Close()
	if err := m.Up(); err != nil && !errors.Is(err, gomigrate.ErrNoChange) {
		return fmt.Errorf("migrate up: %w", err)
	}
	return nil
}
