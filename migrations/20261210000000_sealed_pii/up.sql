-- Addresses and display names are sealed by the portal before they reach the database
-- (crates/auth/src/pii.rs): an account row holds the keyed blind index of its address, which
-- the unique index keeps unique, and the sealed address and name. Rows written by earlier
-- versions keep `email` and `display_name` in the clear until the portal seals them (it does at
-- start, `AccountStore::seal_clear`); the check admits a row in exactly one of the two forms.
ALTER TABLE accounts
    ALTER COLUMN email DROP NOT NULL,
    ALTER COLUMN display_name DROP NOT NULL,
    ADD COLUMN email_index bytea CHECK (octet_length(email_index) = 32),
    ADD COLUMN email_sealed bytea,
    ADD COLUMN name_sealed bytea,
    ADD CONSTRAINT accounts_sealed_or_clear CHECK (
        (email_index IS NOT NULL AND email_sealed IS NOT NULL AND name_sealed IS NOT NULL
            AND email IS NULL AND display_name IS NULL)
        OR (email_index IS NULL AND email_sealed IS NULL AND name_sealed IS NULL
            AND email IS NOT NULL AND display_name IS NOT NULL)
    );
CREATE UNIQUE INDEX accounts_email_index_key ON accounts (email_index);
-- What the portal's start-up step looks for: empty once every row is sealed.
CREATE INDEX accounts_clear_idx ON accounts (id) WHERE email_index IS NULL;
-- The MAC of a constant under the email index key, kept by the first portal to start: a portal
-- with another key (a replaced token pepper) refuses to start instead of finding no account.
CREATE TABLE key_checks (
    name text PRIMARY KEY,
    value bytea NOT NULL CHECK (octet_length(value) = 32)
);

-- A pending registration's address is sealed too, and its subject is `email:<index>`. Links of
-- registrations pending at the upgrade held the address in the clear: they are dropped (the
-- owner registers again; such links live a day at most).
DELETE FROM tokens WHERE email IS NOT NULL;
ALTER TABLE tokens
    DROP CONSTRAINT tokens_registration_whole,
    DROP COLUMN email,
    ADD COLUMN email_index bytea CHECK (octet_length(email_index) = 32),
    ADD COLUMN email_sealed bytea,
    ADD CONSTRAINT tokens_registration_whole CHECK (
        (email_index IS NULL) = (password_hash IS NULL)
        AND (email_sealed IS NULL) = (password_hash IS NULL)
    );
