DROP TABLE idempotency_keys;
DROP TABLE payments;
DROP TABLE entries;
DROP FUNCTION entries_immutable;
DROP TABLE accounts;
