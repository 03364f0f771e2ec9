-- Seals, signed with the audit key (which the database does not hold), of
-- what decides a request's quorum: which policy a credential is under, and
-- each policy version applied at runtime. A row written around the service
-- has no valid seal, and a request under it is refused (policy_unproven).
ALTER TABLE credentials ADD COLUMN policy_seal TEXT;
ALTER TABLE policy_versions ADD COLUMN seal TEXT;
