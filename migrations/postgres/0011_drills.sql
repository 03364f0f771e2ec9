-- A drill credential holds no real secret: releasing it exercises the
-- whole break-glass path of its policy.
ALTER TABLE credentials ADD COLUMN drill BOOLEAN NOT NULL DEFAULT FALSE;
