package idempotency_test

import (
	"bytes"
	"context"
	"encoding/json"
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

	"github.com/order-system/order-system/pkg/database"
	"github.com/order-system/order-system/pkg/dbtest"
	"github.com/order-system/order-system/pkg/httpx"
	"github.com/order-system/order-system/pkg/idempotency"
)

// server mounts two endpoints behind the middleware. The handler takes the key in a
// statement of its own and counts the calls that took it (a refused request returns the
// Refusal, uncounted); a call can be
// held back to simulate a slow request (every call until release is closed, or call n until
// hold[n] is), and fails with 503 while unavailable is set or on a call listed in fail. While
// notYet is set it answers 404 with Retry-After, as a resource that appears moments later.
type server struct {
	db          *sqlx.DB
	srv         *httptest.Server
	calls       atomic.Int64
	release     chan struct{}
	hold        map[int64]chan struct{}
	fail        map[int64]bool
	unavailable atomic.Bool
	notYet      atomic.Bool
}

func newServer(t *testing.T, ttl time.Duration) *server {
	t.Helper()
	return newServerWithLease(t, ttl, 10*time.Second)
}

// newServerWithLease is newServer with a lease of its own; hold and fail are set before any
// request and only read afterwards.
func newServerWithLease(t *testing.T, ttl, lease time.Duration) *server {
	t.Helper()
	db := dbtest.New(t, fstest.MapFS{"000001_idempotency.up.sql": {Data: []byte(idempotency.Schema)}})
	s := &server{db: db, hold: map[int64]chan struct{}{}, fail: map[int64]bool{}}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	store := idempotency.NewStore(db, ttl, lease)
	e := httpx.New(log, prometheus.NewRegistry())
	handle := func(c *echo.Context) error {
		id, err := take(c, db)
		if err != nil {
			return err
		}
		n := s.calls.Add(1)
		if s.release != nil {
			<-s.release
		}
		if gate, ok := s.hold[n]; ok {
			<-gate
		}
		if s.unavailable.Load() || s.fail[n] {
			return echo.ErrServiceUnavailable
		}
		if s.notYet.Load() {
			c.Response().Header().Set(idempotency.HeaderRetryAfter, "1")
			return echo.ErrNotFound
		}
		return c.JSON(http.StatusCreated, map[string]any{"call": n, "id": id.String()})
	}
	e.POST("/things", handle, store.Middleware(log))
	e.POST("/other", handle, store.Middleware(log))
	s.srv = httptest.NewServer(e)
	t.Cleanup(s.srv.Close)
	return s
}

var takeOnly = database.Named(`WITH ` + idempotency.TakeCTE + ` SELECT created_at FROM key_taken`)

// endLease ends the lease on key now, as its running out does: no waiting it out.
func (s *server) endLease(t *testing.T, key string) {
	t.Helper()
	s.db.MustExec(`UPDATE idempotency_keys SET locked_until = now() - interval '1 microsecond' WHERE key = $1 AND status_code IS NULL`, key)
}

// expire makes key's record older than its time to live, as the passing of the TTL does.
func (s *server) expire(t *testing.T, key string) {
	t.Helper()
	s.db.MustExec(`UPDATE idempotency_keys SET expires_at = now() - interval '1 microsecond' WHERE key = $1`, key)
}

// take takes the request's key in a statement of its own, for a handler that writes no
// resource, and returns the id the request's resource would have.
func take(c *echo.Context, db *sqlx.DB) (uuid.UUID, error) {
	ctx := c.Request().Context()
	key := idempotency.KeyOf(c, func(struct{}) (httpx.Reply, error) { return httpx.Reply{}, nil })
	if !key.Present() {
		return uuid.New(), nil
	}
	var id uuid.UUID
	err := key.Take(ctx, db, func(derived uuid.UUID, k database.Params) error {
		id = derived
		args, err := takeOnly.Args(k)
		if err != nil {
			return err
		}
		var createdAt time.Time
		return db.GetContext(ctx, &createdAt, takeOnly.SQL(), args...)
	})
	return id, err
}

