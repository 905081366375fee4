package servers

import (
	"context"
	"database/sql"
	"net/url"
	"os"
	"testing"
	"time"

	_ "github.com/lib/pq"
	amqp "github.com/rabbitmq/amqp091-go"
)

// tempDir is a directory the postgres user can traverse, unlike t.TempDir's.
func tempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "servers-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func TestPostgresRestartKeepsCommittedRows(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	pg, err := StartPostgres(ctx, tempDir(t)+"/pg")
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	db, err := sql.Open("postgres", pg.AdminURL())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE t (n int); INSERT INTO t VALUES (1), (2)`); err != nil {
		t.Fatal(err)
	}
	if err := pg.Restart(ctx, "immediate"); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.QueryRow(`SELECT sum(n) FROM t`).Scan(&n); err != nil || n != 3 {
		t.Fatalf("after a crash restart: sum %d, err %v; want 3", n, err)
	}
	if err := pg.Stop(ctx, "fast"); err != nil {
		t.Fatal(err)
	}
	if err := db.Ping(); err == nil {
		t.Fatal("the stopped server still answers")
	}
	u, err := url.Parse(pg.AdminURL())
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword("postgres", "wrong")
	wrong, _ := sql.Open("postgres", u.String())
	defer wrong.Close()
	if err := pg.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := wrong.Ping(); err == nil {
		t.Fatal("a wrong password was accepted")
	}
}

// A quorum queue's message published through one node survives the SIGKILL of another and
// is consumed through a third; the killed node rejoins.
func TestRabbitClusterSurvivesANodeKill(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	c, err := StartRabbitCluster(ctx, tempDir(t)+"/rabbitmq", 3)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	publish, err := amqp.Dial(c.URL(0))
	if err != nil {
		t.Fatal(err)
	}
	defer publish.Close()
	ch, err := publish.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare("q", true, false, false, false, amqp.Table{"x-queue-type": "quorum"}); err != nil {
		t.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	confirm, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", "q", false, false, amqp.Publishing{Body: []byte("kept")})
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := confirm.WaitContext(ctx); !ok || err != nil {
		t.Fatalf("publish not confirmed: %v", err)
	}

	c.Kill(1)
	if c.Running(1) {
		t.Fatal("node 1 runs after Kill")
	}
	consume, err := amqp.Dial(c.URL(2))
	if err != nil {
		t.Fatal(err)
	}
	defer consume.Close()
	ch2, err := consume.Channel()
	if err != nil {
		t.Fatal(err)
	}
	var got amqp.Delivery
	for ok := false; !ok; {
		if got, ok, err = ch2.Get("q", true); err != nil {
			t.Fatal(err)
		}
		if ctx.Err() != nil {
			t.Fatal("the message is not there after a node was killed")
		}
	}
	if string(got.Body) != "kept" {
		t.Fatalf("got %q", got.Body)
	}

	if err := c.Start(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if out, err := c.Ctl(ctx, 1, "await_online_nodes", "3", "--timeout", "60"); err != nil {
		t.Fatalf("node 1 did not rejoin: %v\n%s", err, out)
	}
}

// The primary of a pair is killed: the standby takes over with every committed row, writes
// go on through the same URL, and the old primary rejoins as the standby.
func TestPostgresPairFailsOver(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	p, err := StartPostgresPair(ctx, tempDir(t)+"/pair")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	state, err := p.State(ctx)
	if err != nil {
		t.Fatal(err)
	}
	primary := state.Primary()
	t.Logf("started: %v", state)

	db, err := sql.Open("postgres", p.AdminURL())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE t (n int PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	for n := range 100 {
		if _, err := db.Exec(`INSERT INTO t VALUES ($1)`, n); err != nil {
			t.Fatal(err)
		}
	}

	p.KillNode(primary)
	killed := time.Now()
	insertWhenWritable(ctx, t, db, 100, "the primary was killed")
	t.Logf("first write on the new primary %v after the kill", time.Since(killed).Round(time.Millisecond))
	var count int
	if err := db.QueryRow(`SELECT count(*) FROM t`).Scan(&count); err != nil || count != 101 {
		t.Fatalf("after the failover: %d rows (%v), want 101", count, err)
	}

	if err := p.StartNode(ctx, primary); err != nil {
		t.Fatal(err)
	}
	now, err := p.WaitHealthy(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if now == primary {
		t.Fatalf("node%d is the primary again; want the promoted standby to stay primary", now)
	}

	// Both nodes lost at once (a power cut), then back: the pair recovers with every row.
	p.KillNode(0)
	p.KillNode(1)
	for i := range 2 {
		if err := p.StartNode(ctx, i); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := p.WaitHealthy(ctx); err != nil {
		t.Fatal(err)
	}
	insertWhenWritable(ctx, t, db, 101, "both nodes came back")
	if err := db.QueryRow(`SELECT count(*) FROM t`).Scan(&count); err != nil || count != 102 {
		t.Fatalf("after both nodes were lost: %d rows (%v), want 102", count, err)
	}
}

// insertWhenWritable inserts n into t, retrying until the pair takes a write. A retry may
// follow an attempt whose commit went through but whose answer was lost (the connection
// dropped while the commit waited for the standby), so the insert is idempotent: the
// count afterwards says whether a committed row was lost, not how often we asked.
func insertWhenWritable(ctx context.Context, t *testing.T, db *sql.DB, n int, after string) {
	t.Helper()
	for {
		_, err := db.Exec(`INSERT INTO t VALUES ($1) ON CONFLICT (n) DO NOTHING`, n)
		if err == nil {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("no write went through after %s: %v", after, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
