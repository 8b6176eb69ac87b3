-- An admin can suspend an account (no login, no session) and lift it again.
ALTER TABLE accounts ADD COLUMN locked boolean NOT NULL DEFAULT false;
