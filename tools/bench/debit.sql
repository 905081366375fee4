-- One debit as billing does it: a conditional balance update and a ledger row, in one
-- transaction. pgbench runs it as the reference line for make bench.
\set uid random(1, 1000)
BEGIN;
UPDATE accounts SET balance = balance - 1 WHERE user_id = :uid AND balance >= 1;
INSERT INTO entries (user_id, amount) VALUES (:uid, 1);
END;
