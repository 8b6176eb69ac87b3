DELETE FROM tokens WHERE purpose = 'recovery_code';
ALTER TABLE tokens DROP CONSTRAINT tokens_purpose_check;
ALTER TABLE tokens ADD CONSTRAINT tokens_purpose_check
    CHECK (purpose IN ('email_verification', 'password_reset'));
ALTER TABLE accounts
    DROP CONSTRAINT accounts_two_factor_whole,
    DROP COLUMN recovery_codes,
    DROP COLUMN totp_enabled_at,
    DROP COLUMN totp_secret;
