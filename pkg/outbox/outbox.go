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

// Row is an event encoded for the outbox table.
type Row struct {
	EventID    string
	RoutingKey string
	Body       []byte
	RequestID  string
}

// NewRow encodes e, tagging it with the request id of ctx so that the consumer's logs can be
// correlated with the request that caused the event.
func NewRow(ctx context.Context, e events.Envelope) (Row, error) {
	body, err := json.Marshal(e)
	if err != nil {
		return Row{}, fmt.Errorf("marshal event: %w", err)
	}
	return Row{EventID: e.ID, RoutingKey: e.Type, Body: body, RequestID: logger.RequestID(ctx)}, nil
}

// Write stores e in the outbox within tx; the caller wakes its relay once tx committed.
func Write(ctx context.Context, tx *sqlx.Tx, e events.Envelope) error {
	r, err := NewRow(ctx, e)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx,
		`INSERT INTO outbox (event_id, routing_key, body, request_id) VALUES ($1, $2, $3, $4)`,
		r.EventID, r.RoutingKey, r.Body, r.RequestID); err != nil {
		return fmt.Errorf("insert outbox event: %w", err)
	}
	return nil
}
