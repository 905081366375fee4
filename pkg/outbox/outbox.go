// Package outbox implements the transactional outbox: events are written in the same
// transaction as the state change they describe, and a relay publishes them afterwards with
// publisher confirms. An event is deleted from the outbox only after the broker confirmed it,
// so none is lost; one may be published twice (crash after publish, before delete), which
// consumers absorb by deduplicating on the event id.
package outbox

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jmoiron/sqlx"

	"github.com/order-system/order-system/pkg/events"
	"github.com/order-system/order-system/pkg/logger"
)

// Table is the outbox table in the service's schema. Each producing service creates it in its
// own migrations:
//
//	CREATE TABLE outbox (
//	    id            bigserial PRIMARY KEY,
//	    event_id      uuid NOT NULL UNIQUE,
//	    routing_key   text NOT NULL,
//	    body          bytea NOT NULL,
//	    request_id    text NOT NULL DEFAULT '',
//	    created_at    timestamptz NOT NULL DEFAULT now(),
//	    claimed_until timestamptz
//	);
const Table = "outbox"

// Channel is the LISTEN/NOTIFY channel that wakes the relay after a commit.
const Channel = "outbox"

// Write stores e in the outbox within tx. The NOTIFY is delivered only if tx commits, so the
// relay wakes exactly when there is something new to publish.
func Write(ctx context.Context, tx *sqlx.Tx, e events.Envelope) error {
	body, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("marshal event: %w", err)
	}
	if _, err := tx.ExecContext(ctx,
		`INSERT INTO outbox (event_id, routing_key, body, request_id) VALUES ($1, $2, $3, $4)`,
		e.ID, e.Type, body, logger.RequestID(ctx)); err != nil {
		return fmt.Errorf("insert outbox event: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `SELECT pg_notify($1, '')`, Channel); err != nil {
		return fmt.Errorf("notify outbox: %w", err)
	}
	return nil
}
