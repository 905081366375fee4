package outbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/order-system/order-system/pkg/database"
	"github.com/order-system/order-system/pkg/metrics"
	"github.com/order-system/order-system/pkg/retry"
	"github.com/order-system/order-system/pkg/tracing"
)

// Message is an event of the outbox as the relay hands it to a Publisher.
type Message struct {
	ID        string // the event id: consumers deduplicate by it
	Topic     string // the event type, which routes it
	Body      []byte
	RequestID string // the request that caused the event, for the consumers' logs
	// Trace is the trace context of the span that wrote the event: the publish continues
	// that trace.
	Trace tracing.Context
}

// Publisher publishes a batch of messages to the broker. It returns nil only once the broker
// confirmed all of them; when it confirmed all but some it could not route (no queue for
// their topic), an error that is (errors.As) an *UnroutableError naming those.
type Publisher interface {
	Publish(ctx context.Context, msgs []Message) error
}

// UnroutableError names the messages of a batch the broker could not route; every other
// message of the batch was confirmed. Err is the publisher's own error, if any.
type UnroutableError struct {
	MessageIDs []string
	Err        error
}

func (e *UnroutableError) Error() string {
	return fmt.Sprintf("%d messages unroutable: %v", len(e.MessageIDs), e.Err)
}

func (e *UnroutableError) Unwrap() error { return e.Err }

// RelayConfig tunes the relay; zero values take the defaults.
type RelayConfig struct {
	BatchSize int           // default 100
	Poll      time.Duration // fallback poll when no wake-up arrives; default 1 s
	Reserve   time.Duration // how long a batch is reserved for the relay publishing it; default 30 s
	// Gather is how long the relay waits after a wake-up before reserving a batch, so that events
	// committed around the same time go out as one batch with one round of confirms;
	// default 5 ms. Under load it turns many one-event publishes, each waiting for the
	// broker's disk, into a few larger ones.
	Gather time.Duration
}

// Relay publishes outbox events. Several relays (replicas) may run at once: a batch is
// reserved with FOR UPDATE SKIP LOCKED for a while, so no two relays publish the same rows at
// the same time, and rows whose relay died can be reserved again when the reservation ends.
//
// The process that writes an event wakes its own relay after the commit (Wake), so an event
// is published within milliseconds; the poll picks up whatever a replica that died left
// behind. (LISTEN/NOTIFY would also wake the other replicas, which have nothing to do with
// the event, at the price of a listening connection per relay and of a database-wide lock
// that every notifying transaction holds through its commit.)
type Relay struct {
	db        *sqlx.DB
	pub       Publisher
	log       *slog.Logger
	cfg       RelayConfig
	published prometheus.Counter
	failures  prometheus.Counter
	reserve   *database.Stmt
	remove    *database.Stmt
	wake      chan struct{}
}

// NewRelay returns a relay over db's outbox table; its metrics are registered on reg.
func NewRelay(db *sqlx.DB, pub Publisher, cfg RelayConfig, log *slog.Logger, reg prometheus.Registerer) *Relay {
	if cfg.BatchSize == 0 {
		cfg.BatchSize = 100
	}
	if cfg.Poll == 0 {
		cfg.Poll = time.Second
	}
	if cfg.Reserve == 0 {
		cfg.Reserve = 30 * time.Second
	}
	if cfg.Gather == 0 {
		cfg.Gather = 5 * time.Millisecond
	}
	r := &Relay{
		db: db, pub: pub, log: log, cfg: cfg, wake: make(chan struct{}, 1),
		published: prometheus.NewCounter(prometheus.CounterOpts{Name: "outbox_events_published_total", Help: "Outbox events confirmed by the broker."}),
		failures:  prometheus.NewCounter(prometheus.CounterOpts{Name: "outbox_publish_failures_total", Help: "Outbox batches that failed to publish."}),
		// The reservation commits at once: no transaction or row lock is held while talking to
		// the broker; the reservation keeps other relays off these rows meanwhile.
		reserve: database.Prepare(db, `
			UPDATE outbox SET claimed_until = now() + $2::interval
			WHERE id IN (
				SELECT id FROM outbox
				WHERE claimed_until IS NULL OR claimed_until < now()
				ORDER BY id LIMIT $1
				FOR UPDATE SKIP LOCKED)
			RETURNING id, event_id, routing_key, body, request_id, traceparent, tracestate`),
		remove: database.Prepare(db, `DELETE FROM outbox WHERE id = ANY($1)`),
	}
	// One scan of a table that holds only what is not published yet: empty but for the
	// last milliseconds' events while the broker takes them.
	backlog := metrics.NewQuery("outbox", []metrics.Gauge{
		{Name: "outbox_backlog", Help: "Events waiting in the outbox (unpublished)."},
		{Name: "outbox_oldest_age_seconds", Help: "Age of the oldest unpublished event; 0 when there is none."},
	}, func(ctx context.Context) ([]float64, error) {
		var v struct {
			N   float64 `db:"n"`
			Age float64 `db:"age"`
		}
		err := db.GetContext(ctx, &v, `SELECT count(*) AS n, COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0) AS age FROM outbox`)
		return []float64{v.N, v.Age}, err
	})
	reg.MustRegister(r.published, r.failures, backlog)
	return r
}

// Wake makes the relay look for events now, without blocking: the writer calls it after
// committing an event.
func (r *Relay) Wake() {
	select {
	case r.wake <- struct{}{}:
	default: // a wake-up is pending already
	}
}

