-- A stored "no account" must stay stored, for the reason the up migration gives; refuse to
-- go back while there are any. Without them every payment names an account again, so the
-- foreign key validates.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM payments WHERE status = 'account_not_found') THEN
        RAISE EXCEPTION 'payments hold account_not_found outcomes; this migration cannot be undone without losing them';
    END IF;
END $$;
ALTER TABLE payments DROP CONSTRAINT payments_status_check;
ALTER TABLE payments ADD CONSTRAINT payments_status_check CHECK (status IN ('completed', 'insufficient_funds', 'voided'));
ALTER TABLE payments ADD CONSTRAINT payments_user_id_fkey FOREIGN KEY (user_id) REFERENCES accounts (user_id);
