-- A balance is at most the largest amount the API accepts, so every balance prints as an
-- amount and no sum of deposits can overflow bigint. NOT VALID: enforced from now on, without
-- refusing to start on an older database where many deposits took a balance above it.
ALTER TABLE accounts ADD CONSTRAINT accounts_balance_max CHECK (balance <= 99999999999999) NOT VALID;
