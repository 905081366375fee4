package idempotency

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/order-system/order-system/pkg/database"
	"github.com/order-system/order-system/pkg/httpx"
)

// Claim is a keyed request's right to its key. The middleware checks the key and the body
// and puts the claim in the request's context, from which the handler takes it as a Key;
// whoever writes the resource takes the key (Take) in the same statement or transaction, and
// stores the answer (StoreCTE) in the one that finishes it, so that neither a key without its
// resource nor a finished resource without its answer is ever committed.
type Claim struct {
	scope       string
	key         string
	fingerprint string
	owner       uuid.UUID // the lease's owner token
	lease, ttl  time.Duration
	// createdAt is the creation time of the record the claim takes: a new one's, proposed
	// by the claim, or that of the record a takeover resumes. ID is derived from it.
	createdAt time.Time
	taken     bool
	// unsure is set when the statement that would take the key failed without the server's
	// word on it (the connection broke, the deadline passed): it may have taken the key all
	// the same, so the key is released, not left leased to a request that is over.
	unsure bool
	stored bool
}

type claimKey struct{}

// ID is the id of the resource the claim's request creates, derived from the key and the
// creation time of the record the claim takes: the same for every retry of the request,
// and a new one once the key expired and was reused.
func (c *Claim) ID() uuid.UUID {
	return derivedID(c.scope, c.key, c.createdAt)
}

// TakeCTE is a WITH query named key_taken that takes a claim's key, its parameters the
// @key_* ones Take passes to the statement. It inserts the key; resets in place a record that
// expired and that no request holds (the key starts afresh); or takes over a record its
// request abandoned (unfinished, lease ended, same payload) when that record was created at
// the claim's createdAt. It yields one row when it took the key and none otherwise: the
// statement it starts must write only FROM key_taken and return no row unless it took the
// key, which is how Take learns that it has to look at the record.
//
// A transaction that took the key keeps the key's transaction-level advisory lock until it
// ends. Another request with the key finds the lock taken and takes nothing (it is then
// answered 409), instead of waiting on the uncommitted row for as long as that transaction
// runs, a pool connection held all the while.
var TakeCTE = `key_taken AS (
		INSERT INTO idempotency_keys AS k (scope, key, fingerprint, locked_until, lease_owner, created_at, expires_at)
		SELECT @key_scope, @key, @key_fingerprint, now() + @key_lease::interval, @key_owner, @key_created_at, now() + @key_ttl::interval
		WHERE pg_try_advisory_xact_lock(hashtextextended(@key_scope, hashtextextended(@key, 0)))
		ON CONFLICT (scope, key) DO UPDATE SET fingerprint = excluded.fingerprint,
			status_code = NULL, content_type = NULL, body = NULL, locked_until = excluded.locked_until,
			lease_owner = excluded.lease_owner, created_at = excluded.created_at, expires_at = excluded.expires_at
		WHERE (k.expires_at < now() AND ` + notLeased("k") + `)
		   OR (k.status_code IS NULL AND k.fingerprint = excluded.fingerprint AND k.locked_until < now()
		       AND k.created_at = excluded.created_at)
		RETURNING k.created_at
	)`

// takeParams are TakeCTE's parameters.
func (c *Claim) takeParams() database.Params {
	return database.Params{"key_scope": c.scope, "key": c.key, "key_fingerprint": c.fingerprint, "key_lease": database.Interval(c.lease),
		"key_owner": c.owner, "key_created_at": c.createdAt, "key_ttl": database.Interval(c.ttl)}
}

// Take takes the claim's key with a statement that starts WITH TakeCTE: run executes it
// with id, the resource id for the record it would take (use it as the new resource's id),
// and key, TakeCTE's parameters, and returns sql.ErrNoRows when the statement returned no
// row. q reads the record then (the transaction run works in, if any). A record its request
// abandoned is taken over by a second run under the record's own creation time, so the
// request resumes the resource the first one created.
//
// Take returns nil once the key is taken, a *Refusal when the request must not run (its
// answer is stored, it is in flight, the key was used with another payload), or the
// statement's error.
func (c *Claim) Take(ctx context.Context, q sqlx.QueryerContext, run func(id uuid.UUID, key database.Params) error) error {
	for range maxTakeAttempts {
		err := run(c.ID(), c.takeParams())
		if err == nil {
			c.taken = true
			return nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			var refused *pq.Error
			c.unsure = !errors.As(err, &refused)
			return err
		}
		// The statement took nothing: the record may not be taken, or a transaction in
		// progress holds the key's lock.
		var rec keyRecord
		err = sqlx.GetContext(ctx, q, &rec, `SELECT fingerprint, status_code, content_type, body, created_at,
			coalesce(locked_until < now(), false) AS lapsed, expires_at < now() AS expired, `+notLeased("idempotency_keys")+` AS unheld
			FROM idempotency_keys WHERE scope = $1 AND key = $2`, c.scope, c.key)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			// Purged after the statement looked at it; the client may simply retry.
			return &Refusal{outcome: inFlight}
		case err != nil:
			return fmt.Errorf("read key: %w", err)
		case rec.Expired:
			// Only an expired record can be reset, and a transaction resetting it for its own
			// payload still shows the old payload and answer from here: neither may be
			// compared with or replayed. While the key's lock is held, the key is in use;
			// once it is free, an expired record nobody holds is taken afresh.
			free, err := c.lockFree(ctx, q)
			switch {
			case err != nil:
				return err
			case free && rec.Unheld:
				continue
			default:
				return &Refusal{outcome: inFlight}
			}
		case rec.Fingerprint != c.fingerprint:
			return &Refusal{outcome: mismatch}
		case rec.StatusCode.Valid:
			return &Refusal{outcome: replay, stored: httpx.Reply{Status: int(rec.StatusCode.Int32), ContentType: rec.ContentType.String, Body: rec.Body}}
		case rec.Lapsed && !rec.CreatedAt.Equal(c.createdAt):
			c.createdAt = rec.CreatedAt
		default:
			return &Refusal{outcome: inFlight}
		}
	}
	return &Refusal{outcome: inFlight}
}

