-- When the last rotation reminder for an exposed credential went out.
ALTER TABLE credentials ADD COLUMN reminded_at BIGINT;