func (s *server) post(t *testing.T, path, key, body string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, s.srv.URL+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set(idempotency.HeaderKey, key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func TestReplayIsByteForByte(t *testing.T) {
	t.Parallel()
	s := newServer(t, time.Hour)
	first, firstBody := s.post(t, "/things", "k1", `{"a":1,"b":[1,2]}`)
	if first.StatusCode != http.StatusCreated || first.Header.Get(idempotency.HeaderCached) != "" {
		t.Fatalf("first response: %d cached=%q", first.StatusCode, first.Header.Get(idempotency.HeaderCached))
	}
	// Same payload with other key order and whitespace.
	again, againBody := s.post(t, "/things", "k1", "{ \"b\": [1, 2],\n \"a\": 1 }")
	if again.StatusCode != http.StatusCreated || !bytes.Equal(againBody, firstBody) {
		t.Fatalf("replay = %d %s, want 201 %s", again.StatusCode, againBody, firstBody)
	}
	if again.Header.Get(idempotency.HeaderCached) != "true" || again.Header.Get(idempotency.HeaderReplayed) != "true" {
		t.Fatalf("replay headers: %v", again.Header)
	}
	if n := s.calls.Load(); n != 1 {
		t.Fatalf("handler ran %d times, want 1", n)
	}
}

func TestMismatchScopeAndKeyLength(t *testing.T) {
	t.Parallel()
	s := newServer(t, time.Hour)
	s.post(t, "/things", "k", `{"a":1}`)
	if resp, body := s.post(t, "/things", "k", `{"a":2}`); resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(string(body), "idempotency_key_mismatch") {
		t.Fatalf("other payload = %d %s, want 422 idempotency_key_mismatch", resp.StatusCode, body)
	}
	// The same key on another endpoint is another request.
	if resp, _ := s.post(t, "/other", "k", `{"a":2}`); resp.StatusCode != http.StatusCreated || resp.Header.Get(idempotency.HeaderCached) != "" {
		t.Fatalf("same key on another endpoint = %d cached=%q, want a fresh 201", resp.StatusCode, resp.Header.Get(idempotency.HeaderCached))
	}
	if resp, _ := s.post(t, "/things", strings.Repeat("x", 256), `{}`); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("256-char key = %d, want 400", resp.StatusCode)
	}
	if resp, _ := s.post(t, "/things", strings.Repeat("x", 255), `{}`); resp.StatusCode != http.StatusCreated {
		t.Fatalf("255-char key = %d, want 201", resp.StatusCode)
	}
	// The draft's keys are printable ASCII; anything else is the client's error (and invalid
	// UTF-8 would otherwise reach the store and come back as a 503).
	for _, key := range []string{"a\xffb", "ключ"} {
		if resp, body := s.post(t, "/things", key, `{}`); resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "printable ASCII") {
			t.Errorf("key %q = %d %s, want 400 must be printable ASCII", key, resp.StatusCode, body)
		}
	}
	if n := s.calls.Load(); n != 3 { // k, /other k and the 255-char key
		t.Fatalf("handler ran %d times, want 3: rejected keys never reach it", n)
	}
}

// TestRefusedBodyTakesNoKey sends bodies the handler's decoder refuses: each is a 400 that
// never reaches the handler and leaves the key free, so the corrected retry runs.
func TestRefusedBodyTakesNoKey(t *testing.T) {
	t.Parallel()
	s := newServer(t, time.Hour)
	for _, body := range []string{`{"a":1} x`, `{"a":1}}`, `{"a":1} {"a":1}`, `{"price":1,"PRICE":5}`, `{"a":1,"a":1}`, `[1]`, ``} {
		if resp, got := s.post(t, "/things", "k", body); resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(got), "invalid_request") {
			t.Errorf("body %q = %d %s, want 400 invalid_request", body, resp.StatusCode, got)
		}
	}
	if n := s.calls.Load(); n != 0 {
		t.Fatalf("handler ran %d times for refused bodies, want 0", n)
	}
	if resp, got := s.post(t, "/things", "k", `{"a":1}`); resp.StatusCode != http.StatusCreated || resp.Header.Get(idempotency.HeaderCached) != "" {
		t.Fatalf("corrected retry = %d %s cached=%q, want a fresh 201", resp.StatusCode, got, resp.Header.Get(idempotency.HeaderCached))
	}
}

