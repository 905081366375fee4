-- Notifications sent to users, one per finished order. event_id is the inbox: a redelivered
-- event hits the unique constraint and changes nothing.
CREATE TABLE notifications (
    id         uuid PRIMARY KEY,
    event_id   uuid NOT NULL UNIQUE,
    user_id    uuid NOT NULL,
    order_id   uuid NOT NULL,
    email      text NOT NULL,
    type       text NOT NULL CHECK (type IN ('success', 'failure')),
    message    text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX notifications_user_id ON notifications (user_id, created_at DESC);
