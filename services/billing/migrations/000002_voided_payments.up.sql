-- A payment id can be voided before it was ever paid: the order service does this when it
-- gives up on an order whose payment outcome it never learned. The stored 'voided' outcome
-- makes any later payment call with that id a no-op, so a late retry cannot charge an order
-- that was already reported as failed.
ALTER TABLE payments DROP CONSTRAINT payments_status_check;
ALTER TABLE payments ADD CONSTRAINT payments_status_check CHECK (status IN ('completed', 'insufficient_funds', 'voided'));
