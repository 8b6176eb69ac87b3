-- Phaze's PostgreSQL store: accounts, single-use tokens, sessions and rate-limit logs.
-- Tables are created unqualified, so they land in the first schema of the search path: the
-- configured `store.postgres.schema`, or `public`.

-- Accounts. The email is the login identifier, normalised (trimmed, lower-cased) by the portal
-- before it gets here; the unique index is what makes concurrent registrations of one address
-- admit exactly one. `COLLATE "C"` compares bytes: lookups are by equality only, and a byte-wise
-- index cannot be corrupted by a libc collation change on an OS upgrade.
CREATE TABLE accounts (
    id uuid PRIMARY KEY,
    email text COLLATE "C" NOT NULL,
    email_verified boolean NOT NULL,
    password_hash text NOT NULL,
    display_name text NOT NULL,
    is_admin boolean NOT NULL,
    created_at timestamptz NOT NULL,
    password_changed_at timestamptz NOT NULL
);
CREATE UNIQUE INDEX accounts_email_key ON accounts (email);

-- Verification and reset tokens, stored as their keyed hash. `consume` marks a token used in one
-- UPDATE (single use across every process); the purge deletes expired and used ones. No foreign
-- key to accounts: the token port stands alone, and a token of a deleted account can never be
-- consumed into anything.
CREATE TABLE tokens (
    hash bytea PRIMARY KEY CHECK (octet_length(hash) = 32),
    purpose text NOT NULL CHECK (purpose IN ('email_verification', 'password_reset')),
    user_id uuid NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at timestamptz
);
CREATE INDEX tokens_expires_at_idx ON tokens (expires_at);
CREATE INDEX tokens_used_at_idx ON tokens (used_at) WHERE used_at IS NOT NULL;

-- Sessions, for deployments without Redis. The key is the SHA-256 of the session id; everything
-- but the owner and the expiry is sealed by the portal. The owner is bytes (its UTF-8), because
-- the port's user id is any string and `text` cannot hold NUL.
CREATE TABLE sessions (
    key bytea PRIMARY KEY CHECK (octet_length(key) = 32),
    user_id bytea NOT NULL,
    expires_at timestamptz NOT NULL,
    superseded boolean NOT NULL,
    sealed bytea NOT NULL
);
CREATE INDEX sessions_user_id_idx ON sessions (user_id);
CREATE INDEX sessions_expires_at_idx ON sessions (expires_at);

-- Sliding-window logs, for deployments without Redis: one row per limit key (an HMAC), its log of
-- allowed events as Unix nanoseconds, and the instant after which no window it was hit with can
-- see any of them. Every hit rewrites the row; `idle_after` is deliberately not indexed, so those
-- updates stay HOT (heap-only), and the free space left by the fill factor keeps them on the row's
-- page. The purge, which runs every few minutes, scans the table instead.
CREATE TABLE rate_limits (
    key bytea PRIMARY KEY CHECK (octet_length(key) = 32),
    log bigint[] NOT NULL,
    idle_after timestamptz NOT NULL
) WITH (fillfactor = 70);
