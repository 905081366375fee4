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

	"github.com/order-system/order-system/pkg/database"
	"github.com/order-system/order-system/pkg/logger"
	"github.com/order-system/order-system/pkg/tracing"
)

// Table is the outbox table in the service's schema.
const Table = "outbox"

// Schema creates Table. Each producing service creates it so in its own migrations (a
// migration, once applied, is history and keeps its own text); the package's tests use it.
const Schema = `CREATE TABLE outbox (
    id            bigserial PRIMARY KEY,
    event_id      uuid NOT NULL UNIQUE,
    routing_key   text NOT NULL,
    body          bytea NOT NULL,
    request_id    text NOT NULL DEFAULT '',
    traceparent   text NOT NULL DEFAULT '',
    tracestate    text NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL DEFAULT now(),
    claimed_until timestamptz
);`

// insertColumns are the columns a writer fills; the others take their defaults.
const insertColumns = "event_id, routing_key, body, request_id, traceparent, tracestate"

// rowValues are a Row's values as named parameters (Row.Params).
const rowValues = "@event_id, @event_topic, @event_body, @event_request_id, @event_traceparent, @event_tracestate"

// InsertSelect returns an INSERT of one Row for each row of source (a table, or a WITH query
// of the caller's statement), with the Row's values as the named parameters of Row.Params
// (database.Named). A state change and its event can so be one statement: one round trip,
// one transaction.
func InsertSelect(source string) string {
	return "INSERT INTO outbox (" + insertColumns + ") SELECT " + rowValues + " FROM " + source
}

// Row is an event encoded for the outbox table.
type Row struct {
	EventID   string
	Topic     string // the event type, which routes it (the routing_key column)
	Body      []byte
	RequestID string
	// TraceParent and TraceState are the W3C trace context of the span that wrote the event
	// (empty without one): the relay's publish span continues that trace.
	TraceParent string
	TraceState  string
}

// Params are the row's values as InsertSelect's parameters.
func (r Row) Params() database.Params {
	return database.Params{"event_id": r.EventID, "event_topic": r.Topic, "event_body": r.Body,
		"event_request_id": r.RequestID, "event_traceparent": r.TraceParent, "event_tracestate": r.TraceState}
}

// insert stores one Row.
var insert = database.Named(`INSERT INTO outbox (` + insertColumns + `) VALUES (` + rowValues + `)`)

// Event is what the outbox keeps: an event with an id and a topic, stored as its JSON
// encoding. The services' event envelope implements it.
type Event interface {
	EventID() string
	EventTopic() string
}

// NewRow encodes e, tagging it with the request id and the trace context of ctx, so that the
// consumer's logs and spans can be correlated with the request that caused the event.
func NewRow(ctx context.Context, e Event) (Row, error) {
	body, err := json.Marshal(e)
	if err != nil {
		return Row{}, fmt.Errorf("marshal event: %w", err)
	}
	tc := tracing.ContextOf(ctx)
	return Row{EventID: e.EventID(), Topic: e.EventTopic(), Body: body, RequestID: logger.RequestID(ctx), TraceParent: tc.TraceParent, TraceState: tc.TraceState}, nil
}

// Write stores e in the outbox within tx; the caller wakes its relay once tx committed.
func Write(ctx context.Context, tx *sqlx.Tx, e Event) error {
	r, err := NewRow(ctx, e)
	if err != nil {
		return err
	}
	args, err := insert.Args(r.Params())
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, insert.SQL(), args...); err != nil {
		return fmt.Errorf("insert outbox event: %w", err)
	}
	return nil
}
