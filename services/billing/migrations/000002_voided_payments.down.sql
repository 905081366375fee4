-- A voided payment id must stay voided: forgetting it would let a late payment call charge
-- an order that was reported as failed. Refuse to go back while there are any.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM payments WHERE status = 'voided') THEN
        RAISE EXCEPTION 'payments hold voided outcomes; this migration cannot be undone without losing them';
    END IF;
END $$;
ALTER TABLE payments DROP CONSTRAINT payments_status_check;
ALTER TABLE payments ADD CONSTRAINT payments_status_check CHECK (status IN ('completed', 'insufficient_funds'));
