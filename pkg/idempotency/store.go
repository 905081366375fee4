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

	"github.com/order-system/order-system/pkg/database"
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
	db         *sqlx.DB
	ttl        time.Duration
	lease      time.Duration
	purgeBatch int
}

// DefaultPurgeBatch is how many records a statement of Purge deletes at most.
const DefaultPurgeBatch = 5000

// NewStore returns a store whose records live for ttl. A request holds its key for at most
// lease; if its process dies, the key becomes usable again after that.
func NewStore(db *sqlx.DB, ttl, lease time.Duration) *Store {
	return &Store{db: db, ttl: ttl, lease: lease, purgeBatch: DefaultPurgeBatch}
}

// WithPurgeBatch sets how many records a statement of Purge deletes at most, and returns s.
func (s *Store) WithPurgeBatch(n int) *Store {
	s.purgeBatch = max(n, 1)
	return s
}

// errLeaseLost is returned by Claim.Store and release when another request holds the key now.
var errLeaseLost = errors.New("lease taken over by another request")

// outcome of taking a key, when it was not taken.
type outcome int

const (
	replay outcome = iota + 1
	inFlight
	mismatch
)

// keyRecord is a key's record as Claim.Take reads it when it could not take it.
type keyRecord struct {
	Fingerprint string         `db:"fingerprint"`
	StatusCode  sql.NullInt32  `db:"status_code"`
	ContentType sql.NullString `db:"content_type"`
	Body        []byte         `db:"body"`
	CreatedAt   time.Time      `db:"created_at"`
	Lapsed      bool           `db:"lapsed"`
	Expired     bool           `db:"expired"` // its time to live is over
	Unheld      bool           `db:"unheld"`  // no request holds it: finished, or its lease ended
}

// claim returns the claim of a new request on key in scope, with a lease owner of its own
// and the current time proposed as the record's creation time (microseconds, what the
// column keeps, so that the id derived from it is the one derived from the stored value).
func (s *Store) claim(scope, key, fingerprint string) *Claim {
	return &Claim{scope: scope, key: key, fingerprint: fingerprint, owner: uuid.New(), lease: s.lease, ttl: s.ttl,
		createdAt: time.Now().Truncate(time.Microsecond)}
}

// takeOnly takes a key and does nothing else: for an answer the handler gave before it
// took the key (a 400 of its own, a change it rolled back), so that the answer is stored.
var takeOnly = database.Named(`WITH ` + TakeCTE + ` SELECT created_at FROM key_taken`)

// take takes c's key in a statement of its own.
func (s *Store) take(ctx context.Context, c *Claim) error {
	return c.Take(ctx, s.db, func(_ uuid.UUID, key database.Params) error {
		args, err := takeOnly.Args(key)
		if err != nil {
			return err
		}
		var createdAt time.Time
		if err := s.db.GetContext(ctx, &createdAt, takeOnly.SQL(), args...); err != nil {
			return fmt.Errorf("take key: %w", err)
		}
		return nil
	})
}

// notLeased is the condition under which table's record may be deleted or reset: finished,
// or abandoned by its request (the lease ended).
func notLeased(table string) string {
	return fmt.Sprintf("(%[1]s.status_code IS NOT NULL OR %[1]s.locked_until IS NULL OR %[1]s.locked_until < now())", table)
}

// release frees c's key for a retry, unless another request owns it now.
func (s *Store) release(ctx context.Context, c *Claim) error {
	res, err := s.db.ExecContext(ctx, `
		UPDATE idempotency_keys SET locked_until = now() - interval '1 microsecond', lease_owner = NULL
		WHERE scope = $1 AND key = $2 AND lease_owner = $3 AND status_code IS NULL`, c.scope, c.key, c.owner)
	if err != nil {
		return fmt.Errorf("release key: %w", err)
	}
	return ownedOne(res)
}

// forget deletes c's key, unless another request owns it now, so that a retry starts afresh
// under a new creation time and so works on a new resource.
func (s *Store) forget(ctx context.Context, c *Claim) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2 AND lease_owner = $3 AND status_code IS NULL`,
		c.scope, c.key, c.owner)
	if err != nil {
		return fmt.Errorf("forget key: %w", err)
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
// It deletes them in batches, each its own statement: however large the backlog, every batch
// ends well within statement_timeout, and it skips a record a request is resetting for reuse
// instead of making that request wait.
func (s *Store) Purge(ctx context.Context) (int64, error) {
	var total int64
	for {
		res, err := s.db.ExecContext(ctx, `DELETE FROM idempotency_keys WHERE ctid = ANY (ARRAY(
			SELECT ctid FROM idempotency_keys k WHERE k.expires_at < now() AND `+notLeased("k")+`
			LIMIT $1 FOR UPDATE SKIP LOCKED))`, s.purgeBatch)
		if err != nil {
			return total, fmt.Errorf("purge keys: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, fmt.Errorf("purge keys: %w", err)
		}
		total += n
		if n < int64(s.purgeBatch) {
			return total, nil
		}
	}
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
