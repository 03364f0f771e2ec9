//! Rotations of a credential's root access keys.

use async_trait::async_trait;

use super::sql::SqlTx;
use super::*;
use crate::domain::states::RotationState;

#[async_trait]
pub trait RotationStore: Send {
    async fn insert_key_rotation(&mut self, r: &KeyRotationRow) -> Result<()>;
    /// The rotation in progress for a credential, if any.
    async fn open_key_rotation(&mut self, credential_id: &str) -> Result<Option<KeyRotationRow>>;
    /// The credentials with a rotation in progress (no lock).
    async fn open_key_rotation_ids(&mut self) -> Result<Vec<String>>;
    /// Move a rotation from `from` to `to`, only if it is still at `from`.
    async fn advance_key_rotation(
        &mut self,
        id: &str,
        from: RotationState,
        to: RotationState,
        new_key_id: Option<&str>,
        at: i64,
    ) -> Result<bool>;
}

#[async_trait]
impl RotationStore for SqlTx {
    async fn insert_key_rotation(&mut self, r: &KeyRotationRow) -> Result<()> {
        self.sql(
            "INSERT INTO key_rotations (id, credential_id, state, old_key_id, new_key_id, started_by, started_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&r.id)
        .bind(&r.credential_id)
        .bind(r.state.as_str())
        .bind(&r.old_key_id)
        .bind(&r.new_key_id)
        .bind(&r.started_by)
        .bind(r.started_at)
        .bind(r.updated_at)
        .execute(self)
        .await?;
        Ok(())
    }

    async fn open_key_rotation(&mut self, credential_id: &str) -> Result<Option<KeyRotationRow>> {
        let row = self
            .locked("SELECT * FROM key_rotations WHERE credential_id = $1 AND state <> 'done'")
            .bind(credential_id)
            .fetch_optional(self)
            .await?;
        let Some(r) = row else { return Ok(None) };
        Ok(Some(KeyRotationRow {
            id: r.try_get("id")?,
            credential_id: r.try_get("credential_id")?,
            state: r.state("state")?,
            old_key_id: r.try_get("old_key_id")?,
            new_key_id: r.try_get("new_key_id")?,
            started_by: r.try_get("started_by")?,
            started_at: r.try_get("started_at")?,
            updated_at: r.try_get("updated_at")?,
        }))
    }

    async fn open_key_rotation_ids(&mut self) -> Result<Vec<String>> {
        let rows = self
            .sql("SELECT credential_id FROM key_rotations WHERE state <> 'done'")
            .fetch_all(self)
            .await?;
        rows.iter().map(|r| r.try_get("credential_id")).collect()
    }

    async fn advance_key_rotation(
        &mut self,
        id: &str,
        from: RotationState,
        to: RotationState,
        new_key_id: Option<&str>,
        at: i64,
    ) -> Result<bool> {
        let r = self.sql(
            "UPDATE key_rotations SET state = $1, new_key_id = COALESCE($2, new_key_id), updated_at = $3 WHERE id = $4 AND state = $5",
        )
        .bind(to.as_str())
        .bind(new_key_id)
        .bind(at)
        .bind(id)
        .bind(from.as_str())
        .execute(self)
        .await?;
        Ok(r.rows_affected() == 1)
    }
}
