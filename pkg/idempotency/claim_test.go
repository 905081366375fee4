package idempotency_test

import (
	"database/sql/driver"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/labstack/echo/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/order-system/order-system/pkg/apperr"
	"github.com/order-system/order-system/pkg/database"
	"github.com/order-system/order-system/pkg/dbtest"
	"github.com/order-system/order-system/pkg/httpx"
	"github.com/order-system/order-system/pkg/idempotency"
)

// txServer is a route whose handler takes the key the way a service's repository does: a transaction takes the key and creates a thing in its first
// statement and writes an audit row in its second; a second statement finishes the thing
// and stores the answer. A negative n is refused before the key is taken; while fail is set
// the request fails with a 503 between its phases; while hold is set it reports on took
// that its first phase committed and waits between its phases until gate is closed; while
// holdInTx is set it does so inside its first phase, the key taken but not committed.
type txServer struct {
	db       *sqlx.DB
	srv      *httptest.Server
	fail     atomic.Bool
	hold     atomic.Bool
	holdInTx atomic.Bool
	// lostReply makes the handler take the key in a statement of its own, outside a
	// transaction, which commits but whose answer never reaches the handler.
	lostReply atomic.Bool
	took      chan struct{}
	gate      chan struct{}
}

const thingsSchema = `CREATE TABLE things (id uuid PRIMARY KEY, n int NOT NULL, done bool NOT NULL DEFAULT false);
CREATE TABLE audit (thing uuid NOT NULL);`

func newTxServer(t *testing.T, lease time.Duration) *txServer {
	t.Helper()
	db := dbtest.New(t, fstest.MapFS{
		"000001_idempotency.up.sql": {Data: []byte(idempotency.Schema)},
		"000002_things.up.sql":      {Data: []byte(thingsSchema)},
	})
	s := &txServer{db: db, took: make(chan struct{}, 1), gate: make(chan struct{})}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	e := httpx.New(log, prometheus.NewRegistry())
	e.POST("/things", s.handle, idempotency.NewStore(db, time.Hour, lease).Middleware(log))
	s.srv = httptest.NewServer(e)
	t.Cleanup(s.srv.Close)
	return s
}

var (
	createThing = database.Named(`WITH ` + idempotency.TakeCTE + ` INSERT INTO things (id, n) SELECT @id, @n FROM key_taken
		ON CONFLICT (id) DO UPDATE SET id = excluded.id RETURNING id`)
	finishThing = database.Named(`WITH done AS (UPDATE things SET done = true WHERE id = @id AND NOT done RETURNING id), ` +
		idempotency.StoreCTE("done") + ` SELECT count(*) FROM key_stored`)
)

