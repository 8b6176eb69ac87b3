DROP INDEX tokens_live_subject_key;
ALTER TABLE tokens
    DROP CONSTRAINT tokens_registration_whole,
    DROP COLUMN password_hash,
    DROP COLUMN email,
    DROP COLUMN subject;
