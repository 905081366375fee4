DROP TRIGGER accounts_balance_max ON accounts;
DROP FUNCTION accounts_balance_max;
ALTER TABLE accounts ADD CONSTRAINT accounts_balance_max CHECK (balance <= 99999999999999) NOT VALID;
