ALTER TABLE accounts DROP CONSTRAINT accounts_balance_max;
