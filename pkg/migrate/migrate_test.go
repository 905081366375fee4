package migrate_test

import (
	"context"
	"database/sql"
	"testing"
	"testing/fstest"

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
		if err := migrate.Up(ctx, db, fsys); err != nil {
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
