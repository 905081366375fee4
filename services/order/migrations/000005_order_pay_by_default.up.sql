-- Expand/contract: the release before 000004 inserts orders without pay_by. With the column
-- NOT NULL and no default, its pods failed every order while a rollout ran both releases side
-- by side, and after a rollback to it. The default gives such an order the hour the
-- backfill of 000004 gives the orders before it; this release always sets pay_by itself.
ALTER TABLE orders ALTER COLUMN pay_by SET DEFAULT now() + interval '1 hour';
