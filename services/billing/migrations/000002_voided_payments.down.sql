DELETE FROM payments WHERE status = 'voided';
ALTER TABLE payments DROP CONSTRAINT payments_status_check;
ALTER TABLE payments ADD CONSTRAINT payments_status_check CHECK (status IN ('completed', 'insufficient_funds'));
