// Package idempotency implements the Idempotency-Key header (IETF draft
// draft-ietf-httpapi-idempotency-key-header) as echo middleware backed by PostgreSQL, for
// routes whose body is a JSON object.
//
// The first request with a key takes a lease on the key; a finished response (any status
// below 500) is stored and replayed byte for byte to later requests with the same key and
// payload. A transient failure (5xx), or any answer with Retry-After (the client is told
// to come back, e.g. a 404 for an account that opens moments later), releases the lease
// without storing anything, so the client's retry runs again. Handlers that create resources derive the resource id from the
// key (Record.DerivedID), which makes a retry after a crash resume the same resource instead
// of creating a second one.
//
// A route may leave taking the key to its handler (Store.InTransaction): the middleware then
// puts a Claim in the request's context, and the repository takes the key in the statement
// or transaction that writes the resource and stores the answer in the one that finishes it,
// so that a keyed request costs no commit of its own.
//
// Each lease carries a random owner token. Only the request holding the current lease may
// store its response or release the key: a request that outlived its lease, and whose key a
// retry took over meanwhile, can neither overwrite the retry's answer nor free the key while
// the retry runs. A key is never deleted while a lease on it is live, whatever its age.
package idempotency

import (
	"context"
	"strconv"
	"time"

	"github.com/google/uuid"
)

// Header names.
const (
	HeaderKey      = "Idempotency-Key"
	HeaderCached   = "X-Idempotency-Cached"
	HeaderReplayed = "Idempotent-Replayed"
	// HeaderRetryAfter on an answer marks it as not final: it is not stored.
	HeaderRetryAfter = "Retry-After"
)

// MaxKeyLength is the longest key accepted.
const MaxKeyLength = 255

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

// FromContext returns the record of the current request, if it carried a key that is taken.
func FromContext(ctx context.Context) (Record, bool) {
	c, ok := ClaimFrom(ctx)
	if !ok || !c.taken {
		return Record{}, false
	}
	return c.record(), true
}
