-- Rotation of root access keys deposited in a credential, one step at a
-- time and resumable: the row records how far it got.
CREATE TABLE key_rotations (
    id              TEXT PRIMARY KEY,
    credential_id   TEXT NOT NULL REFERENCES credentials (id),
    state           TEXT NOT NULL CHECK (state IN ('started', 'deposited', 'verified', 'done')),
    old_key_id      TEXT NOT NULL,
    new_key_id      TEXT,
    started_by      TEXT NOT NULL,
    started_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);

-- At most one rotation in progress per credential.
CREATE UNIQUE INDEX key_rotations_one_open ON key_rotations (credential_id) WHERE state <> 'done';
