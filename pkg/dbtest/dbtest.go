// Package dbtest gives integration tests a throwaway PostgreSQL database on the machine's real
// server, migrated or empty, and a RabbitMQ URL, skipping only when the server is truly absent.
package dbtest

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	_ "github.com/lib/pq" // the tests talk to PostgreSQL through lib/pq, as the services do

	"github.com/order-system/order-system/pkg/migrate"
	"github.com/order-system/order-system/pkg/postgres"
)

// New returns a pool on a throwaway database with the service's migrations applied, as the
// service opens its own at start; the pool is closed and the database dropped when the test
// ends.
func New(t testing.TB, migrations fs.FS) *sqlx.DB {
	t.Helper()
	db, err := migrate.Open(context.Background(), postgres.Config{URL: NewDatabase(t, "service")}, migrations)
	if err != nil {
		t.Fatalf("open test database: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// AdminURL is the superuser connection used to create and drop test databases.
func AdminURL() string {
	if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// AMQPURL is the broker tests use.
func AMQPURL() string {
	if u := os.Getenv("TEST_AMQP_URL"); u != "" {
		return u
	}
	return "amqp://guest:guest@127.0.0.1:5672/"
}

// NewDatabase creates an empty database with the given schema and returns a URL whose
// search_path points at that schema, as a service's DATABASE_URL does. The database is dropped
// when the test ends.
func NewDatabase(t testing.TB, schema string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	admin, err := sql.Open("postgres", AdminURL())
	if err != nil {
		t.Fatalf("open admin connection: %v", err)
	}
	defer admin.Close()
	if err := admin.PingContext(ctx); err != nil {
		if strings.Contains(err.Error(), "connection refused") {
			t.Skipf("PostgreSQL is not running: %v", err)
		}
		t.Fatalf("ping PostgreSQL: %v", err)
	}
	name := "test_" + strings.ReplaceAll(uuid.NewString(), "-", "")
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		admin, err := sql.Open("postgres", AdminURL())
		if err != nil {
			t.Errorf("open admin connection: %v", err)
			return
		}
		defer admin.Close()
		if _, err := admin.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})

	u, err := url.Parse(AdminURL())
	if err != nil {
		t.Fatalf("parse admin url: %v", err)
	}
	u.Path = "/" + name
	db, err := sql.Open("postgres", u.String())
	if err != nil {
		t.Fatalf("open test database: %v", err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// Name returns a unique name for broker objects (queues, exchanges) of one test.
func Name(t testing.TB, prefix string) string {
	return fmt.Sprintf("%s.%s", prefix, uuid.NewString()[:8])
}
