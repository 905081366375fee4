package idempotency

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/order-system/order-system/pkg/postgres"
)

// Table is the key store in the service's schema.
const Table = "idempotency_keys"

// Schema creates Table. Each service using the middleware creates it so in its own
// migrations (a migration, once applied, is history and keeps its own text: theirs add
// lease_owner in a later one); the package's tests use it.
const Schema = `CREATE TABLE idempotency_keys (
    scope        text NOT NULL,
    key          text NOT NULL,
    fingerprint  text NOT NULL,
    status_code  int,
    content_type text,
    body         bytea,
    locked_until timestamptz,
    lease_owner  uuid,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_keys_expires_at ON idempotency_keys (expires_at);`

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