func TestConcurrentSameKeyRunsOnce(t *testing.T) {
	t.Parallel()
	s := newServer(t, time.Hour)
	s.release = make(chan struct{})
	const n = 64
	results := make(chan result, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() { results <- s.send("/things", "same", `{"x":1}`) })
	}
	// Let the losers come back with 409 while the winner is held, then release it.
	time.Sleep(500 * time.Millisecond)
	close(s.release)
	wg.Wait()
	close(results)
	counts := map[int]int{}
	bodies := map[string]bool{}
	for r := range results {
		if r.err != nil {
			t.Fatal(r.err)
		}
		counts[r.status]++
		if r.status == http.StatusCreated {
			bodies[r.body] = true
		}
	}
	if s.calls.Load() != 1 || counts[http.StatusCreated] < 1 || counts[http.StatusCreated]+counts[http.StatusConflict] != n || len(bodies) != 1 {
		t.Fatalf("calls=%d statuses=%v distinct 201 bodies=%d, want one call, only 201/409 and one body", s.calls.Load(), counts, len(bodies))
	}
}

// result is one response as a goroutine saw it (a goroutine must not call t.Fatal).
type result struct {
	status int
	body   string
	cached string // X-Idempotency-Cached
	err    error
}

func (s *server) send(path, key, body string) result {
	req, err := http.NewRequest(http.MethodPost, s.srv.URL+path, strings.NewReader(body))
	if err != nil {
		return result{err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(idempotency.HeaderKey, key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return result{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return result{status: resp.StatusCode, body: string(b), cached: resp.Header.Get(idempotency.HeaderCached), err: err}
}

// gate holds call n of the handler until the returned func is called; the test's cleanup
// opens it too, so a failing test does not leave a request hanging.
func (s *server) gate(t *testing.T, n int64) func() {
	ch := make(chan struct{})
	s.hold[n] = ch
	open := sync.OnceFunc(func() { close(ch) })
	t.Cleanup(open)
	return open
}

// waitCalls waits until the handler has been entered n times.
func (s *server) waitCalls(t *testing.T, n int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for s.calls.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("handler entered %d times, want %d", s.calls.Load(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestConcurrentReplaysAllGetTheAnswer: many repeats of a request whose answer is stored,
// sent at once, all get that answer replayed; none is told 409 because another repeat
// happened to be looking at the key in the same instant.
func TestConcurrentReplaysAllGetTheAnswer(t *testing.T) {
	t.Parallel()
	s := newServer(t, time.Hour)
	first := s.send("/things", "k", `{"a":1}`)
	if first.err != nil || first.status != http.StatusCreated {
		t.Fatalf("first = %d %v, want 201", first.status, first.err)
	}
	const n = 64
	replays := make(chan result, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() { replays <- s.send("/things", "k", `{"a":1}`) })
	}
	wg.Wait()
	close(replays)
	for r := range replays {
		if r.err != nil || r.status != http.StatusCreated || r.body != first.body || r.cached != "true" {
			t.Errorf("concurrent replay = %d %s cached=%q %v, want the first answer replayed", r.status, r.body, r.cached, r.err)
		}
	}
	if calls := s.calls.Load(); calls != 1 {
		t.Fatalf("handler ran %d times, want once", calls)
	}
}

// TestTakeoverAfterLeaseExpiry holds a first request past its lease. Of many retries racing
// for the key then, exactly one takes it over, under the same derived id; the first request,
// finishing last, cannot overwrite the answer stored by the one that owns the key now.
func TestTakeoverAfterLeaseExpiry(t *testing.T) {
	t.Parallel()
	const lease = time.Second
	s := newServerWithLease(t, time.Hour, lease)
	open1, open2 := s.gate(t, 1), s.gate(t, 2)
	first := make(chan result, 1)
	go func() { first <- s.send("/things", "k", `{"a":1}`) }()
	s.waitCalls(t, 1)
	s.endLease(t, "k")

	const n = 32
	retries := make(chan result, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() { retries <- s.send("/things", "k", `{"a":1}`) })
	}
	// Every retry but the one that took the key over comes back at once.
	for range n - 1 {
		r := <-retries
		if r.err != nil {
			t.Fatal(r.err)
		}
		if r.status != http.StatusConflict {
			t.Fatalf("retry while another holds the key = %d %s, want 409", r.status, r.body)
		}
	}
	open2()
	wg.Wait()
	won := <-retries
	if won.err != nil || won.status != http.StatusCreated {
		t.Fatalf("retry that took the key over = %d %s %v, want 201", won.status, won.body, won.err)
	}
	open1()
	late := <-first
	if late.err != nil {
		t.Fatal(late.err)
	}
	if n := s.calls.Load(); n != 2 {
		t.Fatalf("handler ran %d times, want 2: the first request and one takeover", n)
	}
	var a, b struct {
		Call int
		ID   string
	}
	if err := json.Unmarshal([]byte(late.body), &a); err != nil {
		t.Fatalf("first request's body %q: %v", late.body, err)
	}
	if err := json.Unmarshal([]byte(won.body), &b); err != nil {
		t.Fatalf("takeover's body %q: %v", won.body, err)
	}
	if a.ID == "" || a.ID != b.ID {
		t.Fatalf("derived ids %q (first) and %q (takeover): a takeover must keep the id", a.ID, b.ID)
	}
	replay := s.send("/things", "k", `{"a":1}`)
	if replay.status != http.StatusCreated || replay.body != won.body {
		t.Fatalf("replay = %d %s, want the takeover's stored answer %s", replay.status, replay.body, won.body)
	}
}

// TestFormerOwnerCannotReleaseKey lets a request that outlived its lease fail with a 503
// while the retry that took its key over still runs: the key stays taken, so a third
// request gets 409 instead of running alongside the retry.
func TestFormerOwnerCannotReleaseKey(t *testing.T) {
	t.Parallel()
	const lease = time.Second
	s := newServerWithLease(t, time.Hour, lease)
	open1, open2 := s.gate(t, 1), s.gate(t, 2)
	s.fail[1] = true
	first := make(chan result, 1)
	go func() { first <- s.send("/things", "k", `{}`) }()
	s.waitCalls(t, 1)
	s.endLease(t, "k")
	second := make(chan result, 1)
	go func() { second <- s.send("/things", "k", `{}`) }()
	s.waitCalls(t, 2)
	open1()
	if r := <-first; r.err != nil || r.status != http.StatusServiceUnavailable {
		t.Fatalf("first request = %d %v, want its 503", r.status, r.err)
	}
	if r := s.send("/things", "k", `{}`); r.status != http.StatusConflict {
		t.Fatalf("third request while the takeover runs = %d %s, want 409", r.status, r.body)
	}
	open2()
	if r := <-second; r.err != nil || r.status != http.StatusCreated {
		t.Fatalf("takeover = %d %v, want 201", r.status, r.err)
	}
	if n := s.calls.Load(); n != 2 {
		t.Fatalf("handler ran %d times, want 2", n)
	}
}

// TestInFlightKeyOutlivesItsTTL keeps a request running past the key's time to live: neither
// a new request with the key nor the purge may delete the record under it, and its answer is
// then stored and replayed.
func TestInFlightKeyOutlivesItsTTL(t *testing.T) {
	t.Parallel()
	const ttl = 300 * time.Millisecond
	s := newServerWithLease(t, ttl, 10*time.Second)
	open1 := s.gate(t, 1)
	first := make(chan result, 1)
	go func() { first <- s.send("/things", "k", `{"a":1}`) }()
	s.waitCalls(t, 1)
	s.expire(t, "k")
	if r := s.send("/things", "k", `{"a":1}`); r.status != http.StatusConflict {
		t.Fatalf("same key after the TTL while the first still runs = %d %s, want 409", r.status, r.body)
	}
	store := idempotency.NewStore(s.db, ttl, 10*time.Second)
	if n, err := store.Purge(context.Background()); err != nil || n != 0 {
		t.Fatalf("Purge = %d, %v; want 0: the record is in flight", n, err)
	}
	open1()
	r := <-first
	if r.err != nil || r.status != http.StatusCreated {
		t.Fatalf("first request = %d %v, want 201", r.status, r.err)
	}
	if replay := s.send("/things", "k", `{"a":1}`); replay.status != http.StatusCreated || replay.body != r.body {
		t.Fatalf("replay = %d %s, want the stored %s", replay.status, replay.body, r.body)
	}
	if n := s.calls.Load(); n != 1 {
		t.Fatalf("handler ran %d times, want 1", n)
	}
}

func TestTransientFailureIsNotStored(t *testing.T) {
	t.Parallel()
	s := newServer(t, time.Hour)
	s.unavailable.Store(true)
	if resp, _ := s.post(t, "/things", "k", `{}`); resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("first = %d, want 503", resp.StatusCode)
	}
	s.unavailable.Store(false)
	resp, body := s.post(t, "/things", "k", `{}`)
	if resp.StatusCode != http.StatusCreated || resp.Header.Get(idempotency.HeaderCached) != "" {
		t.Fatalf("retry after 503 = %d cached=%q, want a fresh 201", resp.StatusCode, resp.Header.Get(idempotency.HeaderCached))
	}
	var out struct{ Call int }
	if err := json.Unmarshal(body, &out); err != nil || out.Call != 2 {
		t.Fatalf("retry body %s: the handler should have run again", body)
	}
}

// An answer that tells the client to retry later is not the request's outcome: storing it
// would replay it to the very retry it asks for.
func TestRetryLaterAnswerIsNotStored(t *testing.T) {
	t.Parallel()
	s := newServer(t, time.Hour)
	s.notYet.Store(true)
	resp, _ := s.post(t, "/things", "k", `{}`)
	if resp.StatusCode != http.StatusNotFound || resp.Header.Get(idempotency.HeaderRetryAfter) == "" {
		t.Fatalf("first = %d Retry-After=%q, want 404 with Retry-After", resp.StatusCode, resp.Header.Get(idempotency.HeaderRetryAfter))
	}
	s.notYet.Store(false)
	resp, body := s.post(t, "/things", "k", `{}`)
	if resp.StatusCode != http.StatusCreated || resp.Header.Get(idempotency.HeaderCached) != "" {
		t.Fatalf("retry = %d cached=%q body %s, want a fresh 201", resp.StatusCode, resp.Header.Get(idempotency.HeaderCached), body)
	}
	// The retry's answer is final and stored.
	if resp, _ := s.post(t, "/things", "k", `{}`); resp.StatusCode != http.StatusCreated || resp.Header.Get(idempotency.HeaderCached) != "true" {
		t.Fatalf("third = %d cached=%q, want the stored 201", resp.StatusCode, resp.Header.Get(idempotency.HeaderCached))
	}
	if n := s.calls.Load(); n != 2 {
		t.Fatalf("handler ran %d times, want 2", n)
	}
}

func TestExpiredKeysArePurgedAndReusable(t *testing.T) {
	t.Parallel()
	s := newServer(t, 300*time.Millisecond)
	_, first := s.post(t, "/things", "k", `{"a":1}`)
	s.expire(t, "k")
	store := idempotency.NewStore(s.db, time.Hour, time.Minute)
	if n, err := store.Purge(context.Background()); err != nil || n != 1 {
		t.Fatalf("Purge = %d, %v; want 1 expired record", n, err)
	}
	// The key is free again: even another payload starts a new request, with a new id.
	resp, second := s.post(t, "/things", "k", `{"a":2}`)
	if resp.StatusCode != http.StatusCreated || resp.Header.Get(idempotency.HeaderCached) != "" {
		t.Fatalf("reuse after expiry = %d cached=%q", resp.StatusCode, resp.Header.Get(idempotency.HeaderCached))
	}
	var a, b struct{ ID string }
	json.Unmarshal(first, &a)
	json.Unmarshal(second, &b)
	if a.ID == "" || a.ID == b.ID {
		t.Fatalf("derived ids %q and %q: a reused key must derive a new id", a.ID, b.ID)
	}
}

// TestPurgeDeletesInBatchesAndSkipsHeldRecords: a large backlog is deleted batch by batch,
// and a record another transaction has locked (a request resetting it for reuse) is skipped,
// not waited for; it goes at a later purge.
func TestPurgeDeletesInBatchesAndSkipsHeldRecords(t *testing.T) {
	t.Parallel()
	s := newServer(t, time.Hour)
	s.db.MustExec(`INSERT INTO idempotency_keys (scope, key, fingerprint, status_code, content_type, body, created_at, expires_at)
		SELECT 'POST /things', 'old-' || g, 'x', 201, 'application/json', '\x7b7d', now() - interval '2 days', now() - interval '1 day'
		FROM generate_series(1, 2500) g`)
	s.post(t, "/things", "live", `{"a":1}`) // not expired: stays
	held, err := s.db.Beginx()
	if err != nil {
		t.Fatal(err)
	}
	defer held.Rollback()
	held.MustExec(`SELECT 1 FROM idempotency_keys WHERE key = 'old-7' FOR UPDATE`)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	store := idempotency.NewStore(s.db, time.Hour, time.Minute).WithPurgeBatch(1000)
	if n, err := store.Purge(ctx); err != nil || n != 2499 {
		t.Fatalf("Purge beside a held record = %d, %v; want 2499 deleted without waiting", n, err)
	}
	if err := held.Commit(); err != nil {
		t.Fatal(err)
	}
	if n, err := store.Purge(ctx); err != nil || n != 1 {
		t.Fatalf("Purge after the holder ended = %d, %v; want the last expired record", n, err)
	}
	var left []string
	if err := s.db.Select(&left, `SELECT key FROM idempotency_keys`); err != nil || len(left) != 1 || left[0] != "live" {
		t.Fatalf("records left %v, %v; want only the live one", left, err)
	}
}

func TestFingerprintIgnoresKeyOrderAndWhitespaceOnly(t *testing.T) {
	t.Parallel()
	same := [][2]string{{`{"a":1,"b":2}`, `{"b":2, "a":1}`}, {`{"a":[1,{"c":1,"d":2}]}`, "{\"a\":[1,{\"d\":2,\"c\":1}]}\n"}}
	for _, p := range same {
		if idempotency.Fingerprint([]byte(p[0])) != idempotency.Fingerprint([]byte(p[1])) {
			t.Errorf("%s and %s should have the same fingerprint", p[0], p[1])
		}
	}
	differ := [][2]string{{`{"a":1}`, `{"a":2}`}, {`{"a":1}`, `{"a":"1"}`}, {`{"a":500}`, `{"a":500.0}`}, {`not json`, `not  json`}}
	for _, p := range differ {
		if idempotency.Fingerprint([]byte(p[0])) == idempotency.Fingerprint([]byte(p[1])) {
			t.Errorf("%s and %s should differ", p[0], p[1])
		}
	}
}
