-- Two-factor authentication. An account's TOTP secret is sealed by the portal (XChaCha20-Poly1305
-- under the session keys, bound to the account id) before it gets here; `totp_enabled_at` is NULL
-- while an enrolment is pending. `recovery_codes` holds the keyed hashes (32 bytes each, one
-- after the other) of the current set's unused recovery codes; each is also a single-use row in
-- `tokens` (purpose `recovery_code`), whose `consume` settles two processes spending one code.
ALTER TABLE accounts
    ADD COLUMN totp_secret bytea,
    ADD COLUMN totp_enabled_at timestamptz,
    ADD COLUMN recovery_codes bytea,
    ADD CONSTRAINT accounts_two_factor_whole CHECK (
        (totp_secret IS NULL) = (recovery_codes IS NULL)
        AND (totp_enabled_at IS NULL OR totp_secret IS NOT NULL)
        AND octet_length(recovery_codes) % 32 = 0
    );

ALTER TABLE tokens DROP CONSTRAINT tokens_purpose_check;
ALTER TABLE tokens ADD CONSTRAINT tokens_purpose_check
    CHECK (purpose IN ('email_verification', 'password_reset', 'recovery_code'));
