package postgres_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/order-system/order-system/pkg/apperr"
	"github.com/order-system/order-system/pkg/dbtest"
	"github.com/order-system/order-system/pkg/idempotency"
	"github.com/order-system/order-system/services/user/internal/postgres"
	"github.com/order-system/order-system/services/user/internal/user"
	"github.com/order-system/order-system/services/user/migrations"
)

// noKey is the Idempotency-Key of a request without the header.
var noKey idempotency.Key[user.User]

func newUsers(t *testing.T) (*postgres.Users, *sqlx.DB) {
	t.Helper()
	db := dbtest.New(t, migrations.FS)
	return postgres.NewUsers(db, func() {}), db
}

func events(t *testing.T, db *sqlx.DB, userID uuid.UUID) int {
	t.Helper()
	var n int
	if err := db.Get(&n, `SELECT count(*) FROM outbox WHERE routing_key = 'user.created'
		AND convert_from(body, 'UTF8')::jsonb->'data'->>'userId' = $1`, userID.String()); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestCreateStoresTheUserAndGetReadsItBack(t *testing.T) {
	t.Parallel()
	users, db := newUsers(t)
	ctx := context.Background()
	in := user.User{ID: uuid.New(), Name: "Ann", Email: "ann@example.com"}

	created, err := users.Create(ctx, in, noKey)
	if err != nil {
		t.Fatal(err)
	}
	if time.Since(created.CreatedAt) > time.Minute || created.CreatedAt.After(time.Now().Add(time.Second)) {
		t.Errorf("CreatedAt = %v, want now", created.CreatedAt)
	}
	in.CreatedAt = created.CreatedAt
	if diff := cmp.Diff(in, created); diff != "" {
		t.Errorf("Create (-want +got):\n%s", diff)
	}
	got, err := users.Get(ctx, in.ID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(created, got); diff != "" {
		t.Errorf("Get after Create (-create +get):\n%s", diff)
	}
	if n := events(t, db, in.ID); n != 1 {
		t.Errorf("user.created events = %d, want 1", n)
	}
}

// A retry of a registration that committed (same id, derived from the Idempotency-Key)
// returns the stored user and announces it only once.
func TestCreateSameIDTwice(t *testing.T) {
	t.Parallel()
	users, db := newUsers(t)
	ctx := context.Background()
	id := uuid.New()

	first, err := users.Create(ctx, user.User{ID: id, Name: "Ann", Email: "ann@example.com"}, noKey)
	if err != nil {
		t.Fatal(err)
	}
	again, err := users.Create(ctx, user.User{ID: id, Name: "Ann", Email: "ann@example.com"}, noKey)
	if err != nil {
		t.Fatalf("second Create with the same id: %v", err)
	}
	if diff := cmp.Diff(first, again); diff != "" {
		t.Errorf("second Create (-first +second):\n%s", diff)
	}
	if n := events(t, db, id); n != 1 {
		t.Errorf("user.created events after two Creates = %d, want 1", n)
	}
	var rows int
	if err := db.Get(&rows, `SELECT count(*) FROM users`); err != nil {
		t.Fatal(err)
	}
	if rows != 1 {
		t.Errorf("users rows = %d, want 1", rows)
	}
}

func TestGetOfAnUnknownUserIsNotFound(t *testing.T) {
	t.Parallel()
	users, _ := newUsers(t)
	_, err := users.Get(context.Background(), uuid.New())
	if !apperr.Is(err, apperr.NotFound) {
		t.Errorf("Get of an unknown id = %v, want not_found", err)
	}
}

// Registrations of one identity race (its user id is the identity's): every one gets the
// stored user, which is created and announced once.
func TestCreateSameIDConcurrently(t *testing.T) {
	t.Parallel()
	users, db := newUsers(t)
	ctx := context.Background()
	id := uuid.New()
	const n = 8
	got := make([]user.User, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			got[i], errs[i] = users.Create(ctx, user.User{ID: id, Name: fmt.Sprint("Ann ", i), Email: "ann@example.com"}, noKey)
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("Create %d: %v", i, errs[i])
		}
		if diff := cmp.Diff(got[0], got[i]); diff != "" {
			t.Errorf("Create %d returned another user (-first +this):\n%s", i, diff)
		}
	}
	if n := events(t, db, id); n != 1 {
		t.Errorf("user.created events = %d, want 1", n)
	}
}
