package httpapi_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/order-system/order-system/api/billingtest"
	"github.com/order-system/order-system/pkg/apitest"
	"github.com/order-system/order-system/pkg/auth"
	"github.com/order-system/order-system/pkg/dbtest"
	"github.com/order-system/order-system/pkg/httpx"
	"github.com/order-system/order-system/pkg/idempotency"
	"github.com/order-system/order-system/services/user/internal/billingclient"
	"github.com/order-system/order-system/services/user/internal/httpapi"
	"github.com/order-system/order-system/services/user/internal/postgres"
	"github.com/order-system/order-system/services/user/internal/user"
	"github.com/order-system/order-system/services/user/migrations"
)

type env struct {
	apitest.Client
	db      *sqlx.DB
	billing *billingtest.Billing
}

// newEnv starts the user service's HTTP API, built as main builds it, over a throwaway
// database. billingDown points the billing client at a server that is already closed.
func newEnv(t *testing.T, billingDown bool) *env {
	t.Helper()
	db := dbtest.New(t, migrations.FS)

	fb := billingtest.New()
	billingSrv := httptest.NewServer(fb)
	if billingDown {
		billingSrv.Close()
	} else {
		t.Cleanup(billingSrv.Close)
	}

	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	reg := prometheus.NewRegistry()
	svc := user.NewService(postgres.NewUsers(db, func() {}), billingclient.New(billingSrv.URL, time.Second, auth.Config{}), log)
	e := httpapi.New(svc, nil, idempotency.NewStore(db, time.Hour, time.Minute), map[string]httpx.Check{"database": db.PingContext}, log, reg)
	return &env{Client: apitest.Serve(t, e), db: db, billing: fb}
}

type response struct {
	apitest.Response
	Error httpx.ErrorResponse
}

// do sends a request whose body is any reader (the size tests send chunked ones) and decodes
// an error answer, which must be JSON.
func (e *env) do(t *testing.T, method, path string, body io.Reader, header map[string]string) response {
	t.Helper()
	req, err := http.NewRequest(method, e.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := apitest.Send(req)
	if err != nil {
		t.Fatal(err)
	}
	r := response{Response: resp}
	if resp.Status >= 400 {
		if err := json.Unmarshal(resp.Body, &r.Error); err != nil {
			t.Fatalf("%s %s: error body %q is not JSON: %v", method, path, resp.Body, err)
		}
	}
	return r
}

func (e *env) post(t *testing.T, body string, header map[string]string) response {
	t.Helper()
	return e.do(t, http.MethodPost, "/users", strings.NewReader(body), header)
}

type userBody struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Email     string    `json:"email"`
	CreatedAt time.Time `json:"createdAt"`
}

// decodeUser checks that body is exactly a user object (no member more or less) and returns it.
func decodeUser(t *testing.T, body []byte) userBody {
	t.Helper()
	var members map[string]json.RawMessage
	if err := json.Unmarshal(body, &members); err != nil {
		t.Fatalf("user body %q: %v", body, err)
	}
	if diff := cmp.Diff([]string{"createdAt", "email", "id", "name"}, slices.Sorted(maps.Keys(members))); diff != "" {
		t.Errorf("user body members (-want +got):\n%s", diff)
	}
	var u userBody
	if err := json.Unmarshal(body, &u); err != nil {
		t.Fatalf("user body %q: %v", body, err)
	}
	if _, err := uuid.Parse(u.ID); err != nil {
		t.Errorf("id %q is not a UUID", u.ID)
	}
	return u
}

func (e *env) count(t *testing.T, query string, args ...any) int {
	t.Helper()
	var n int
	if err := e.db.Get(&n, query, args...); err != nil {
		t.Fatal(err)
	}
	return n
}

type outboxRow struct {
	EventID    string `db:"event_id"`
	RoutingKey string `db:"routing_key"`
	Body       []byte `db:"body"`
	RequestID  string `db:"request_id"`
}

func (e *env) outbox(t *testing.T) []outboxRow {
	t.Helper()
	var rows []outboxRow
	if err := e.db.Select(&rows, `SELECT event_id, routing_key, body, request_id FROM outbox ORDER BY id`); err != nil {
		t.Fatal(err)
	}
	return rows
}

