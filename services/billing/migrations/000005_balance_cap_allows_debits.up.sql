-- Migration 3 capped balances with a CHECK added NOT VALID, so that accounts from before the
-- cap could stay above it. But a CHECK holds for every row an UPDATE writes: such an account
-- could no longer be debited, its payments failing on the very cap they would have brought
-- it closer to. The cap only has to stop a balance from growing past it (that is what keeps
-- sums from overflowing), and only a trigger sees the old balance next to the new one.
-- The error keeps the constraint's code and name, so callers tell it apart as before.
ALTER TABLE accounts DROP CONSTRAINT accounts_balance_max;

CREATE FUNCTION accounts_balance_max() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.balance > 99999999999999 AND (TG_OP = 'INSERT' OR NEW.balance > OLD.balance) THEN
        RAISE EXCEPTION 'balance % would be above 99999999999999', NEW.balance
            USING ERRCODE = 'check_violation', CONSTRAINT = 'accounts_balance_max';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER accounts_balance_max BEFORE INSERT OR UPDATE OF balance ON accounts
    FOR EACH ROW EXECUTE FUNCTION accounts_balance_max();
