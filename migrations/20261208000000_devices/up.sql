-- VPN devices. The private key is sealed by the portal (XChaCha20-Poly1305 under the session
-- keys, bound to the device id) before it gets here. Lookups are always by owner and id.
-- Inserts take a transaction-scoped advisory lock on the owner, so "count the owner's devices,
-- then insert" is one step across every process and the per-account limit holds.
CREATE TABLE devices (
    id uuid PRIMARY KEY,
    user_id uuid NOT NULL,
    name text NOT NULL,
    public_key bytea NOT NULL CHECK (octet_length(public_key) = 32),
    sealed_private_key bytea NOT NULL,
    slot integer NOT NULL CHECK (slot >= 0),
    address_v4 text COLLATE "C" NOT NULL,
    address_v6 text COLLATE "C" NOT NULL,
    created_at timestamptz NOT NULL
);
CREATE INDEX devices_user_id_idx ON devices (user_id, created_at, id);

-- Tunnel address slots: a row is a slot held by a device. A claim inserts the lowest free slot
-- under a transaction-scoped advisory lock, so two claims never get one slot.
CREATE TABLE address_slots (
    slot integer PRIMARY KEY CHECK (slot >= 0),
    device_id uuid NOT NULL
);
