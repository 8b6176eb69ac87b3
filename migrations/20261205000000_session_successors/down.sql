ALTER TABLE sessions
    ADD COLUMN superseded boolean NOT NULL DEFAULT false;
UPDATE sessions SET superseded = successor IS NOT NULL;
ALTER TABLE sessions
    ALTER COLUMN superseded DROP DEFAULT,
    DROP COLUMN successor;
