-- An order is stored pending before billing is called and finished (completed or failed)
-- afterwards, in the same transaction as its outbox event.
CREATE TABLE orders (
    id              uuid PRIMARY KEY,
    user_id         uuid NOT NULL,
    email           text NOT NULL,
    price           bigint NOT NULL CHECK (price > 0),
    status          text NOT NULL CHECK (status IN ('pending', 'completed', 'failed')),
    failure_reason  text NOT NULL DEFAULT '',
    failure_message text NOT NULL DEFAULT '',
    -- The reconciler's bookkeeping for pending orders: how often billing was tried, and
    -- when the next try may start (also a lease: a replica that claims the order pushes it
    -- forward, so no other replica works on the order meanwhile).
    attempts        int NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX orders_pending ON orders (next_attempt_at) WHERE status = 'pending';

CREATE TABLE outbox (
    id            bigserial PRIMARY KEY,
    event_id      uuid NOT NULL UNIQUE,
    routing_key   text NOT NULL,
    body          bytea NOT NULL,
    request_id    text NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL DEFAULT now(),
    claimed_until timestamptz
);

CREATE TABLE idempotency_keys (
    scope        text NOT NULL,
    key          text NOT NULL,
    fingerprint  text NOT NULL,
    status_code  int,
    content_type text,
    body         bytea,
    locked_until timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_keys_expires_at ON idempotency_keys (expires_at);
