-- The access key id of root access keys deposited in a credential (an
-- identifier, not a secret), so the review can ask IAM when it was last
-- used.
ALTER TABLE credentials ADD COLUMN access_key_id TEXT;
