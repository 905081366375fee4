// Package idempotency implements the Idempotency-Key header (IETF draft
// draft-ietf-httpapi-idempotency-key-header) as echo middleware backed by PostgreSQL, for
// routes whose body is a JSON object.
//
// The first request with a key takes a lease on the key; a finished response (any status
// below 500) is stored and replayed byte for byte to later requests with the same key and
// payload. A transient failure (5xx) releases the lease without storing anything, so the
// client's retry runs again. Handlers that create resources derive the resource id from the
// key (Record.DerivedID), which makes a retry after a crash resume the same resource instead
// of creating a second one.
//
// Each lease carries a random owner token. Only the request holding the current lease may
// store its response or release the key: a request that outlived its lease, and whose key a
// retry took over meanwhile, can neither overwrite the retry's answer nor free the key while
// the retry runs. A key is never deleted while a lease on it is live, whatever its age.
package idempotency

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/labstack/echo/v5"

	"github.com/order-system/order-system/pkg/apperr"
	"github.com/order-system/order-system/pkg/httpx"
	"github.com/order-system/order-system/pkg/postgres"
)

// Header names.
const (
	HeaderKey      = "Idempotency-Key"
	HeaderCached   = "X-Idempotency-Cached"
	HeaderReplayed = "Idempotent-Replayed"
)

// MaxKeyLength is the longest key accepted.
const MaxKeyLength = 255

// Table is the key store in the service's schema; each service using the middleware creates
// it in its own migrations:
//
//	CREATE TABLE idempotency_keys (
//	    scope        text NOT NULL,
//	    key          text NOT NULL,
//	    fingerprint  text NOT NULL,
//	    status_code  int,
//	    content_type text,
//	    body         bytea,
//	    locked_until timestamptz,
//	    lease_owner  uuid,
//	    created_at   timestamptz NOT NULL DEFAULT now(),
//	    expires_at   timestamptz NOT NULL,
//	    PRIMARY KEY (scope, key)
//	);
//	CREATE INDEX idempotency_keys_expires_at ON idempotency_keys (expires_at);
const Table = "idempotency_keys"

// Record is the key of the request being processed, as the handler sees it.
type Record struct {
	Scope     string
	Key       string
	CreatedAt time.Time
}

var idNamespace = uuid.MustParse("6f1c1a52-7f0c-4c1e-9a55-3f7d8e2b9c10")

// DerivedID is a resource id that is the same for every retry of the request and different
// once the key expired and was reused.
func (r Record) DerivedID() uuid.UUID {
	return uuid.NewSHA1(idNamespace, []byte(r.Scope+"\x00"+r.Key+"\x00"+strconv.FormatInt(r.CreatedAt.UnixMicro(), 10)))
}

type recordKey struct{}

// FromContext returns the record of the current request, if it carried a key.
func FromContext(ctx context.Context) (Record, bool) {
	r, ok := ctx.Value(recordKey{}).(Record)
	return r, ok
}

// Store keeps keys and responses in PostgreSQL.
type Store struct {
	db    *sqlx.DB
	ttl   time.Duration
	lease time.Duration
}

// NewStore returns a store whose records live for ttl. A request holds its key for at most
// lease; if its process dies, the key becomes usable again after that.
func NewStore(db *sqlx.DB, ttl, lease time.Duration) *Store {
	return &Store{db: db, ttl: ttl, lease: lease}
}

// errLeaseLost is returned by complete and release when another request holds the key now.
var errLeaseLost = errors.New("lease taken over by another request")

// outcome of Begin.
type outcome int

const (
	acquired outcome = iota
	replay
	inFlight
	mismatch
)

type stored struct {
	Fingerprint string         `db:"fingerprint"`
	StatusCode  sql.NullInt32  `db:"status_code"`
	ContentType sql.NullString `db:"content_type"`
	Body        []byte         `db:"body"`
	CreatedAt   time.Time      `db:"created_at"`
}

