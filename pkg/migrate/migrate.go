// Package migrate applies a service's embedded SQL migrations to its own schema, and takes
// them back or repairs their record when an operator asks (the migrate subcommand).
package migrate

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strconv"

	gomigrate "github.com/golang-migrate/migrate/v4"
	migratedb "github.com/golang-migrate/migrate/v4/database"
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
	if _, err := Up(ctx, db.DB, fsys); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// Schema is where a schema's migrations stand.
type Schema struct {
	Version uint // 0: none applied
	Dirty   bool // the last migration failed half-way
	Latest  uint // the newest migration this code has
}

// Ahead says the schema is a later release's: newer than every migration this code has.
func (s Schema) Ahead() bool { return s.Version > s.Latest }

func (s Schema) String() string {
	switch {
	case s.Dirty:
		return fmt.Sprintf("version %d, dirty", s.Version)
	case s.Ahead():
		return fmt.Sprintf("version %d, newer than this release's %d", s.Version, s.Latest)
	default:
		return fmt.Sprintf("version %d", s.Version)
	}
}

// Up applies every pending migration found at the root of fsys and returns where the schema
// was before. A schema newer than the code (a later release's, after the code was rolled
// back) is left as it is: migrations are written expand/contract (docs/deploy.md), so the
// code of the release before runs on it. A dirty schema is refused until repaired (Force).
func Up(ctx context.Context, db *sql.DB, fsys fs.FS) (Schema, error) {
	var before Schema
	err := with(ctx, db, fsys, func(m *gomigrate.Migrate, versions []uint) error {
		var err error
		if before, err = schema(m, versions); err != nil {
			return err
		}
		if before.Dirty {
			return fmt.Errorf("the schema is dirty at version %d: a migration failed half-way; repair it by hand, "+
				"then record the version it is at with `migrate force <version>`", before.Version)
		}
		if before.Ahead() {
			return nil
		}
		if err := m.Up(); err != nil && !errors.Is(err, gomigrate.ErrNoChange) {
			return fmt.Errorf("migrate up: %w", err)
		}
		return nil
	})
	return before, err
}

// Down takes back the last n migrations, with this code's down files: a schema newer than
// the code needs the later release's binary to take its own back.
func Down(ctx context.Context, db *sql.DB, fsys fs.FS, n int) error {
	if n < 1 {
		return fmt.Errorf("migrate down: %d migrations, want at least 1", n)
	}
	return with(ctx, db, fsys, func(m *gomigrate.Migrate, versions []uint) error {
		s, err := schema(m, versions)
		if err != nil {
			return err
		}
		if s.Ahead() {
			return fmt.Errorf("migrate down: the schema is at %v; run the down migrations with that release's binary", s)
		}
		// Refused before anything runs: golang-migrate would take back what there is, then
		// report that it fell short.
		applied := 0
		for _, v := range versions {
			if v <= s.Version {
				applied++
			}
		}
		if n > applied {
			return fmt.Errorf("migrate down %d: the schema is at %v, with %d migrations to take back", n, s, applied)
		}
		if err := m.Steps(-n); err != nil {
			return fmt.Errorf("migrate down %d from %v: %w", n, s, err)
		}
		return nil
	})
}

// Force records version as the schema's, clean, without running anything: the repair after
// a migration failed half-way and the schema was brought to a known version by hand. 0
// records that none is applied.
func Force(ctx context.Context, db *sql.DB, fsys fs.FS, version int) error {
	if version < 0 {
		return fmt.Errorf("migrate force: version %d, want 0 or more", version)
	}
	return with(ctx, db, fsys, func(m *gomigrate.Migrate, _ []uint) error {
		if version == 0 {
			return m.Force(migratedb.NilVersion)
		}
		return m.Force(version)
	})
}

// Current returns where the schema's migrations stand.
func Current(ctx context.Context, db *sql.DB, fsys fs.FS) (Schema, error) {
	var s Schema
	err := with(ctx, db, fsys, func(m *gomigrate.Migrate, versions []uint) error {
		var err error
		s, err = schema(m, versions)
		return err
	})
	return s, err
}

// Usage is the migrate subcommand's.
const Usage = "migrate [up | down N | force VERSION | version]"

// Command runs the migrate subcommand of a service binary with its arguments (after
// "migrate") on the database cfg names, and logs what it did.
func Command(ctx context.Context, log *slog.Logger, cfg database.Config, fsys fs.FS, args []string) error {
	op, n, err := parse(args)
	if err != nil {
		return err
	}
	pool, err := database.Open(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	db := pool.DB
	switch op {
	case "down":
		err = Down(ctx, db, fsys, n)
	case "force":
		err = Force(ctx, db, fsys, n)
	case "up":
		var before Schema
		if before, err = Up(ctx, db, fsys); err == nil && before.Ahead() {
			log.Info("migrations: the schema is a later release's, left as it is", "schema", before.String())
		}
	}
	if err != nil {
		return err
	}
	now, err := Current(ctx, db, fsys)
	if err != nil {
		return err
	}
	log.Info("migrations", "command", op, "schema", now.String())
	return nil
}

// parse reads the migrate subcommand's arguments: the operation and its number.
func parse(args []string) (op string, n int, err error) {
	if len(args) == 0 {
		return "up", 0, nil
	}
	switch args[0] {
	case "up", "version":
		if len(args) == 1 {
			return args[0], 0, nil
		}
	case "down", "force":
		if len(args) == 2 {
			if n, err := strconv.Atoi(args[1]); err == nil {
				return args[0], n, nil
			}
		}
	}
	return "", 0, fmt.Errorf("usage: %s (got %q)", Usage, args)
}

// with runs fn with a migrator on one connection taken from db for the duration and given
// back at the end (golang-migrate's driver otherwise keeps a connection of the pool for
// itself as long as the process lives, and closing that driver would close the whole
// pool), and with the versions of fsys's migrations, in order. The migrations table lives in
// the connection's current schema (set by search_path in DATABASE_URL), so services sharing
// a database never see each other's history. golang-migrate takes an advisory lock, so
// replicas starting together apply each migration once.
func with(ctx context.Context, db *sql.DB, fsys fs.FS, fn func(m *gomigrate.Migrate, versions []uint) error) error {
	src, err := iofs.New(fsys, ".")
	if err != nil {
		return fmt.Errorf("read migrations: %w", err)
	}
	v, err := src.First()
	if err != nil {
		src.Close()
		return fmt.Errorf("read migrations: %w", err)
	}
	versions := []uint{v}
	for {
		if v, err = src.Next(v); err != nil {
			break
		}
		versions = append(versions, v)
	}
	if !errors.Is(err, fs.ErrNotExist) { // anything but the end of the list
		src.Close()
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
	return fn(m, versions)
}

func schema(m *gomigrate.Migrate, versions []uint) (Schema, error) {
	latest := versions[len(versions)-1]
	v, dirty, err := m.Version()
	if errors.Is(err, gomigrate.ErrNilVersion) {
		return Schema{Latest: latest}, nil
	}
	if err != nil {
		return Schema{}, fmt.Errorf("migration version: %w", err)
	}
	return Schema{Version: v, Dirty: dirty, Latest: latest}, nil
}