type cloudEvent struct {
	SpecVersion     string    `json:"specversion"`
	ID              string    `json:"id"`
	Source          string    `json:"source"`
	Type            string    `json:"type"`
	Time            time.Time `json:"time"`
	DataContentType string    `json:"datacontenttype"`
	Data            struct {
		UserID string `json:"userId"`
		Name   string `json:"name"`
		Email  string `json:"email"`
	} `json:"data"`
}

// checkUserCreatedEvent checks that the outbox holds exactly one event, user.created for u.
func (e *env) checkUserCreatedEvent(t *testing.T, u userBody, requestID string) {
	t.Helper()
	rows := e.outbox(t)
	if len(rows) != 1 {
		t.Fatalf("outbox holds %d events, want 1: %+v", len(rows), rows)
	}
	row := rows[0]
	var ev cloudEvent
	if err := json.Unmarshal(row.Body, &ev); err != nil {
		t.Fatalf("outbox body %q: %v", row.Body, err)
	}
	if ev.Time.IsZero() || time.Since(ev.Time) > time.Minute || ev.Time.Location() != time.UTC {
		t.Errorf("event time = %v, want a recent UTC time", ev.Time)
	}
	if _, err := uuid.Parse(ev.ID); err != nil {
		t.Errorf("event id %q is not a UUID", ev.ID)
	}
	want := cloudEvent{SpecVersion: "1.0", ID: row.EventID, Source: ev.Source, Type: "user.created", Time: ev.Time, DataContentType: "application/json"}
	want.Data.UserID, want.Data.Name, want.Data.Email = u.ID, u.Name, u.Email
	if diff := cmp.Diff(want, ev); diff != "" {
		t.Errorf("user.created event %s (-want +got):\n%s", row.Body, diff)
	}
	if ev.Source == "" {
		t.Error("event has no source")
	}
	if row.RoutingKey != "user.created" {
		t.Errorf("routing key = %q, want user.created", row.RoutingKey)
	}
	if requestID != "" && row.RequestID != requestID {
		t.Errorf("outbox request id = %q, want %q", row.RequestID, requestID)
	}
}

func TestCreateAndGetUser(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	before := time.Now().Add(-time.Second)

	created := e.post(t, `{"name":"Ann Lee","email":"ann@example.com"}`, map[string]string{"X-Request-ID": "req-create-1"})
	if created.Status != http.StatusCreated {
		t.Fatalf("POST /users = %d %s, want 201", created.Status, created.Body)
	}
	if ct := created.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	for _, h := range []string{"X-Idempotency-Cached", "Idempotent-Replayed"} {
		if v := created.Header.Get(h); v != "" {
			t.Errorf("fresh response carries %s: %q", h, v)
		}
	}
	u := decodeUser(t, created.Body)
	if diff := cmp.Diff(userBody{ID: u.ID, Name: "Ann Lee", Email: "ann@example.com", CreatedAt: u.CreatedAt}, u); diff != "" {
		t.Errorf("created user (-want +got):\n%s", diff)
	}
	if u.CreatedAt.Before(before) || u.CreatedAt.After(time.Now().Add(time.Second)) {
		t.Errorf("createdAt = %v, want about now", u.CreatedAt)
	}

	got := e.do(t, http.MethodGet, "/users/"+u.ID, nil, nil)
	if got.Status != http.StatusOK {
		t.Fatalf("GET /users/%s = %d %s, want 200", u.ID, got.Status, got.Body)
	}
	if diff := cmp.Diff(u, decodeUser(t, got.Body)); diff != "" {
		t.Errorf("GET body differs from POST body (-post +get):\n%s", diff)
	}

	want := []billingtest.Call{{Method: http.MethodPut, Path: "/internal/accounts/" + u.ID, RequestID: "req-create-1"}}
	if diff := cmp.Diff(want, e.billing.Calls()); diff != "" {
		t.Errorf("billing calls (-want +got):\n%s", diff)
	}
	e.checkUserCreatedEvent(t, u, "req-create-1")
	if n := e.count(t, `SELECT count(*) FROM users`); n != 1 {
		t.Errorf("users rows = %d, want 1", n)
	}
}

func TestCreateUserRejectsBadInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	tests := []struct {
		name   string
		body   string
		fields []string // names expected in the error's fields; nil when the body is not an object
	}{
		{"invalid JSON", `{"name":"Ann",`, nil},
		{"empty body", ``, nil},
		{"JSON array", `[{"name":"Ann","email":"ann@example.com"}]`, nil},
		{"second object after the first", `{"name":"Ann","email":"ann@example.com"}{}`, nil},
		{"empty object", `{}`, []string{"email", "name"}},
		{"missing name", `{"email":"ann@example.com"}`, []string{"name"}},
		{"blank name", `{"name":"  \t ","email":"ann@example.com"}`, []string{"name"}},
		{"missing email", `{"name":"Ann"}`, []string{"email"}},
		{"email without @", `{"name":"Ann","email":"a"}`, []string{"email"}},
		{"email without domain", `{"name":"Ann","email":"a@"}`, []string{"email"}},
		{"email with display name", `{"name":"Ann","email":"Name <a@b.c>"}`, []string{"email"}},
		{"email with spaces around", `{"name":"Ann","email":" ann@example.com "}`, []string{"email"}},
		{"name of 201 characters", `{"name":"` + strings.Repeat("n", 201) + `","email":"ann@example.com"}`, []string{"name"}},
		{"name of 201 Cyrillic characters", `{"name":"` + strings.Repeat("я", 201) + `","email":"ann@example.com"}`, []string{"name"}},
		{"name is a number", `{"name":5,"email":"ann@example.com"}`, []string{"name"}},
		{"email is a boolean", `{"name":"Ann","email":true}`, []string{"email"}},
		{"name is an object", `{"name":{"first":"Ann"},"email":"ann@example.com"}`, []string{"name"}},
		{"name given twice, the last one a number", `{"name":"Ann","email":"ann@example.com","name":5}`, []string{"name"}},
		{"email of 255 characters", `{"name":"Ann","email":"` + strings.Repeat("a", 243) + `@example.com"}`, []string{"email"}},
		// PostgreSQL text cannot hold NUL; the request must be refused, not fail inside.
		{"name with a NUL character", `{"name":"Ann\u0000Lee","email":"ann@example.com"}`, []string{"name"}},
	}
	t.Run("cases", func(t *testing.T) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				r := e.post(t, tt.body, nil)
				if r.Status != http.StatusBadRequest || r.Error.Code != "invalid_request" || r.Error.Message == "" {
					t.Fatalf("POST /users %s = %d %s, want 400 invalid_request", tt.body, r.Status, r.Body)
				}
				if diff := cmp.Diff(tt.fields, slices.Sorted(maps.Keys(r.Error.Fields))); diff != "" {
					t.Errorf("fields of %s (-want +got):\n%s", r.Body, diff)
				}
				for name, reason := range r.Error.Fields {
					if reason == "" {
						t.Errorf("field %s has no reason", name)
					}
				}
			})
		}
	})
	// Nothing of a rejected request may leave a trace.
	if n := e.count(t, `SELECT count(*) FROM users`); n != 0 {
		t.Errorf("users rows after rejected requests = %d, want 0", n)
	}
	if rows := e.outbox(t); len(rows) != 0 {
		t.Errorf("outbox after rejected requests holds %d events, want 0", len(rows))
	}
	if calls := e.billing.Calls(); len(calls) != 0 {
		t.Errorf("billing called %d times for rejected requests, want 0", len(calls))
	}
}

func TestCreateUserAcceptsEdgeInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	tests := []struct {
		name, body     string
		wantName, mail string
	}{
		{"unknown fields are ignored", `{"name":"Ann","email":"ann@example.com","age":42,"tags":["x"],"id":"00000000-0000-0000-0000-000000000001"}`, "Ann", "ann@example.com"},
		{"name of 200 characters", `{"name":"` + strings.Repeat("n", 200) + `","email":"n@example.com"}`, strings.Repeat("n", 200), "n@example.com"},
		{"name of 200 Cyrillic characters", `{"name":"` + strings.Repeat("я", 200) + `","email":"ya@example.com"}`, strings.Repeat("я", 200), "ya@example.com"},
		{"surrounding whitespace of the name is dropped", `{"name":"  Bob  ","email":"bob@example.com"}`, "Bob", "bob@example.com"},
		{"email of 254 characters", `{"name":"Eve","email":"` + strings.Repeat("e", 242) + `@example.com"}`, "Eve", strings.Repeat("e", 242) + "@example.com"},
		{"subdomain and plus address", `{"name":"Cy","email":"cy+shop@mail.example.co.uk"}`, "Cy", "cy+shop@mail.example.co.uk"},
		{"whitespace around the object", "\n  {\"name\":\"Di\",\"email\":\"di@example.com\"}  \n", "Di", "di@example.com"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := e.post(t, tt.body, nil)
			if r.Status != http.StatusCreated {
				t.Fatalf("POST /users = %d %s, want 201", r.Status, r.Body)
			}
			u := decodeUser(t, r.Body)
			if u.Name != tt.wantName || u.Email != tt.mail {
				t.Errorf("created %q <%s>, want %q <%s>", u.Name, u.Email, tt.wantName, tt.mail)
			}
			if u.ID == "00000000-0000-0000-0000-000000000001" {
				t.Error("the client chose the user's id")
			}
			got := e.do(t, http.MethodGet, "/users/"+u.ID, nil, nil)
			if got.Status != http.StatusOK || !slices.Equal(got.Body, r.Body) {
				t.Errorf("GET after create = %d %s, want 200 %s", got.Status, got.Body, r.Body)
			}
		})
	}
}

func TestSameEmailMakesTwoUsers(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	body := `{"name":"Repeat User","email":"repeat@example.com"}`
	first, second := e.post(t, body, nil), e.post(t, body, nil)
	if first.Status != http.StatusCreated || second.Status != http.StatusCreated {
		t.Fatalf("two registrations with one e-mail = %d %s and %d %s, want 201 twice", first.Status, first.Body, second.Status, second.Body)
	}
	a, b := decodeUser(t, first.Body), decodeUser(t, second.Body)
	if a.ID == b.ID {
		t.Fatalf("both registrations returned user %s", a.ID)
	}
	if n := e.count(t, `SELECT count(*) FROM users WHERE email = 'repeat@example.com'`); n != 2 {
		t.Errorf("users with the e-mail = %d, want 2", n)
	}
	if n := e.count(t, `SELECT count(*) FROM outbox WHERE routing_key = 'user.created'`); n != 2 {
		t.Errorf("user.created events = %d, want 2", n)
	}
}

func TestRoutingErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	tests := []struct {
		name, method, path string
		status             int
		code               string
	}{
		{"GET with a malformed id", http.MethodGet, "/users/not-a-uuid", 400, "invalid_request"},
		{"GET with a truncated id", http.MethodGet, "/users/" + uuid.NewString()[:35], 400, "invalid_request"},
		{"GET with an id in URN form", http.MethodGet, "/users/urn:uuid:" + uuid.NewString(), 400, "invalid_request"},
		{"GET of an unknown user", http.MethodGet, "/users/" + uuid.NewString(), 404, "not_found"},
		{"DELETE /users", http.MethodDelete, "/users", 405, "method_not_allowed"},
		{"PUT /users", http.MethodPut, "/users", 405, "method_not_allowed"},
		{"DELETE /users/{id}", http.MethodDelete, "/users/" + uuid.NewString(), 405, "method_not_allowed"},
		{"unknown path", http.MethodGet, "/accounts", 404, "not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := e.do(t, tt.method, tt.path, nil, nil)
			if r.Status != tt.status || string(r.Error.Code) != tt.code || r.Error.Message == "" {
				t.Errorf("%s %s = %d %s, want %d %s", tt.method, tt.path, r.Status, r.Body, tt.status, tt.code)
			}
		})
	}
}

