ALTER TABLE accounts DROP COLUMN locked;
