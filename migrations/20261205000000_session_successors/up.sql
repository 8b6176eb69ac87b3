-- A rotation retires a session's row and names the row that replaced it: `successor` is that
-- row's key (the SHA-256 of the new id), NULL while the row is live. Concurrent rotations of one
-- session agree on one successor (`UPDATE … WHERE successor IS NULL`), and a logout deletes the
-- session under every id by following the pointers. It replaces the `superseded` flag; rows that
-- flag retired name no successor and could only lead nowhere, so they go (they were at most
-- seconds from the end of their grace period).
DELETE FROM sessions WHERE superseded;
ALTER TABLE sessions
    DROP COLUMN superseded,
    ADD COLUMN successor bytea CHECK (octet_length(successor) = 32);