func TestOversizedBody(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	big := `{"name":"Ann","email":"ann@example.com","padding":"` + strings.Repeat("x", 65*1024) + `"}`
	tests := []struct {
		name   string
		body   func() io.Reader
		header map[string]string
	}{
		// strings.Reader: the client sends a Content-Length.
		{"with Content-Length", func() io.Reader { return strings.NewReader(big) }, nil},
		// A reader of unknown length: the client sends the body chunked.
		{"chunked", func() io.Reader { return io.MultiReader(strings.NewReader(big)) }, nil},
		{"with Idempotency-Key", func() io.Reader { return io.MultiReader(strings.NewReader(big)) }, map[string]string{"Idempotency-Key": "big-1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := e.do(t, http.MethodPost, "/users", tt.body(), tt.header)
			if r.Status != http.StatusRequestEntityTooLarge || r.Error.Code != "payload_too_large" {
				t.Errorf("POST of %d bytes = %d %s, want 413 payload_too_large", len(big), r.Status, r.Body)
			}
		})
	}
	t.Cleanup(func() {
		if n := e.count(t, `SELECT count(*) FROM users`); n != 0 {
			t.Errorf("users rows after oversized requests = %d, want 0", n)
		}
	})
}

func TestRegistrationSucceedsWithBillingDown(t *testing.T) {
	t.Parallel()
	e := newEnv(t, true)
	r := e.post(t, `{"name":"Ann","email":"ann@example.com"}`, map[string]string{"X-Request-ID": "req-billing-down"})
	if r.Status != http.StatusCreated {
		t.Fatalf("POST /users with billing down = %d %s, want 201 (the event opens the account later)", r.Status, r.Body)
	}
	u := decodeUser(t, r.Body)
	e.checkUserCreatedEvent(t, u, "req-billing-down")
	if got := e.do(t, http.MethodGet, "/users/"+u.ID, nil, nil); got.Status != http.StatusOK {
		t.Errorf("GET of the user = %d %s, want 200", got.Status, got.Body)
	}
}

func TestIdempotencyKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	body := `{"name":"Ann","email":"ann@example.com"}`
	key := map[string]string{"Idempotency-Key": "user-key-1"}

	first := e.post(t, body, key)
	if first.Status != http.StatusCreated {
		t.Fatalf("first POST = %d %s, want 201", first.Status, first.Body)
	}
	if v := first.Header.Get("X-Idempotency-Cached"); v != "" {
		t.Errorf("first response has X-Idempotency-Cached: %q", v)
	}
	u := decodeUser(t, first.Body)

	// The same payload with other whitespace and member order is the same request.
	for i, again := range []string{body, "{ \"email\": \"ann@example.com\",\n \"name\": \"Ann\" }"} {
		r := e.post(t, again, key)
		if r.Status != first.Status || string(r.Body) != string(first.Body) {
			t.Errorf("repeat %d = %d %s, want %d %s byte for byte", i, r.Status, r.Body, first.Status, first.Body)
		}
		if r.Header.Get("X-Idempotency-Cached") != "true" || r.Header.Get("Idempotent-Replayed") != "true" {
			t.Errorf("repeat %d headers: X-Idempotency-Cached=%q Idempotent-Replayed=%q, want true and true",
				i, r.Header.Get("X-Idempotency-Cached"), r.Header.Get("Idempotent-Replayed"))
		}
		if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Errorf("repeat %d Content-Type = %q", i, ct)
		}
	}

	mismatch := e.post(t, `{"name":"Bob","email":"ann@example.com"}`, key)
	if mismatch.Status != http.StatusUnprocessableEntity || mismatch.Error.Code != "idempotency_key_mismatch" {
		t.Errorf("same key, other payload = %d %s, want 422 idempotency_key_mismatch", mismatch.Status, mismatch.Body)
	}
	tooLong := e.post(t, body, map[string]string{"Idempotency-Key": strings.Repeat("k", 256)})
	if tooLong.Status != http.StatusBadRequest || tooLong.Error.Code != "invalid_request" {
		t.Errorf("key of 256 characters = %d %s, want 400 invalid_request", tooLong.Status, tooLong.Body)
	}

	if n := e.count(t, `SELECT count(*) FROM users`); n != 1 {
		t.Errorf("users rows = %d, want 1", n)
	}
	e.checkUserCreatedEvent(t, u, "")
	if calls := e.billing.Calls(); len(calls) != 1 {
		t.Errorf("billing called %d times, want 1: %+v", len(calls), calls)
	}

	// Another key is another request, even with the same payload.
	other := e.post(t, body, map[string]string{"Idempotency-Key": "user-key-2"})
	if other.Status != http.StatusCreated || other.Header.Get("X-Idempotency-Cached") != "" {
		t.Fatalf("other key = %d %s cached=%q, want a fresh 201", other.Status, other.Body, other.Header.Get("X-Idempotency-Cached"))
	}
	if decodeUser(t, other.Body).ID == u.ID {
		t.Errorf("other key returned the first key's user %s", u.ID)
	}
}