// begin takes the key for a new request under the lease owner, or reports why it cannot.
func (s *Store) begin(ctx context.Context, scope, key, fingerprint string, owner uuid.UUID) (outcome, stored, error) {
	// An expired record no longer exists as far as clients are concerned, even if the purge
	// job has not reached it yet; unless a request still holds its lease.
	if _, err := s.db.ExecContext(ctx, `DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2 AND expires_at < now() AND `+notLeased, scope, key); err != nil {
		return 0, stored{}, fmt.Errorf("drop expired key: %w", err)
	}
	// A record whose request died unfinished is taken over with its created_at, so the
	// request resumes under the same DerivedID.
	var rec stored
	err := s.db.GetContext(ctx, &rec, `
		INSERT INTO idempotency_keys (scope, key, fingerprint, locked_until, lease_owner, expires_at)
		VALUES ($1, $2, $3, now() + $4::interval, $6, now() + $5::interval)
		ON CONFLICT (scope, key) DO UPDATE SET locked_until = excluded.locked_until, lease_owner = excluded.lease_owner
		WHERE idempotency_keys.status_code IS NULL
		  AND idempotency_keys.fingerprint = excluded.fingerprint
		  AND idempotency_keys.locked_until < now()
		RETURNING fingerprint, status_code, content_type, body, created_at`,
		scope, key, fingerprint, postgres.Interval(s.lease), postgres.Interval(s.ttl), owner)
	if err == nil {
		return acquired, rec, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return 0, stored{}, fmt.Errorf("take key: %w", err)
	}
	err = s.db.GetContext(ctx, &rec, `SELECT fingerprint, status_code, content_type, body, created_at FROM idempotency_keys WHERE scope = $1 AND key = $2`, scope, key)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		// Purged between the two statements; the client may simply retry.
		return inFlight, rec, nil
	case err != nil:
		return 0, stored{}, fmt.Errorf("read key: %w", err)
	case rec.Fingerprint != fingerprint:
		return mismatch, rec, nil
	case rec.StatusCode.Valid:
		return replay, rec, nil
	default:
		return inFlight, rec, nil
	}
}

// notLeased is the condition under which a record may be deleted: finished, or abandoned by
// its request (the lease ended).
const notLeased = `(status_code IS NOT NULL OR locked_until IS NULL OR locked_until < now())`

func (s *Store) complete(ctx context.Context, scope, key string, owner uuid.UUID, status int, contentType string, body []byte) error {
	res, err := s.db.ExecContext(ctx, `
		UPDATE idempotency_keys SET status_code = $4, content_type = $5, body = $6, locked_until = NULL, lease_owner = NULL,
			expires_at = greatest(expires_at, now() + $7::interval)
		WHERE scope = $1 AND key = $2 AND lease_owner = $3 AND status_code IS NULL`,
		scope, key, owner, status, contentType, body, postgres.Interval(s.ttl))
	if err != nil {
		return fmt.Errorf("store response: %w", err)
	}
	return ownedOne(res)
}

func (s *Store) release(ctx context.Context, scope, key string, owner uuid.UUID) error {
	res, err := s.db.ExecContext(ctx, `
		UPDATE idempotency_keys SET locked_until = now() - interval '1 microsecond', lease_owner = NULL
		WHERE scope = $1 AND key = $2 AND lease_owner = $3 AND status_code IS NULL`, scope, key, owner)
	if err != nil {
		return fmt.Errorf("release key: %w", err)
	}
	return ownedOne(res)
}

// ownedOne turns an update guarded by the lease owner into errLeaseLost when it matched no row.
func ownedOne(res sql.Result) error {
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("rows affected: %w", err)
	}
	if n == 0 {
		return errLeaseLost
	}
	return nil
}

// Purge deletes expired records, except those a request still holds, and returns how many.
func (s *Store) Purge(ctx context.Context) (int64, error) {
	res, err := s.db.ExecContext(ctx, `DELETE FROM idempotency_keys WHERE expires_at < now() AND `+notLeased)
	if err != nil {
		return 0, fmt.Errorf("purge keys: %w", err)
	}
	return res.RowsAffected()
}

// RunPurge purges expired records every interval until ctx ends.
func (s *Store) RunPurge(ctx context.Context, every time.Duration, log *slog.Logger) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		n, err := s.Purge(ctx)
		if err != nil {
			log.WarnContext(ctx, "idempotency purge failed", "err", err)
			continue
		}
		if n > 0 {
			log.InfoContext(ctx, "idempotency keys purged", "count", n)
		}
	}
}

