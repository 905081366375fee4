-- Billing is a ledger: an account's balance is a cache of the sum of its entries, kept in the
-- same transaction as every entry and never allowed below zero.
CREATE TABLE accounts (
    user_id    uuid PRIMARY KEY,
    balance    bigint NOT NULL DEFAULT 0 CHECK (balance >= 0),
    currency   text NOT NULL DEFAULT 'RUB',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Entries are immutable. operation_id is the payment id of a debit, or the deposit's id
-- (derived from its Idempotency-Key when there is one), so no operation applies twice.
CREATE TABLE entries (
    id            bigserial PRIMARY KEY,
    user_id       uuid NOT NULL REFERENCES accounts (user_id),
    type          text NOT NULL CHECK (type IN ('deposit', 'debit')),
    amount        bigint NOT NULL CHECK (amount > 0),
    balance_after bigint NOT NULL CHECK (balance_after >= 0),
    operation_id  uuid NOT NULL UNIQUE,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX entries_user_id ON entries (user_id, id DESC);

CREATE FUNCTION entries_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger entries are immutable';
END $$;
CREATE TRIGGER entries_immutable BEFORE UPDATE OR DELETE ON entries
    FOR EACH ROW EXECUTE FUNCTION entries_immutable();

-- One row per payment id: the stored outcome a repeated payment call returns.
CREATE TABLE payments (
    payment_id uuid PRIMARY KEY,
    user_id    uuid NOT NULL REFERENCES accounts (user_id),
    amount     bigint NOT NULL CHECK (amount > 0),
    status     text NOT NULL CHECK (status IN ('completed', 'insufficient_funds')),
    balance    bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
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
