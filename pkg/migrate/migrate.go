// Package migrate applies a service's embedded SQL migrations to its own schema.
package migrate

import (
	"database/sql"
	"errors"
	"fmt"
	"io/fs"

	gomigrate "github.com/golang-migrate/migrate/v4"
	"github.com/golang-migrate/migrate/v4/database/postgres"
	"github.com/golang-migrate/migrate/v4/source/iofs"
)

// Up applies every pending migration found at the root of fsys. The migrations table lives in
// the connection's current schema (set by search_path in DATABASE_URL), so services sharing a
// database never see each other's history. golang-migrate takes an advisory lock, so replicas
// starting together apply each migration once.
func Up(db *sql.DB, fsys fs.FS) error {
	src, err := iofs.New(fsys, ".")
	if err != nil {
		return fmt.Errorf("read migrations: %w", err)
	}
	driver, err := postgres.WithInstance(db, &postgres.Config{MigrationsTable: "schema_migrations"})
	if err != nil {
		return fmt.Errorf("migration driver: %w", err)
	}
	m, err := gomigrate.NewWithInstance("iofs", src, "postgres", driver)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if err := m.Up(); err != nil && !errors.Is(err, gomigrate.ErrNoChange) {
		return fmt.Errorf("migrate up: %w", err)
	}
	return nil
}
