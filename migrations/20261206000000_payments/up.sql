-- Payments (crates/payments): webhook event ids claimed before any effect, and one subscription
-- record per account.
--
-- `payment_events`: a row is a claim (`claim_token` and `claimed_until` set, `applied_at` NULL)
-- or an applied id (`applied_at` set, the claim columns NULL). `PgProcessedEvents::claim` is one
-- `INSERT … ON CONFLICT (id) DO UPDATE … WHERE applied_at IS NULL AND claimed_until <= now`: of
-- any number of concurrent claims exactly one inserts or takes over the row.
CREATE TABLE payment_events (
    id text COLLATE "C" PRIMARY KEY,
    claim_token text COLLATE "C",
    claimed_until timestamptz,
    applied_at timestamptz,
    CONSTRAINT payment_events_claim_or_applied CHECK (
        (applied_at IS NULL AND claim_token IS NOT NULL AND claimed_until IS NOT NULL)
        OR (applied_at IS NOT NULL AND claim_token IS NULL AND claimed_until IS NULL)
    )
);

-- `subscriptions`: written by compare-and-set on `version` (`PgSubscriptions::put`); a Stripe
-- customer belongs to one account (unique). `last_event_*` is the stamp of the last event that set
-- the state, so an older event never rolls it back.
CREATE TABLE subscriptions (
    user_id uuid PRIMARY KEY,
    version bigint NOT NULL CHECK (version > 0),
    customer text COLLATE "C" UNIQUE,
    subscription text COLLATE "C",
    status text NOT NULL CHECK (status IN ('none', 'active', 'past_due', 'canceled')),
    price text,
    current_period_end bigint,
    last_event_created bigint,
    last_event_id text COLLATE "C",
    CONSTRAINT subscriptions_stamp_whole CHECK ((last_event_created IS NULL) = (last_event_id IS NULL))
);
