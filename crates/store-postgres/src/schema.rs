//! The tables of `migrations/` as diesel sees them. Written by hand to match the SQL (the build
//! has no `diesel print-schema` step); the test `migrated_tables_have_the_declared_columns` pins
//! every column's SQL type against the migrated database, and the contract tests use every one.

diesel::table! {
    /// Customer accounts; `email_index` has a unique index.
    accounts (id) {
        /// Permanent id.
        id -> Uuid,
        /// The normalised address, only on rows from before sealing (`NULL` once sealed).
        email -> Nullable<Text>,
        /// Whether the address was verified.
        email_verified -> Bool,
        /// PHC string of the password hash.
        password_hash -> Text,
        /// The display name, only on rows from before sealing (`NULL` once sealed).
        display_name -> Nullable<Text>,
        /// Operators' flag.
        is_admin -> Bool,
        /// Suspended by an admin.
        locked -> Bool,
        /// Registration time.
        created_at -> Timestamptz,
        /// Last password change.
        password_changed_at -> Timestamptz,
        /// The sealed TOTP secret, while two-factor authentication is on or being enrolled.
        totp_secret -> Nullable<Bytea>,
        /// When the enrolment was completed; `NULL` while pending.
        totp_enabled_at -> Nullable<Timestamptz>,
        /// Keyed hashes of the unused recovery codes, 32 bytes each.
        recovery_codes -> Nullable<Bytea>,
        /// The keyed blind index of the address, 32 bytes; `NULL` on a row from before sealing.
        email_index -> Nullable<Bytea>,
        /// The sealed address.
        email_sealed -> Nullable<Bytea>,
        /// The sealed display name.
        name_sealed -> Nullable<Bytea>,
    }
}

diesel::table! {
    /// Single-use tokens, keyed by their HMAC.
    tokens (hash) {
        /// HMAC-SHA256 of the token, 32 bytes.
        hash -> Bytea,
        /// `email_verification` or `password_reset`.
        purpose -> Text,
        /// Owner.
        user_id -> Uuid,
        /// Dead at and after this instant.
        expires_at -> Timestamptz,
        /// When it was consumed (or presented after expiry); `NULL` while usable.
        used_at -> Nullable<Timestamptz>,
        /// What the token is about (`email:<address index>`, `user:<uuid>`, `code:<hash>`): one
        /// unused token per purpose and subject. `NULL` on rows from before the column existed.
        subject -> Nullable<Text>,
        /// A pending registration's password hash (PHC string).
        password_hash -> Nullable<Text>,
        /// A pending registration's address index, 32 bytes.
        email_index -> Nullable<Bytea>,
        /// A pending registration's sealed address.
        email_sealed -> Nullable<Bytea>,
    }
}

diesel::table! {
    /// Sessions, keyed by the SHA-256 of the session id.
    sessions (key) {
        /// SHA-256 of the session id, 32 bytes.
        key -> Bytea,
        /// Owner, as UTF-8 bytes.
        user_id -> Bytea,
        /// Dead after this instant.
        expires_at -> Timestamptz,
        /// The sealed session data.
        sealed -> Bytea,
        /// Set when a rotation retired the row: the key of the row that replaced it, 32 bytes.
        successor -> Nullable<Bytea>,
    }
}

diesel::table! {
    /// Sliding-window logs, one per limit key.
    rate_limits (key) {
        /// The limit key (an HMAC), 32 bytes.
        key -> Bytea,
        /// Instants of allowed events, Unix nanoseconds.
        log -> Array<Int8>,
        /// After this instant every window the key was hit with sees an empty log.
        idle_after -> Timestamptz,
    }
}

diesel::table! {
    /// Webhook event ids: a claim, or applied.
    payment_events (id) {
        /// Stripe's event id.
        id -> Text,
        /// The holder's token while claimed.
        claim_token -> Nullable<Text>,
        /// The claim's lease end.
        claimed_until -> Nullable<Timestamptz>,
        /// When the event was applied.
        applied_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    /// One subscription record per account.
    subscriptions (user_id) {
        /// The account.
        user_id -> Uuid,
        /// Compare-and-set version, from 1.
        version -> Int8,
        /// Stripe customer id.
        customer -> Nullable<Text>,
        /// Stripe subscription id.
        subscription -> Nullable<Text>,
        /// `none`, `active`, `past_due` or `canceled`.
        status -> Text,
        /// Stripe price id.
        price -> Nullable<Text>,
        /// Unix seconds.
        current_period_end -> Nullable<Int8>,
        /// `created` of the last event that set the state.
        last_event_created -> Nullable<Int8>,
        /// Id of that event.
        last_event_id -> Nullable<Text>,
    }
}

diesel::table! {
    /// VPN devices.
    devices (id) {
        /// Permanent id.
        id -> Uuid,
        /// Owner.
        user_id -> Uuid,
        /// Name as typed.
        name -> Text,
        /// x25519 public key, 32 bytes.
        public_key -> Bytea,
        /// The sealed private key.
        sealed_private_key -> Bytea,
        /// Pool slot.
        slot -> Int4,
        /// Tunnel IPv4 address.
        address_v4 -> Text,
        /// Tunnel IPv6 address.
        address_v6 -> Text,
        /// When it was added.
        created_at -> Timestamptz,
    }
}

diesel::table! {
    /// Tunnel address slots held by devices.
    address_slots (slot) {
        /// The slot.
        slot -> Int4,
        /// Its holder.
        device_id -> Uuid,
    }
}

diesel::table! {
    /// The audit log: a keyed hash chain.
    audit_log (seq) {
        /// Position, from 1.
        seq -> Int8,
        /// When.
        at -> Timestamptz,
        /// Who (none: an operator at the command line).
        actor -> Nullable<Uuid>,
        /// What.
        action -> Text,
        /// Whose data.
        subject -> Nullable<Uuid>,
        /// From where.
        client -> Nullable<Text>,
        /// A short note.
        detail -> Text,
        /// The previous entry's MAC.
        prev -> Text,
        /// This entry's MAC.
        mac -> Text,
    }
}
