-- Every committed change to an account is announced on the channel `phaze_accounts`, so that
-- portal processes can cache accounts by id (crates/store-postgres/src/account_cache.rs): the
-- payload is the id of an updated or deleted row, or `*` when the table is truncated. NOTIFY is
-- transactional: listeners hear of a change when, and only if, it commits. Inserts need no
-- announcement: a missing account is never cached.
CREATE FUNCTION phaze_account_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('phaze_accounts', OLD.id::text);
    RETURN NULL;
END
$$;

CREATE FUNCTION phaze_accounts_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('phaze_accounts', '*');
    RETURN NULL;
END
$$;

CREATE TRIGGER accounts_changed AFTER UPDATE OR DELETE ON accounts
    FOR EACH ROW EXECUTE FUNCTION phaze_account_changed();
CREATE TRIGGER accounts_truncated AFTER TRUNCATE ON accounts
    FOR EACH STATEMENT EXECUTE FUNCTION phaze_accounts_truncated();