// Middleware enforces idempotency on the routes it wraps. The scope is the route's method
// and path template, so the same key on two endpoints names two different requests.
func (s *Store) Middleware(log *slog.Logger) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c *echo.Context) error {
			key := c.Request().Header.Get(HeaderKey)
			if key == "" {
				return next(c)
			}
			if len(key) > MaxKeyLength {
				return apperr.Validation(map[string]string{HeaderKey: fmt.Sprintf("must be at most %d characters", MaxKeyLength)})
			}
			if !printableASCII(key) {
				return apperr.Validation(map[string]string{HeaderKey: "must be printable ASCII"})
			}
			req := c.Request()
			body, err := io.ReadAll(req.Body)
			if err != nil {
				return err // the body limit's 413, or a broken connection
			}
			req.Body = io.NopCloser(bytes.NewReader(body))
			// A body the handler would refuse must not take the key: the 400 would be stored
			// and the corrected retry answered 422. Checking it here also makes the
			// fingerprint see exactly the object the handler decodes.
			if err := httpx.CheckObject(body); err != nil {
				return err
			}
			scope := req.Method + " " + c.Path()
			ctx := req.Context()

			owner := uuid.New()
			result, rec, err := s.begin(ctx, scope, key, Fingerprint(body), owner)
			if err != nil {
				return apperr.Wrap(err, apperr.Unavailable, "idempotency store unavailable")
			}
			switch result {
			case mismatch:
				return apperr.New(apperr.IdempotencyMismatch, "Idempotency-Key was already used with a different request payload")
			case inFlight:
				return apperr.New(apperr.IdempotencyInUse, "a request with this Idempotency-Key is still being processed")
			case replay:
				h := c.Response().Header()
				h.Set(HeaderCached, "true")
				h.Set(HeaderReplayed, "true")
				return c.Blob(int(rec.StatusCode.Int32), rec.ContentType.String, rec.Body)
			}

			c.SetRequest(req.WithContext(context.WithValue(ctx, recordKey{}, Record{Scope: scope, Key: key, CreatedAt: rec.CreatedAt})))
			resp, err := echo.UnwrapResponse(c.Response())
			if err != nil {
				return err
			}
			capture := &captureWriter{ResponseWriter: resp.ResponseWriter}
			resp.ResponseWriter = capture
			if err := next(c); err != nil {
				c.Echo().HTTPErrorHandler(c, err) // write the error body now, so that it is captured and stored
			}
			// The client's request is answered; recording it must not depend on the client.
			bg := context.WithoutCancel(ctx)
			status := resp.Status
			if status >= http.StatusInternalServerError {
				if err := s.release(bg, scope, key, owner); err != nil {
					log.WarnContext(ctx, "idempotency release failed", "err", err)
				}
				return nil
			}
			err = s.complete(bg, scope, key, owner, status, c.Response().Header().Get(echo.HeaderContentType), capture.body.Bytes())
			switch {
			case errors.Is(err, errLeaseLost):
				// This request outlived its lease and a retry took the key over; the retry
				// worked on the same DerivedID and stores its own answer.
				log.WarnContext(ctx, "idempotency lease lost before the response was stored", "status", status)
			case err != nil:
				// The key stays leased until the lease ends; a retry then re-runs the
				// request, which resumes the same resource through DerivedID.
				log.ErrorContext(ctx, "idempotency store failed", "err", err)
			}
			return nil
		}
	}
}

// printableASCII reports whether key is a structured-field string, as the draft defines
// the header's value: characters 0x20 to 0x7E only. Checking it here also keeps bytes a
// text column cannot hold (invalid UTF-8) away from the store, which would otherwise answer
// a client's mistake with a 503.
func printableASCII(key string) bool {
	for i := 0; i < len(key); i++ {
		if key[i] < 0x20 || key[i] > 0x7e {
			return false
		}
	}
	return true
}

// Fingerprint hashes a request body so that key order and whitespace do not matter; a body
// that is not JSON is hashed as is.
func Fingerprint(body []byte) string {
	var v any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&v); err == nil && !dec.More() {
		if canonical, err := json.Marshal(v); err == nil {
			body = canonical
		}
	}
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:])
}

type captureWriter struct {
	http.ResponseWriter
	body bytes.Buffer
}

func (w *captureWriter) Write(b []byte) (int, error) {
	w.body.Write(b)
	return w.ResponseWriter.Write(b)
}
