-- The TOTP code each decision was made with (spent: the replay guard has
-- moved past its step). A release re-verifies every counted decision's
-- code against the custodian's seed, which the database cannot open, so a
-- database writer cannot make up decisions.
ALTER TABLE decisions ADD COLUMN totp_code TEXT;
ALTER TABLE policy_change_decisions ADD COLUMN totp_code TEXT;