// A process that dies after committing the user but before storing the response leaves the
// key unfinished; once its lease ends, a retry with the key must resume that same user rather
// than register a second one.
func TestIdempotencyKeyRetryAfterCrash(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	body := `{"name":"Ann","email":"ann@example.com"}`
	key := map[string]string{"Idempotency-Key": "crash-1"}
	first := e.post(t, body, key)
	if first.Status != http.StatusCreated {
		t.Fatalf("first POST = %d %s, want 201", first.Status, first.Body)
	}
	u := decodeUser(t, first.Body)
	// Forget the stored response and end the lease, as if the process had died in between.
	if _, err := e.db.Exec(`UPDATE idempotency_keys SET status_code = NULL, content_type = NULL, body = NULL,
		locked_until = now() - interval '1 second' WHERE key = 'crash-1'`); err != nil {
		t.Fatal(err)
	}

	retry := e.post(t, body, key)
	if retry.Status != http.StatusCreated {
		t.Fatalf("retry = %d %s, want 201", retry.Status, retry.Body)
	}
	if diff := cmp.Diff(u, decodeUser(t, retry.Body)); diff != "" {
		t.Errorf("retry after the crash returned another user (-first +retry):\n%s", diff)
	}
	if n := e.count(t, `SELECT count(*) FROM users`); n != 1 {
		t.Errorf("users rows = %d, want 1", n)
	}
	e.checkUserCreatedEvent(t, u, "")
	if again := e.post(t, body, key); again.Header.Get("X-Idempotency-Cached") != "true" || string(again.Body) != string(retry.Body) {
		t.Errorf("after the retry = %d %s cached=%q, want the retry's response replayed", again.Status, again.Body, again.Header.Get("X-Idempotency-Cached"))
	}
}

// TestKeyedRegistrationCommitsWithItsAnswer: the key, the user, its event and the stored
// answer are one transaction; a repeat replays the answer, another payload writes nothing.
func TestKeyedRegistrationCommitsWithItsAnswer(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	key := map[string]string{idempotency.HeaderKey: "signup"}
	first := e.post(t, `{"name":"Ann","email":"ann@example.com"}`, key)
	if first.Status != http.StatusCreated {
		t.Fatalf("registration = %d %s, want 201", first.Status, first.Body)
	}
	u := decodeUser(t, first.Body)
	var together int
	if err := e.db.Get(&together, `SELECT count(*) FROM users JOIN outbox ON outbox.xmin = users.xmin
		JOIN idempotency_keys k ON k.xmin = users.xmin
		WHERE users.id = $1 AND k.key = 'signup' AND k.status_code = 201 AND k.body = $2`, u.ID, first.Body); err != nil {
		t.Fatal(err)
	}
	if together != 1 {
		t.Fatalf("user, event and stored answer %s in one transaction: %d rows, want 1", first.Body, together)
	}
	again := e.post(t, `{"email":"ann@example.com", "name":"Ann"}`, key)
	if again.Status != http.StatusCreated || string(again.Body) != string(first.Body) || again.Header.Get(idempotency.HeaderCached) != "true" {
		t.Fatalf("repeat = %d %s cached=%q, want %s replayed", again.Status, again.Body, again.Header.Get(idempotency.HeaderCached), first.Body)
	}
	if other := e.post(t, `{"name":"Bob","email":"bob@example.com"}`, key); other.Status != http.StatusUnprocessableEntity {
		t.Fatalf("other payload = %d %s, want 422", other.Status, other.Body)
	}
	var users, events int
	e.db.Get(&users, `SELECT count(*) FROM users`)
	e.db.Get(&events, `SELECT count(*) FROM outbox`)
	if users != 1 || events != 1 {
		t.Fatalf("%d users, %d events; want one of each", users, events)
	}
}
