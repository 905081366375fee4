// Package idempotency implements the Idempotency-Key header (IETF draft
// draft-ietf-httpapi-idempotency-key-header) as echo middleware backed by PostgreSQL, for
// routes whose body is a JSON object.
//
// The first request with a key takes a lease on the key; a finished response (any status
// below 500) is stored and replayed byte for byte to later requests with the same key and
// payload. A transient failure (5xx) releases the lease without storing anything, so the
// client's retry runs again and resumes the same resource; a 4xx with Retry-After (the client
// is told to come back, e.g. a 404 for an account that opens moments later) deletes the key,
// so the retry starts afresh.
//
// The key is taken where the resource is written: the middleware checks the key and the
// body and hands a Claim to the handler, which passes it down as a Key in the signatures of
// the service and the repository; the repository takes the key in the statement or
// transaction that writes the resource and stores the answer in the one that finishes it
// (InTx owns that sequence for a resource written in one transaction), so that a keyed
// request costs no commit of its own and a resource is never finished without its answer.
// Statements are composed with named parameters (TakeCTE, StoreCTE, database.Named). The
// resource id is derived from the key and its record's creation time (Key.ID), which makes
// a retry after a crash resume the same resource instead of creating a second one.
//
// Each lease carries a random owner token. Only the request holding the current lease may
// store its response or release the key: a request that outlived its lease, and whose key a
// retry took over meanwhile, can neither overwrite the retry's answer nor free the key while
// the retry runs. A key is never deleted while a lease on it is live, whatever its age.
package idempotency

import (
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

var idNamespace = uuid.MustParse("6f1c1a52-7f0c-4c1e-9a55-3f7d8e2b9c10")

// derivedID is a resource id that is the same for every retry of a request and different
// once its key expired and was reused: made from the scope, the key and the creation time
// of the key's record (which a takeover keeps).
func derivedID(scope, key string, createdAt time.Time) uuid.UUID {
	return uuid.NewSHA1(idNamespace, []byte(scope+"\x00"+key+"\x00"+strconv.FormatInt(createdAt.UnixMicro(), 10)))
}
