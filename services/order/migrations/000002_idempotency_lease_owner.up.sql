-- Each lease on a key names its request, so that only that request stores its answer or
-- frees the key.
ALTER TABLE idempotency_keys ADD COLUMN lease_owner uuid;
