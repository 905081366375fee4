package migrate_test

import (
	"context"
	"database/sql"
	"io"
	"log/slog"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/order-system/order-system/pkg/database"
	"github.com/order-system/order-system/pkg/dbtest"
	"github.com/order-system/order-system/pkg/migrate"
)

// TestUpGivesTheConnectionBack runs migrations on a pool: they are applied, and afterwards no
// connection of the pool is held for them and the pool still serves queries.
func TestUpGivesTheConnectionBack(t *testing.T) {
	t.Parallel()
	db, err := sql.Open("postgres", dbtest.NewDatabase(t, "things"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	fsys := fstest.MapFS{
		"000001_init.up.sql":   {Data: []byte(`CREATE TABLE things (id int PRIMARY KEY);`)},
		"000001_init.down.sql": {Data: []byte(`DROP TABLE things;`)},
	}
	ctx := context.Background()
	for run := range 2 { // the second run finds nothing to do
		if _, err := migrate.Up(ctx, db, fsys); err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
		if inUse := db.Stats().InUse; inUse != 0 {
			t.Fatalf("run %d: %d pool connections still in use after the migrations, want 0", run, inUse)
		}
	}
	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM things`).Scan(&n); err != nil {
		t.Fatalf("the pool after the migrations: %v", err)
	}
	var version int
	if err := db.QueryRowContext(ctx, `SELECT version FROM schema_migrations`).Scan(&version); err != nil || version != 1 {
		t.Fatalf("schema_migrations version = %d, %v; want 1", version, err)
	}
}

// migrations returns the first n of three migrations, each creating a table of its own; bad
// replaces the third's with one that fails half-way.
func migrations(n int, bad bool) fstest.MapFS {
	fsys := fstest.MapFS{}
	for i, name := range []string{"000001_a", "000002_b", "000003_c"}[:n] {
		table := string(rune('a' + i))
		up := "CREATE TABLE " + table + " (id int);"
		if bad && i == 2 {
			up = "CREATE TABLE c (id int); SELECT no_such_column FROM c;"
		}
		fsys[name+".up.sql"] = &fstest.MapFile{Data: []byte(up)}
		fsys[name+".down.sql"] = &fstest.MapFile{Data: []byte("DROP TABLE " + table + ";")}
	}
	return fsys
}

func openDB(t *testing.T) (*sql.DB, string) {
	t.Helper()
	url := dbtest.NewDatabase(t, "things")
	db, err := sql.Open("postgres", url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, url
}

func tables(t *testing.T, db *sql.DB) string {
	t.Helper()
	var got string
	err := db.QueryRow(`SELECT coalesce(string_agg(tablename, ',' ORDER BY tablename), '') FROM pg_tables
		WHERE schemaname = current_schema() AND tablename <> 'schema_migrations'`).Scan(&got)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func current(t *testing.T, db *sql.DB, fsys fstest.MapFS) migrate.Schema {
	t.Helper()
	s, err := migrate.Current(context.Background(), db, fsys)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// After a rollback of the code, the release before finds the schema of the later one: it
// leaves it as it is and starts, as expand/contract migrations let it.
func TestUpLeavesASchemaNewerThanTheCode(t *testing.T) {
	t.Parallel()
	db, _ := openDB(t)
	ctx := context.Background()
	if _, err := migrate.Up(ctx, db, migrations(3, false)); err != nil {
		t.Fatal(err)
	}
	older := migrations(2, false)
	before, err := migrate.Up(ctx, db, older)
	if err != nil {
		t.Fatalf("the release before, on the later schema: %v", err)
	}
	if !before.Ahead() || before.Version != 3 || before.Latest != 2 {
		t.Errorf("Up found %+v, want version 3 ahead of the code's 2", before)
	}
	if got := tables(t, db); got != "a,b,c" {
		t.Errorf("tables %q after Up of the release before, want a,b,c untouched", got)
	}
	if err := migrate.Down(ctx, db, older, 1); err == nil {
		t.Error("Down with the release before's migrations took back a later release's")
	}
	if s := current(t, db, older); s.Version != 3 || s.Dirty {
		t.Errorf("after the refused Down: %v, want version 3", s)
	}
}

func TestDownTakesBackTheLastMigrations(t *testing.T) {
	t.Parallel()
	db, _ := openDB(t)
	ctx := context.Background()
	fsys := migrations(3, false)
	if _, err := migrate.Up(ctx, db, fsys); err != nil {
		t.Fatal(err)
	}
	if err := migrate.Down(ctx, db, fsys, 2); err != nil {
		t.Fatal(err)
	}
	if s, got := current(t, db, fsys), tables(t, db); s.Version != 1 || got != "a" {
		t.Errorf("after down 2: %v, tables %q; want version 1, a", s, got)
	}
	if err := migrate.Down(ctx, db, fsys, 0); err == nil {
		t.Error("down 0 was accepted")
	}
	// More than there is: refused before anything is taken back.
	if err := migrate.Down(ctx, db, fsys, 2); err == nil {
		t.Error("down 2 with 1 migration applied was accepted")
	}
	if s, got := current(t, db, fsys), tables(t, db); s.Version != 1 || got != "a" {
		t.Errorf("after the refused down 2: %v, tables %q; want version 1, a", s, got)
	}
	if _, err := migrate.Up(ctx, db, fsys); err != nil {
		t.Fatal(err)
	}
	if got := tables(t, db); got != "a,b,c" {
		t.Errorf("up again: tables %q, want a,b,c", got)
	}
}

// A migration that fails half-way leaves the schema dirty: Up refuses it until an operator
// repairs the schema and records its version with Force.
func TestForceRepairsADirtySchema(t *testing.T) {
	t.Parallel()
	db, _ := openDB(t)
	ctx := context.Background()
	if _, err := migrate.Up(ctx, db, migrations(3, true)); err == nil {
		t.Fatal("a failing migration was applied")
	}
	// PostgreSQL ran the file as one transaction: nothing of it stayed, but the record is dirty.
	if s := current(t, db, migrations(3, true)); s.Version != 3 || !s.Dirty {
		t.Fatalf("after the failure: %v, want version 3, dirty", s)
	}
	fixed := migrations(3, false)
	if _, err := migrate.Up(ctx, db, fixed); err == nil || !strings.Contains(err.Error(), "force") {
		t.Fatalf("Up on a dirty schema: %v, want a refusal that names force", err)
	}
	if err := migrate.Force(ctx, db, fixed, 2); err != nil {
		t.Fatal(err)
	}
	if _, err := migrate.Up(ctx, db, fixed); err != nil {
		t.Fatalf("Up after force 2: %v", err)
	}
	if s, got := current(t, db, fixed), tables(t, db); s.Version != 3 || s.Dirty || got != "a,b,c" {
		t.Errorf("after force 2 and up: %v, tables %q; want version 3, a,b,c", s, got)
	}
	if err := migrate.Force(ctx, db, fixed, 0); err != nil {
		t.Fatal(err)
	}
	if s := current(t, db, fixed); s.Version != 0 || s.Dirty {
		t.Errorf("after force 0: %v, want none applied", s)
	}
	if err := migrate.Force(ctx, db, fixed, -1); err == nil {
		t.Error("force -1 was accepted")
	}
}

// A later release's migration that failed half-way, then a rollback of the code: the release
// before refuses the dirty schema rather than serve on it.
func TestUpRefusesADirtySchemaNewerThanTheCode(t *testing.T) {
	t.Parallel()
	db, _ := openDB(t)
	ctx := context.Background()
	if _, err := migrate.Up(ctx, db, migrations(3, true)); err == nil {
		t.Fatal("a failing migration was applied")
	}
	if _, err := migrate.Up(ctx, db, migrations(2, false)); err == nil || !strings.Contains(err.Error(), "dirty") {
		t.Errorf("the release before, on a dirty later schema: %v, want a refusal", err)
	}
}

// The subcommand's arguments: what it runs, and a usage error before it touches the database.
func TestCommand(t *testing.T) {
	t.Parallel()
	_, url := openDB(t)
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	fsys := migrations(3, false)
	cfg := database.Config{URL: url}
	for _, args := range [][]string{{"down"}, {"down", "x"}, {"force"}, {"sideways"}, {"up", "2"}, {"version", "1"}} {
		// An unreachable database: only a usage error can come back before connecting.
		err := migrate.Command(ctx, log, database.Config{URL: "postgres://nobody@127.0.0.1:1/x?connect_timeout=1"}, fsys, args)
		if err == nil || !strings.Contains(err.Error(), "usage") {
			t.Errorf("migrate %v: %v, want the usage", args, err)
		}
	}
	db, err := sql.Open("postgres", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, step := range []struct {
		args    []string
		version uint
	}{{nil, 3}, {[]string{"down", "1"}, 2}, {[]string{"version"}, 2}, {[]string{"force", "1"}, 1}, {[]string{"up"}, 3}} {
		if err := migrate.Command(ctx, log, cfg, fsys, step.args); err != nil {
			t.Fatalf("migrate %v: %v", step.args, err)
		}
		if s := current(t, db, fsys); s.Version != step.version {
			t.Errorf("migrate %v: %v, want version %d", step.args, s, step.version)
		}
		// Force records what the operator says the schema is: make it so (version 1 has no
		// table b), or the next up would fail to create it again.
		if len(step.args) == 2 && step.args[0] == "force" {
			if _, err := db.Exec(`DROP TABLE b`); err != nil {
				t.Fatal(err)
			}
		}
	}
}
