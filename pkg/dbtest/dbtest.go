// Package dbtest gives integration tests what they share: a throwaway PostgreSQL database on
// a real server (the machine's unless a test brings its own; migrated or empty), a RabbitMQ
// virtual host or channel, and Eventually. A test skips only when the server it needs is truly absent.
package dbtest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	_ "github.com/lib/pq" // the tests talk to PostgreSQL through lib/pq, as the services do
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/order-system/order-system/pkg/database"
	"github.com/order-system/order-system/pkg/migrate"
	"github.com/order-system/order-system/pkg/rabbit"
)

// New returns a pool on a throwaway database with the service's migrations applied, as the
// service opens its own at start; the pool is closed and the database dropped when the test
// ends.
func New(t testing.TB, migrations fs.FS) *sqlx.DB {
	t.Helper()
	db, err := migrate.Open(context.Background(), database.Config{URL: NewDatabase(t, "service")}, migrations)
	if err != nil {
		t.Fatalf("open test database: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// Servers are the PostgreSQL and RabbitMQ a test runs against: the machine's (Machine), or
// servers a fault test started for itself, which it may stop and restart.
type Servers struct {
	AdminURL string // a superuser's connection, to create and drop databases
	// AMQPURL is the broker: one URL, or several separated by commas for the nodes of a
	// cluster.
	AMQPURL string
	// Rabbitmqctl runs rabbitmqctl with args against the broker; nil when it is not installed.
	Rabbitmqctl func(ctx context.Context, args ...string) ([]byte, error)
}

// Machine is the machine's PostgreSQL and RabbitMQ, or those TEST_DATABASE_URL and
// TEST_AMQP_URL name.
func Machine() Servers {
	s := Servers{AdminURL: AdminURL(), AMQPURL: AMQPURL()}
	if ctl, err := machineRabbitmqctl(); err == nil {
		s.Rabbitmqctl = func(ctx context.Context, args ...string) ([]byte, error) {
			out, err := exec.CommandContext(ctx, ctl, args...).CombinedOutput()
			if err != nil {
				return out, errors.New(string(out) + err.Error())
			}
			return out, nil
		}
	}
	return s
}

// machineRabbitmqctl looks rabbitmqctl up once: every test's NewVhost asks for the machine.
var machineRabbitmqctl = sync.OnceValues(func() (string, error) { return exec.LookPath("rabbitmqctl") })

// AdminURL is the superuser connection to the machine's PostgreSQL used to create and drop
// test databases.
func AdminURL() string {
	if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// AMQPURL is the machine's broker, as tests use it.
func AMQPURL() string {
	if u := os.Getenv("TEST_AMQP_URL"); u != "" {
		return u
	}
	return "amqp://guest:guest@127.0.0.1:5672/"
}

// NewDatabase creates an empty database on the machine's PostgreSQL: see
// Servers.NewDatabase.
func NewDatabase(t testing.TB, schema string) string { return Machine().NewDatabase(t, schema) }

// NewVhost creates a virtual host on the machine's RabbitMQ: see Servers.NewVhost.
func NewVhost(t testing.TB) string { return Machine().NewVhost(t) }

// NewDatabase creates an empty database with the given schema and returns a URL whose
// search_path points at that schema, as a service's DATABASE_URL does. The database is dropped
// when the test ends.
func (s Servers) NewDatabase(t testing.TB, schema string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	admin, err := sql.Open("postgres", s.AdminURL)
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
		admin, err := sql.Open("postgres", s.AdminURL)
		if err != nil {
			t.Errorf("open admin connection: %v", err)
			return
		}
		defer admin.Close()
		if _, err := admin.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})

	u, err := url.Parse(s.AdminURL)
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

// NewVhost creates a throwaway virtual host on the broker, so that the test's exchanges and
// queues cannot meet those of a running system or of another test, and returns the broker
// URL (each node's, for a cluster) for it; the virtual host is deleted when the test ends.
func (s Servers) NewVhost(t testing.TB) string {
	t.Helper()
	if s.Rabbitmqctl == nil {
		t.Skip("rabbitmqctl is not installed")
	}
	var nodes []*url.URL
	for _, raw := range strings.Split(s.AMQPURL, ",") {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, u)
	}
	if conn, err := net.DialTimeout("tcp", nodes[0].Host, 2*time.Second); err != nil {
		t.Skipf("RabbitMQ is not running: %v", err)
	} else {
		conn.Close()
	}
	vhost := "t-" + uuid.NewString()[:8]
	run := func(args ...string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err := s.Rabbitmqctl(ctx, args...)
		return err
	}
	if err := run("add_vhost", vhost); err != nil {
		t.Fatalf("add vhost: %v", err)
	}
	t.Cleanup(func() {
		// A fault test may leave the broker down; a virtual host left behind is no failure
		// of what the test checked.
		if err := run("delete_vhost", vhost); err != nil {
			t.Logf("delete vhost %s: %v", vhost, err)
		}
	})
	if err := run("set_permissions", "-p", vhost, nodes[0].User.Username(), ".*", ".*", ".*"); err != nil {
		t.Fatalf("set permissions: %v", err)
	}
	urls := make([]string, len(nodes))
	for i, u := range nodes {
		u.Path = "/" + vhost
		urls[i] = u.String()
	}
	return strings.Join(urls, ",")
}

// Eventually polls cond every 50 ms until it holds, and fails the test if it still does not
// after timeout.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Channel returns a channel on the broker at url (the first node of a list separated by
// commas), closed with its connection when the test ends; the test skips when nothing
// listens there.
func Channel(t testing.TB, url string) *amqp.Channel {
	t.Helper()
	first, _, _ := strings.Cut(url, ",")
	conn, err := amqp.Dial(first)
	if errors.Is(err, syscall.ECONNREFUSED) {
		t.Skipf("RabbitMQ is not running: %v", err)
	}
	if err != nil {
		t.Fatalf("dial RabbitMQ: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatalf("open channel: %v", err)
	}
	return ch
}

// RemoveQueue deletes q's queues and exchanges when the test ends, for a test that declares
// them outside a virtual host of its own.
func RemoveQueue(t testing.TB, ch *amqp.Channel, q rabbit.Queue) {
	t.Cleanup(func() {
		ch.QueueDelete(q.Name, false, false, false)
		ch.QueueDelete(q.DeadLetterQueue(), false, false, false)
		ch.ExchangeDelete(q.Exchange, false, false)
		ch.ExchangeDelete(q.DeadLetterExchange(), false, false)
	})
}

// Name returns a unique name for broker objects (queues, exchanges) of one test.
func Name(t testing.TB, prefix string) string {
	return fmt.Sprintf("%s.%s", prefix, uuid.NewString()[:8])
}

// WaitForLockWaits waits until n sessions of db's database wait for a lock, as pg_stat_activity
// shows them: what a test of lock order waits for instead of sleeping.
func WaitForLockWaits(t testing.TB, db *sqlx.DB, n int) {
	t.Helper()
	Eventually(t, 10*time.Second, fmt.Sprintf("%d sessions waiting for a lock", n), func() bool {
		var waiting int
		err := db.Get(&waiting, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`)
		return err == nil && waiting >= n
	})
}