func (s *txServer) handle(c *echo.Context) error {
	var req struct{ N int }
	if err := httpx.Decode(c, &req); err != nil {
		return err
	}
	if req.N < 0 {
		return apperr.Validation(map[string]string{"n": "must not be negative"})
	}
	ctx := c.Request().Context()
	render := func(id uuid.UUID) (httpx.Reply, error) {
		return httpx.JSONReply(http.StatusCreated, map[string]any{"id": id, "n": req.N})
	}
	key := idempotency.KeyOf(c, render)
	if !key.Present() {
		return apperr.New(apperr.Invalid, "this route wants a key")
	}
	var id uuid.UUID
	create := func(q sqlx.QueryerContext) func(uuid.UUID, database.Params) error {
		return func(derived uuid.UUID, k database.Params) error {
			args, err := createThing.Args(k.With(database.Params{"id": derived, "n": req.N}))
			if err != nil {
				return err
			}
			return sqlx.GetContext(ctx, q, &id, createThing.SQL(), args...)
		}
	}
	if s.lostReply.Load() {
		err := key.Take(ctx, s.db, func(derived uuid.UUID, k database.Params) error {
			if err := create(s.db)(derived, k); err != nil {
				return err
			}
			return driver.ErrBadConn // committed, but the connection broke before the answer came
		})
		return apperr.Wrap(err, apperr.Unavailable, "database unavailable")
	}
	err := database.InTx(ctx, s.db, func(tx *sqlx.Tx) error {
		if err := key.Take(ctx, tx, create(tx)); err != nil {
			return err
		}
		if s.holdInTx.Load() {
			s.took <- struct{}{}
			<-s.gate
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO audit (thing) VALUES ($1)`, id)
		return err
	})
	if err != nil {
		return err
	}
	if s.hold.Load() {
		s.took <- struct{}{}
		<-s.gate
	}
	if s.fail.Load() {
		return echo.ErrServiceUnavailable
	}
	answer, keyed, err := key.Answer(id)
	if err != nil || !keyed {
		return apperr.New(apperr.Internal, "no answer for a taken key: %v", err)
	}
	args, err := finishThing.Args(answer.With(database.Params{"id": id}))
	if err != nil {
		return err
	}
	var stored int
	if err := s.db.GetContext(ctx, &stored, finishThing.SQL(), args...); err != nil {
		return err
	}
	if stored == 1 {
		key.MarkStored()
	}
	reply, err := render(id)
	if err != nil {
		return err
	}
	return httpx.Send(c, reply)
}

func (s *txServer) send(key, body string) result {
	return (&server{srv: s.srv}).send("/things", key, body)
}

func (s *txServer) count(t *testing.T, query string, args ...any) int {
	t.Helper()
	var n int
	if err := s.db.Get(&n, query, args...); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestClaimAnswersRefusalsAsBefore: a key whose claim the handler's transaction
// cannot take rolls that transaction back and is answered as the middleware answers it
// itself: the first answer byte for byte with the replay headers, 422 for another payload.
func TestClaimAnswersRefusalsAsBefore(t *testing.T) {
	t.Parallel()
	s := newTxServer(t, time.Minute)
	first := s.send("k", `{"n":1}`)
	if first.err != nil || first.status != http.StatusCreated {
		t.Fatalf("first = %d %s %v, want 201", first.status, first.body, first.err)
	}
	again := s.send("k", `{ "n": 1 }`)
	if again.status != http.StatusCreated || again.body != first.body || again.cached != "true" {
		t.Fatalf("repeat = %d %s cached=%q, want the first answer replayed", again.status, again.body, again.cached)
	}
	if other := s.send("k", `{"n":2}`); other.status != http.StatusUnprocessableEntity || !strings.Contains(other.body, "idempotency_key_mismatch") {
		t.Fatalf("other payload = %d %s, want 422 idempotency_key_mismatch", other.status, other.body)
	}
	if n := s.count(t, `SELECT count(*) FROM things`); n != 1 {
		t.Fatalf("%d things, want 1", n)
	}
	if n := s.count(t, `SELECT count(*) FROM audit`); n != 1 {
		t.Fatalf("%d audit rows, want 1: a refused transaction writes nothing", n)
	}
}

// TestClaimPhasesCommitWithTheKey holds a request between its two phases: the key
// was taken by the transaction that created the thing (same xmin), a second request gets
// 409; after the finish the answer and the finished thing were written together.
func TestClaimPhasesCommitWithTheKey(t *testing.T) {
	t.Parallel()
	s := newTxServer(t, time.Minute)
	s.hold.Store(true)
	first := make(chan result, 1)
	go func() { first <- s.send("k", `{"n":1}`) }()
	<-s.took
	sameTx := `SELECT count(*) FROM things JOIN idempotency_keys ON idempotency_keys.xmin = things.xmin WHERE key = 'k'`
	if n := s.count(t, sameTx); n != 1 {
		t.Errorf("key and thing written by the same transaction: %d rows, want 1", n)
	}
	if r := s.send("k", `{"n":1}`); r.status != http.StatusConflict {
		t.Errorf("second request while the first runs = %d %s, want 409", r.status, r.body)
	}
	close(s.gate)
	r := <-first
	if r.err != nil || r.status != http.StatusCreated {
		t.Fatalf("first = %d %s %v, want 201", r.status, r.body, r.err)
	}
	if n := s.count(t, sameTx+` AND done AND status_code = 201 AND body = convert_to($1, 'UTF8')`, r.body); n != 1 {
		t.Fatalf("finished thing and stored answer %q written together: %d rows, want 1", r.body, n)
	}
}

// TestClaimTakeoverResumes abandons a key after its first phase (the lease runs
// out, as when the process dies): the retry takes it over inside its transaction under the
// record's creation time, so it resumes the same thing instead of creating another.
func TestClaimTakeoverResumes(t *testing.T) {
	t.Parallel()
	const lease = 300 * time.Millisecond
	s := newTxServer(t, lease)
	s.fail.Store(true)
	if r := s.send("k", `{"n":1}`); r.status != http.StatusServiceUnavailable {
		t.Fatalf("first = %d %s, want 503", r.status, r.body)
	}
	// What a dead process leaves: a lease nobody will release.
	s.db.MustExec(`UPDATE idempotency_keys SET lease_owner = $1, locked_until = now() + interval '200 milliseconds'`, uuid.New())
	if r := s.send("k", `{"n":1}`); r.status != http.StatusConflict {
		t.Fatalf("retry during the dead request's lease = %d %s, want 409", r.status, r.body)
	}
	(&server{db: s.db}).endLease(t, "k")
	s.fail.Store(false)
	r := s.send("k", `{"n":1}`)
	if r.status != http.StatusCreated || r.cached != "" {
		t.Fatalf("retry after the lease = %d %s cached=%q, want a fresh 201", r.status, r.body, r.cached)
	}
	if n := s.count(t, `SELECT count(*) FROM things`); n != 1 {
		t.Fatalf("%d things after the takeover, want 1: it resumes the first", n)
	}
	if n := s.count(t, `SELECT count(*) FROM things WHERE done AND $1 LIKE '%' || id || '%'`, r.body); n != 1 {
		t.Fatalf("the answer %s names the finished first thing: %d rows, want 1", r.body, n)
	}
}

// TestClaimFailedFinishStoresNothing fails the request after its first phase: the
// key is released, no answer is stored, and the retry finishes the same thing.
func TestClaimFailedFinishStoresNothing(t *testing.T) {
	t.Parallel()
	s := newTxServer(t, time.Minute)
	s.fail.Store(true)
	if r := s.send("k", `{"n":1}`); r.status != http.StatusServiceUnavailable {
		t.Fatalf("first = %d %s, want 503", r.status, r.body)
	}
	if n := s.count(t, `SELECT count(*) FROM idempotency_keys WHERE status_code IS NULL AND lease_owner IS NULL`); n != 1 {
		t.Fatalf("released keys without an answer = %d, want 1", n)
	}
	if n := s.count(t, `SELECT count(*) FROM things WHERE done`); n != 0 {
		t.Fatalf("%d finished things, want 0", n)
	}
	s.fail.Store(false)
	if r := s.send("k", `{"n":1}`); r.status != http.StatusCreated || r.cached != "" {
		t.Fatalf("retry = %d %s cached=%q, want a fresh 201", r.status, r.body, r.cached)
	}
	if n := s.count(t, `SELECT count(*) FROM things WHERE done`); n != 1 {
		t.Fatalf("%d finished things after the retry, want 1", n)
	}
}

// TestClaimStoresAnswersGivenBeforeTheTake: a 400 the handler gives before taking
// the key is stored and replayed, and while another request holds the key such a request
// is answered 409, as when the middleware took the key first.
func TestClaimStoresAnswersGivenBeforeTheTake(t *testing.T) {
	t.Parallel()
	s := newTxServer(t, time.Minute)
	first := s.send("bad", `{"n":-1}`)
	if first.status != http.StatusBadRequest {
		t.Fatalf("first = %d %s, want 400", first.status, first.body)
	}
	if again := s.send("bad", `{"n":-1}`); again.status != http.StatusBadRequest || again.body != first.body || again.cached != "true" {
		t.Fatalf("repeat = %d %s cached=%q, want the 400 replayed", again.status, again.body, again.cached)
	}
	s.hold.Store(true)
	var wg sync.WaitGroup
	held := make(chan result, 1)
	wg.Go(func() { held <- s.send("k", `{"n":1}`) })
	<-s.took
	s.hold.Store(false)
	if r := s.send("k", `{"n":-1}`); r.status != http.StatusUnprocessableEntity {
		t.Errorf("another payload while the key is held = %d %s, want 422", r.status, r.body)
	}
	close(s.gate)
	wg.Wait()
	if r := <-held; r.status != http.StatusCreated {
		t.Fatalf("holder = %d %s, want 201", r.status, r.body)
	}
}

// TestSameKeyDuringTheTransactionIs409: while a request's transaction holds its key, not yet
// committed, a second request with the key is told 409 at once; it neither waits for that
// transaction (holding a pool connection meanwhile) nor runs.
func TestSameKeyDuringTheTransactionIs409(t *testing.T) {
	t.Parallel()
	s := newTxServer(t, time.Minute)
	open := sync.OnceFunc(func() { close(s.gate) })
	t.Cleanup(open)
	s.holdInTx.Store(true)
	first := make(chan result, 1)
	go func() { first <- s.send("k", `{"n":1}`) }()
	<-s.took
	s.holdInTx.Store(false)
	second := make(chan result, 1)
	go func() { second <- s.send("k", `{"n":1}`) }()
	select {
	case r := <-second:
		if r.status != http.StatusConflict {
			t.Fatalf("second = %d %s %v, want 409 while the first holds the key", r.status, r.body, r.err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("the second request waited for the first's transaction instead of answering 409")
	}
	open()
	r := <-first
	if r.status != http.StatusCreated {
		t.Fatalf("first = %d %s %v, want 201", r.status, r.body, r.err)
	}
	if again := s.send("k", `{"n":1}`); again.status != http.StatusCreated || again.body != r.body || again.cached != "true" {
		t.Fatalf("third = %d %s cached=%q, want the first answer replayed", again.status, again.body, again.cached)
	}
	if n := s.count(t, `SELECT count(*) FROM things`); n != 1 {
		t.Fatalf("%d things, want 1", n)
	}
}

// TestSameKeyDuringTheResetOfAnExpiredKeyIs409: while a request's transaction resets an
// expired key for its own payload, not yet committed, a same-key request is told 409, as
// during any other holder's transaction: it neither gets the expired answer replayed nor a
// 422 for differing from the expired payload.
func TestSameKeyDuringTheResetOfAnExpiredKeyIs409(t *testing.T) {
	t.Parallel()
	s := newTxServer(t, time.Minute)
	if r := s.send("k", `{"n":1}`); r.status != http.StatusCreated {
		t.Fatalf("first = %d %s, want 201", r.status, r.body)
	}
	s.db.MustExec(`UPDATE idempotency_keys SET expires_at = now() - interval '1 second'`)
	open := sync.OnceFunc(func() { close(s.gate) })
	t.Cleanup(open)
	s.holdInTx.Store(true)
	resetting := make(chan result, 1)
	go func() { resetting <- s.send("k", `{"n":2}`) }()
	<-s.took
	s.holdInTx.Store(false)
	for _, body := range []string{`{"n":1}`, `{"n":2}`, `{"n":3}`} {
		if r := s.send("k", body); r.status != http.StatusConflict || r.cached != "" {
			t.Errorf("%s during the reset = %d %s cached=%q, want 409", body, r.status, r.body, r.cached)
		}
	}
	open()
	if r := <-resetting; r.status != http.StatusCreated || r.cached != "" || !strings.Contains(r.body, `"n":2`) {
		t.Fatalf("resetting request = %d %s cached=%q, want a fresh 201 for n=2", r.status, r.body, r.cached)
	}
	if n := s.count(t, `SELECT count(*) FROM things`); n != 2 {
		t.Fatalf("%d things, want 2: the expired key's and the reset's", n)
	}
}

// TestUnclearTakeReleasesTheKey: a statement that took the key but whose answer was lost
// (the connection broke) leaves the request unsure; the key is released rather than left
// leased, so the retry runs at once, resuming the same thing, instead of a 409 until the
// lease ends.
func TestUnclearTakeReleasesTheKey(t *testing.T) {
	t.Parallel()
	s := newTxServer(t, time.Hour)
	s.lostReply.Store(true)
	if r := s.send("k", `{"n":1}`); r.status != http.StatusServiceUnavailable {
		t.Fatalf("first = %d %s, want 503", r.status, r.body)
	}
	s.lostReply.Store(false)
	r := s.send("k", `{"n":1}`)
	if r.status != http.StatusCreated || r.cached != "" {
		t.Fatalf("retry = %d %s cached=%q, want a fresh 201 at once", r.status, r.body, r.cached)
	}
	if n := s.count(t, `SELECT count(*) FROM things WHERE done`); n != 1 {
		t.Fatalf("%d finished things, want 1: the retry resumes the first statement's", n)
	}
	if n := s.count(t, `SELECT count(*) FROM things`); n != 1 {
		t.Fatalf("%d things, want 1", n)
	}
}
