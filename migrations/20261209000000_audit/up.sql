-- The audit log (phaze-audit): one row per entry, a keyed hash chain in `prev` and `mac`.
-- Appends take a transaction-scoped advisory lock, read the last row and insert the next, so
-- concurrent appends from every process keep one chain without gaps. Rows are never updated:
-- the trigger refuses it, so an edit needs the table owner, and `phaze-portal audit verify`
-- still finds it by the MAC.
CREATE TABLE audit_log (
    seq bigint PRIMARY KEY CHECK (seq >= 1),
    at timestamptz NOT NULL,
    actor uuid,
    action text COLLATE "C" NOT NULL,
    subject uuid,
    client text,
    detail text NOT NULL,
    prev text COLLATE "C" NOT NULL,
    mac text COLLATE "C" NOT NULL
);
CREATE INDEX audit_log_actor_idx ON audit_log (actor, seq);
CREATE INDEX audit_log_subject_idx ON audit_log (subject, seq);
CREATE INDEX audit_log_action_idx ON audit_log (action, seq);

CREATE FUNCTION audit_log_no_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END;
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_no_update();
