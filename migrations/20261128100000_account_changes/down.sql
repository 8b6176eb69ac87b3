DROP TRIGGER accounts_truncated ON accounts;
DROP TRIGGER accounts_changed ON accounts;
DROP FUNCTION phaze_accounts_truncated();
DROP FUNCTION phaze_account_changed();
