-- Only a database whose accounts are all still in the clear can go back: a sealed address
-- cannot be opened in SQL. Pending registrations are dropped, as on the way up.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM accounts WHERE email_index IS NOT NULL) THEN
        RAISE EXCEPTION 'accounts are sealed: this migration cannot be reverted';
    END IF;
END
$$;
DELETE FROM tokens WHERE email_index IS NOT NULL;
ALTER TABLE tokens
    DROP CONSTRAINT tokens_registration_whole,
    DROP COLUMN email_index,
    DROP COLUMN email_sealed,
    ADD COLUMN email text COLLATE "C",
    ADD CONSTRAINT tokens_registration_whole CHECK ((email IS NULL) = (password_hash IS NULL));
DROP TABLE key_checks;
DROP INDEX accounts_clear_idx;
DROP INDEX accounts_email_index_key;
ALTER TABLE accounts
    DROP CONSTRAINT accounts_sealed_or_clear,
    DROP COLUMN email_index,
    DROP COLUMN email_sealed,
    DROP COLUMN name_sealed,
    ALTER COLUMN email SET NOT NULL,
    ALTER COLUMN display_name SET NOT NULL;