// Run publishes until ctx ends: after every wake-up, every poll tick, and straight away
// again while batches come back full. Failures are retried forever with jittered backoff. On
// the way out it flushes what is left, briefly, so a clean stop does not leave events
// waiting for the next start.
func (r *Relay) Run(ctx context.Context) error {
	defer r.flush(ctx)
	tick := time.NewTicker(r.cfg.Poll)
	defer tick.Stop()
	failures := 0
	for {
		n, err := r.RelayOnce(ctx)
		var unroutable *UnroutableError
		if errors.As(err, &unroutable) {
			// Not the broker's fault: the returned events are parked until the next poll
			// and the rest of the outbox goes on.
			r.failures.Inc()
			r.log.WarnContext(ctx, "outbox events unroutable, retried after the poll interval", "event_ids", unroutable.MessageIDs)
			err = nil
		}
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			r.failures.Inc()
			wait := retry.Backoff(failures)
			failures++
			r.log.WarnContext(ctx, "outbox relay failed", "err", err, "retry_in", wait.String())
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(wait):
			}
			continue
		case n == r.cfg.BatchSize:
			failures = 0
			continue // more may be waiting
		}
		failures = 0
		select {
		case <-ctx.Done():
			return nil
		case <-r.wake:
			time.Sleep(r.cfg.Gather)
			select { // the batch about to be reserved covers the commits of the gather too
			case <-r.wake:
			default:
			}
		case <-tick.C:
		}
	}
}

func (r *Relay) flush(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
	defer cancel()
	for {
		n, err := r.RelayOnce(ctx)
		if err != nil {
			r.log.WarnContext(ctx, "outbox flush incomplete, the rest is published after restart", "err", err)
			return
		}
		if n < r.cfg.BatchSize {
			return
		}
	}
}

type row struct {
	ID          int64  `db:"id"`
	EventID     string `db:"event_id"`
	Topic       string `db:"routing_key"`
	Body        []byte `db:"body"`
	RequestID   string `db:"request_id"`
	TraceParent string `db:"traceparent"`
	TraceState  string `db:"tracestate"`
}

// RelayOnce reserves one batch, publishes it and deletes it once confirmed. It returns how many
// events it published.
func (r *Relay) RelayOnce(ctx context.Context) (int, error) {
	var rows []row
	err := r.reserve.SelectContext(ctx, &rows, r.cfg.BatchSize, database.Interval(r.cfg.Reserve))
	if err != nil {
		return 0, fmt.Errorf("reserve outbox batch: %w", err)
	}
	if len(rows) == 0 {
		return 0, nil
	}
	msgs := make([]Message, len(rows))
	ids := make([]int64, len(rows))
	for i, rw := range rows {
		msgs[i] = Message{ID: rw.EventID, Topic: rw.Topic, Body: rw.Body, RequestID: rw.RequestID,
			Trace: tracing.Context{TraceParent: rw.TraceParent, TraceState: rw.TraceState}}
		ids[i] = rw.ID
	}
	err = r.pub.Publish(ctx, msgs)
	var unroutable *UnroutableError
	if errors.As(err, &unroutable) {
		return r.deleteConfirmedParkReturned(ctx, rows, unroutable)
	}
	if err != nil {
		// End the reservation so the next attempt (here or in another replica) retries at once.
		if _, rerr := r.db.ExecContext(context.WithoutCancel(ctx), `UPDATE outbox SET claimed_until = NULL WHERE id = ANY($1)`, pq.Array(ids)); rerr != nil {
			r.log.WarnContext(ctx, "release outbox reservation", "err", rerr)
		}
		return 0, err
	}
	n, err := r.delete(ctx, ids)
	if err != nil {
		// Published but not deleted: the rows are published again after the reservation, and
		// consumers drop the duplicates by event id.
		return 0, err
	}
	r.published.Add(float64(n))
	return n, nil
}

// deleteConfirmedParkReturned handles a batch the broker confirmed except for the events it
// returned: the confirmed ones are deleted, the returned ones parked until the next poll, so that an
// event without a queue neither holds up nor re-sends the events around it. It returns how
// many were published, and the returned events as the error.
func (r *Relay) deleteConfirmedParkReturned(ctx context.Context, rows []row, unroutable *UnroutableError) (int, error) {
	returned := make(map[string]bool, len(unroutable.MessageIDs))
	for _, id := range unroutable.MessageIDs {
		returned[id] = true
	}
	var confirmed, parked []int64
	for _, rw := range rows {
		if returned[rw.EventID] {
			parked = append(parked, rw.ID)
		} else {
			confirmed = append(confirmed, rw.ID)
		}
	}
	if _, err := r.db.ExecContext(context.WithoutCancel(ctx), `UPDATE outbox SET claimed_until = now() + $2::interval WHERE id = ANY($1)`,
		pq.Array(parked), database.Interval(r.cfg.Poll)); err != nil {
		r.log.WarnContext(ctx, "park unroutable outbox events", "err", err) // the lease ends later instead
	}
	n, err := r.delete(ctx, confirmed)
	if err != nil {
		return 0, err
	}
	r.published.Add(float64(n))
	return n, unroutable
}

// delete removes published events; it runs to its end even if ctx is cancelled, since the
// broker has them already.
func (r *Relay) delete(ctx context.Context, ids []int64) (int, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	if _, err := r.remove.ExecContext(context.WithoutCancel(ctx), pq.Array(ids)); err != nil {
		return 0, fmt.Errorf("delete published events: %w", err)
	}
	return len(ids), nil
}
