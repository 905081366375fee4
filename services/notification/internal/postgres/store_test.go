package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/order-system/order-system/pkg/dbtest"
	"github.com/order-system/order-system/services/notification/internal/notification"
	"github.com/order-system/order-system/services/notification/internal/postgres"
	"github.com/order-system/order-system/services/notification/migrations"
)

func newStore(t *testing.T) *postgres.Store {
	t.Helper()
	db := dbtest.New(t, migrations.FS)
	return postgres.NewStore(db)
}

func newNotification(userID uuid.UUID) notification.Notification {
	return notification.New(notification.FinishedOrder{EventID: uuid.New(), OrderID: uuid.New(), UserID: userID,
		Email: "buyer@example.com", Price: 100, Completed: true}, "ru")
}

func TestSaveOncePerEvent(t *testing.T) {
	t.Parallel()
	store := newStore(t)
	ctx := context.Background()
	n := newNotification(uuid.New())

	saved, err := store.Save(ctx, n)
	if err != nil || !saved {
		t.Fatalf("first Save = %v, %v; want true, nil", saved, err)
	}
	// A redelivery builds a new notification (new id) from the same event.
	again := n
	again.ID = uuid.New()
	again.Message = "other text"
	saved, err = store.Save(ctx, again)
	if err != nil || saved {
		t.Fatalf("Save of the same event again = %v, %v; want false, nil", saved, err)
	}

	got, err := store.ListByUser(ctx, n.UserID, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Fatalf("ListByUser = %d notifications, want 1", len(got))
	}
	if time.Since(got[0].CreatedAt) > time.Minute {
		t.Errorf("CreatedAt = %v, want now", got[0].CreatedAt)
	}
	n.CreatedAt = got[0].CreatedAt
	if diff := cmp.Diff(n, got[0]); diff != "" {
		t.Errorf("stored notification (-saved +listed):\n%s", diff)
	}
}

func TestSaveAllStoresEachEventOnce(t *testing.T) {
	t.Parallel()
	store := newStore(t)
	ctx := context.Background()
	user := uuid.New()
	old := newNotification(user)
	if _, err := store.Save(ctx, old); err != nil {
		t.Fatal(err)
	}
	a, b := newNotification(user), newNotification(user)
	redelivered := a
	redelivered.ID = uuid.New()
	// An event stored before, two new ones, and one of them twice in the same batch.
	saved, err := store.SaveAll(ctx, []notification.Notification{old, a, b, redelivered})
	if err != nil {
		t.Fatal(err)
	}
	want := map[uuid.UUID]bool{a.EventID: true, b.EventID: true}
	if diff := cmp.Diff(want, saved); diff != "" {
		t.Errorf("saved event ids (-want +got):\n%s", diff)
	}
	if got, _ := store.ListByUser(ctx, user, 10); len(got) != 3 {
		t.Errorf("user has %d notifications, want 3 (one per event)", len(got))
	}
}

func TestListByUserLimitAndOrder(t *testing.T) {
	t.Parallel()
	store := newStore(t)
	ctx := context.Background()
	user := uuid.New()
	var ids []uuid.UUID
	for range 3 {
		n := newNotification(user)
		if _, err := store.Save(ctx, n); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, n.ID)
		time.Sleep(2 * time.Millisecond) // distinct created_at values
	}
	if _, err := store.Save(ctx, newNotification(uuid.New())); err != nil {
		t.Fatal(err)
	}

	got, err := store.ListByUser(ctx, user, 2)
	if err != nil {
		t.Fatal(err)
	}
	var gotIDs []uuid.UUID
	for _, n := range got {
		gotIDs = append(gotIDs, n.ID)
	}
	if diff := cmp.Diff([]uuid.UUID{ids[2], ids[1]}, gotIDs); diff != "" {
		t.Errorf("ListByUser with limit 2 (-want +got):\n%s", diff)
	}
	none, err := store.ListByUser(ctx, uuid.New(), 10)
	if err != nil || len(none) != 0 {
		t.Errorf("ListByUser of a user without notifications = %v, %v; want none", none, err)
	}
}
