-- An order's pay deadline: billing debits it only before then, and after it the reconciler
-- voids it, so that its Idempotency-Key (which lives a little longer) can never be reused
-- for a second order while the first may still be paid. Orders placed before this migration
-- get an hour from their creation: the default reconciler schedule's length, well inside
-- the default 24 h key lifetime.
ALTER TABLE orders ADD COLUMN pay_by timestamptz;
UPDATE orders SET pay_by = created_at + interval '1 hour';
ALTER TABLE orders ALTER COLUMN pay_by SET NOT NULL;