// maxTakeAttempts bounds Take's statements: a takeover needs a second, and a record freed
// by a holder that rolled back a third.
const maxTakeAttempts = 3

// lockFree tells whether the key's advisory lock is free: it takes it, and outside a
// transaction releases it at once; inside one it is kept, harmlessly, by a request that is
// about to be refused or to take the key itself.
func (c *Claim) lockFree(ctx context.Context, q sqlx.QueryerContext) (bool, error) {
	var free bool
	err := sqlx.GetContext(ctx, q, &free, `SELECT pg_try_advisory_xact_lock(hashtextextended($1, hashtextextended($2, 0)))`, c.scope, c.key)
	if err != nil {
		return false, fmt.Errorf("check key lock: %w", err)
	}
	return free, nil
}

// StoreCTE is a WITH query named key_stored that stores a taken claim's answer, its
// parameters those of Key.Answer, provided the WITH query named after yields a row (the
// change the answer reports): a statement that finishes a resource so stores its answer
// atomically. key_stored yields one row when it stored the answer (the claim still owns the
// key); the caller then calls Key.MarkStored.
func StoreCTE(after string) string {
	return "key_stored AS (" + storeSQL("EXISTS (SELECT FROM "+after+")") + " RETURNING 1)"
}

// storeSQL stores an answer under the key the lease owner holds, if cond holds.
func storeSQL(cond string) string {
	return `UPDATE idempotency_keys SET status_code = @answer_status, content_type = @answer_content_type, body = @answer_body,
			locked_until = NULL, lease_owner = NULL, expires_at = greatest(expires_at, now() + @key_ttl::interval)
		WHERE scope = @key_scope AND key = @key AND lease_owner = @key_owner AND status_code IS NULL AND ` + cond
}

// storeQuery stores an answer in a statement of its own.
var storeQuery = database.Named(storeSQL("true"))

// Store stores r as the answer of the request that took the key, with q: inside the
// transaction that took the key (for an answer that only its writes can render), the answer
// commits with them. It fails when another request owns the key now.
func (c *Claim) Store(ctx context.Context, q sqlx.ExecerContext, r httpx.Reply) error {
	args, err := storeQuery.Args(c.storeParams(r))
	if err != nil {
		return err
	}
	res, err := q.ExecContext(ctx, storeQuery.SQL(), args...)
	if err != nil {
		return fmt.Errorf("store response: %w", err)
	}
	if err := ownedOne(res); err != nil {
		return err
	}
	c.stored = true
	return nil
}

// rolledBack records that the transaction in which the claim was taken (and its answer
// perhaps stored) did not commit: the key is not the request's after all.
func (c *Claim) rolledBack() {
	c.taken, c.unsure, c.stored = false, false, false
}

// storeParams are StoreCTE's parameters for the answer r.
func (c *Claim) storeParams(r httpx.Reply) database.Params {
	return database.Params{"key_scope": c.scope, "key": c.key, "key_owner": c.owner, "key_ttl": database.Interval(c.ttl),
		"answer_status": r.Status, "answer_content_type": r.ContentType, "answer_body": r.Body}
}

// Refusal is why a claim's key could not be taken. The request does not run: the middleware
// answers it with the stored answer, 409 or 422.
type Refusal struct {
	outcome outcome
	stored  httpx.Reply
}

func (r *Refusal) Error() string {
	switch r.outcome {
	case replay:
		return "idempotency key holds a stored answer"
	case mismatch:
		return "idempotency key used with another payload"
	default:
		return "idempotency key in use"
	}
}
