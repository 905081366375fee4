-- "No account" is a payment id's first definitive answer like any other: the order service
-- fails the order for good on it, so a later call with the id (a reconciler that claimed the
-- order before it failed, another replica, a keyed retry) must get the same answer instead
-- of debiting an account opened in the meantime. Storing that answer needs a payments row
-- for a user without an account, hence no foreign key to accounts: a payment's user is the
-- user it named, not necessarily an account holder. Entries keep their foreign key, so money
-- still moves only on accounts that exist. Existing rows all satisfy the new constraints.
ALTER TABLE payments DROP CONSTRAINT payments_user_id_fkey;
ALTER TABLE payments DROP CONSTRAINT payments_status_check;
ALTER TABLE payments ADD CONSTRAINT payments_status_check
    CHECK (status IN ('completed', 'insufficient_funds', 'voided', 'account_not_found'));
