-- A registration is pending until its own link is used: the link's token row carries the address
-- and the password hash chosen with it, and the account is created only when the link is used.
-- `subject` is what a token is about (`email:<address>` for a registration, `user:<uuid>` for an
-- account): the partial unique index keeps one unused token per purpose and subject, and
-- `PgTokens::issue` replaces the older one in the same statement (`ON CONFLICT … DO UPDATE`), so a
-- new registration of an address kills the older link even when processes race. Rows written
-- before this migration have no subject and are left as they are until they expire.
ALTER TABLE tokens
    ADD COLUMN subject text COLLATE "C",
    ADD COLUMN email text COLLATE "C",
    ADD COLUMN password_hash text,
    ADD CONSTRAINT tokens_registration_whole CHECK ((email IS NULL) = (password_hash IS NULL));
CREATE UNIQUE INDEX tokens_live_subject_key ON tokens (purpose, subject) WHERE used_at IS NULL;
