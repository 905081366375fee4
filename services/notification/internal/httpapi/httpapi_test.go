package httpapi_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/order-system/order-system/pkg/apitest"
	"github.com/order-system/order-system/pkg/dbtest"
	"github.com/order-system/order-system/pkg/httpx"
	"github.com/order-system/order-system/pkg/money"
	"github.com/order-system/order-system/services/notification/internal/httpapi"
	"github.com/order-system/order-system/services/notification/internal/notification"
	"github.com/order-system/order-system/services/notification/internal/postgres"
	"github.com/order-system/order-system/services/notification/migrations"
)

type env struct {
	apitest.Client
	db    *sqlx.DB
	store *postgres.Store
}

// newEnv starts the notification service's HTTP API, built as main builds it, over a
// throwaway database.
func newEnv(t *testing.T) *env {
	t.Helper()
	db := dbtest.New(t, migrations.FS)
	store := postgres.NewStore(db)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	e := httpapi.New(store, nil, map[string]httpx.Check{"database": db.PingContext}, log, prometheus.NewRegistry())
	return &env{Client: apitest.Serve(t, e), db: db, store: store}
}

// save stores a notification about a finished order and dates it at createdAt.
func (e *env) save(t *testing.T, userID uuid.UUID, completed bool, createdAt time.Time) notification.Notification {
	t.Helper()
	n := notification.New(notification.FinishedOrder{EventID: uuid.New(), OrderID: uuid.New(), UserID: userID,
		Email: "buyer@example.com", Price: money.Amount(500_00), Completed: completed, Reason: "insufficient_funds"}, "ru")
	saved, err := e.store.Save(context.Background(), n)
	if err != nil || !saved {
		t.Fatalf("save: %v, saved=%v", err, saved)
	}
	if _, err := e.db.Exec(`UPDATE notifications SET created_at = $2 WHERE id = $1`, n.ID, createdAt); err != nil {
		t.Fatal(err)
	}
	n.CreatedAt = createdAt
	return n
}

func (e *env) get(t *testing.T, path string) (int, []byte) {
	t.Helper()
	r := e.Call(t, http.MethodGet, path, "")
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("GET %s: Content-Type %q, want application/json", path, ct)
	}
	return r.Status, r.Body
}

type notificationBody struct {
	ID        string    `json:"id"`
	UserID    string    `json:"userId"`
	OrderID   string    `json:"orderId"`
	Email     string    `json:"email"`
	Type      string    `json:"type"`
	Message   string    `json:"message"`
	CreatedAt time.Time `json:"createdAt"`
}

func toBody(n notification.Notification) notificationBody {
	return notificationBody{ID: n.ID.String(), UserID: n.UserID.String(), OrderID: n.OrderID.String(), Email: n.Email,
		Type: string(n.Type), Message: n.Message, CreatedAt: n.CreatedAt}
}

func TestListNewestFirst(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	user, other := uuid.New(), uuid.New()
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	// Saved in an order that differs from their dates, so that neither insertion order nor
	// ids can pass for "newest first".
	middle := e.save(t, user, true, base.Add(time.Minute))
	newest := e.save(t, user, false, base.Add(2*time.Minute))
	oldest := e.save(t, user, true, base)
	e.save(t, other, true, base.Add(time.Hour))

	status, body := e.get(t, "/notifications/"+user.String())
	if status != http.StatusOK {
		t.Fatalf("GET = %d %s, want 200", status, body)
	}
	var members []map[string]json.RawMessage
	if err := json.Unmarshal(body, &members); err != nil {
		t.Fatalf("body %s: %v", body, err)
	}
	for _, m := range members {
		if diff := cmp.Diff([]string{"createdAt", "email", "id", "message", "orderId", "type", "userId"}, slices.Sorted(maps.Keys(m))); diff != "" {
			t.Fatalf("members of a notification (-want +got):\n%s", diff)
		}
	}
	var got []notificationBody
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	want := []notificationBody{toBody(newest), toBody(middle), toBody(oldest)}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("notifications of the user (-want +got):\n%s", diff)
	}
	if got[0].Type != "failure" || !strings.HasPrefix(got[0].Message, "Не удалось") ||
		got[1].Type != "success" || !strings.Contains(got[1].Message, "успешно") {
		t.Errorf("types and messages = %+v", got)
	}
}

func TestListForAUserWithoutNotificationsIsEmpty(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.save(t, uuid.New(), true, time.Now())
	status, body := e.get(t, "/notifications/"+uuid.NewString())
	if status != http.StatusOK || strings.TrimSpace(string(body)) != "[]" {
		t.Errorf("GET for a user without notifications = %d %s, want 200 []", status, body)
	}
}

func TestListAnswersBadRequestsWithTheErrorBody(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tests := []struct {
		name, method, path string
		status             int
		code               string
	}{
		{"malformed user id", http.MethodGet, "/notifications/not-a-uuid", 400, "invalid_request"},
		{"truncated user id", http.MethodGet, "/notifications/" + uuid.NewString()[:35], 400, "invalid_request"},
		{"no user id", http.MethodGet, "/notifications/", 404, "not_found"},
		{"POST", http.MethodPost, "/notifications/" + uuid.NewString(), 405, "method_not_allowed"},
		{"unknown path", http.MethodGet, "/notification/" + uuid.NewString(), 404, "not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp := e.Call(t, tt.method, tt.path, "")
			var body httpx.ErrorResponse
			resp.JSON(t, &body)
			if resp.Status != tt.status || string(body.Code) != tt.code || body.Message == "" {
				t.Errorf("%s %s = %d %s, want %d %s", tt.method, tt.path, resp.Status, resp.Body, tt.status, tt.code)
			}
		})
	}
}

func TestLivenessAndReadinessAnswer200(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, path := range []string{"/livez", "/readyz"} {
		if status, body := e.get(t, path); status != http.StatusOK {
			t.Errorf("GET %s = %d %s, want 200", path, status, body)
		}
	}
	e.db.Close()
	if status, body := e.get(t, "/readyz"); status != http.StatusServiceUnavailable {
		t.Errorf("GET /readyz with the database closed = %d %s, want 503", status, body)
	}
}
