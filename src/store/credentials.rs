//! Credentials and their versions.

use async_trait::async_trait;

use super::sql::{Row, SqlTx};
use super::*;

#[async_trait]
pub trait CredentialStore: Send {
    async fn insert_credential(&mut self, c: &CredentialRow) -> Result<()>;
    async fn credential_by_name(&mut self, name: &str) -> Result<Option<CredentialRow>>;
    async fn credential_by_id(&mut self, id: &str) -> Result<Option<CredentialRow>>;
    async fn credentials(&mut self) -> Result<Vec<CredentialRow>>;
    async fn insert_version(&mut self, v: &VersionRow) -> Result<()>;
    async fn version(&mut self, credential_id: &str, version: i64) -> Result<Option<VersionRow>>;
    async fn versions(&mut self, credential_id: &str) -> Result<Vec<VersionRow>>;
    /// Make `version` current and clear `exposed`, only if it is the next
    /// version; false if another deposit won.
    async fn advance_credential_version(&mut self, id: &str, version: i64, at: i64)
        -> Result<bool>;
    async fn mark_exposed(&mut self, id: &str, at: i64) -> Result<()>;
    async fn set_access_key_id(&mut self, id: &str, key: Option<&str>) -> Result<()>;
    /// Record a rotation reminder for a credential exposed since before
    /// `before`, only if the last reminder is older than `before`; false if
    /// it is not due or another process sent it.
    async fn mark_reminded(&mut self, id: &str, at: i64, before: i64) -> Result<bool>;
    /// Point a version at its re-wrapped envelope, only if it still points
    /// at `old_ref`.
    async fn set_version_location(
        &mut self,
        credential_id: &str,
        version: i64,
        old_ref: &str,
        new_ref: &str,
        key_id: &str,
    ) -> Result<bool>;
    /// Move a credential to another policy, only if it is still under `from`.
    async fn set_credential_policy(
        &mut self,
        id: &str,
        from: &str,
        to: &str,
        at: i64,
        seal: &str,
    ) -> Result<bool>;
}

#[async_trait]
impl CredentialStore for SqlTx {
    async fn insert_credential(&mut self, c: &CredentialRow) -> Result<()> {
        self.sql(
            "INSERT INTO credentials (id, name, account_id, policy, current_version, exposed, exposed_at, \
             last_released_at, created_at, created_by, updated_at, access_key_id, drill, policy_seal) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(&c.id)
        .bind(&c.name)
        .bind(&c.account_id)
        .bind(&c.policy)
        .bind(c.current_version)
        .bind(c.exposed)
        .bind(c.exposed_at)
        .bind(c.last_released_at)
        .bind(c.created_at)
        .bind(&c.created_by)
        .bind(c.updated_at)
        .bind(&c.access_key_id)
        .bind(c.drill)
        .bind(&c.policy_seal)
        .execute(self)
        .await?;
        Ok(())
    }

    async fn credential_by_name(&mut self, name: &str) -> Result<Option<CredentialRow>> {
        let row = self
            .locked("SELECT * FROM credentials WHERE name = $1")
            .bind(name)
            .fetch_optional(self)
            .await?;
        row.as_ref().map(credential_from).transpose()
    }

    async fn credential_by_id(&mut self, id: &str) -> Result<Option<CredentialRow>> {
        let row = self
            .locked("SELECT * FROM credentials WHERE id = $1")
            .bind(id)
            .fetch_optional(self)
            .await?;
        row.as_ref().map(credential_from).transpose()
    }

    async fn credentials(&mut self) -> Result<Vec<CredentialRow>> {
        let rows = self
            .sql("SELECT * FROM credentials ORDER BY name")
            .fetch_all(self)
            .await?;
        rows.iter().map(credential_from).collect()
    }

    async fn insert_version(&mut self, v: &VersionRow) -> Result<()> {
        self.sql(
            "INSERT INTO credential_versions (credential_id, version, secret_store, secret_ref, key_id, \
             field_names, created_at, created_by, recovery_set, recovery_wrap, recovery_envelope) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&v.credential_id)
        .bind(v.version)
        .bind(&v.secret_store)
        .bind(&v.secret_ref)
        .bind(&v.key_id)
        .bind(super::sql::json_list(&v.field_names))
        .bind(v.created_at)
        .bind(&v.created_by)
        .bind(&v.recovery_set)
        .bind(&v.recovery_wrap)
        .bind(&v.recovery_envelope)
        .execute(self)
        .await?;
        Ok(())
    }

    async fn version(&mut self, credential_id: &str, version: i64) -> Result<Option<VersionRow>> {
        let row = self
            .sql("SELECT * FROM credential_versions WHERE credential_id = $1 AND version = $2")
            .bind(credential_id)
            .bind(version)
            .fetch_optional(self)
            .await?;
        row.as_ref().map(version_from).transpose()
    }

    async fn versions(&mut self, credential_id: &str) -> Result<Vec<VersionRow>> {
        let rows = self
            .sql("SELECT * FROM credential_versions WHERE credential_id = $1 ORDER BY version")
            .bind(credential_id)
            .fetch_all(self)
            .await?;
        rows.iter().map(version_from).collect()
    }

    async fn advance_credential_version(
        &mut self,
        id: &str,
        version: i64,
        at: i64,
    ) -> Result<bool> {
        let r = self.sql(
            "UPDATE credentials SET current_version = $1, exposed = FALSE, exposed_at = NULL, updated_at = $2 \
             WHERE id = $3 AND current_version = $1 - 1",
        )
        .bind(version)
        .bind(at)
        .bind(id)
        .execute(self)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn mark_exposed(&mut self, id: &str, at: i64) -> Result<()> {
        self.sql(
            "UPDATE credentials SET exposed = TRUE, exposed_at = COALESCE(exposed_at, $1), \
             last_released_at = $1, updated_at = $1 WHERE id = $2",
        )
        .bind(at)
        .bind(id)
        .execute(self)
        .await?;
        Ok(())
    }

    async fn set_access_key_id(&mut self, id: &str, key: Option<&str>) -> Result<()> {
        self.sql("UPDATE credentials SET access_key_id = $1 WHERE id = $2")
            .bind(key)
            .bind(id)
            .execute(self)
            .await?;
        Ok(())
    }

    async fn mark_reminded(&mut self, id: &str, at: i64, before: i64) -> Result<bool> {
        let r = self.sql(
            "UPDATE credentials SET reminded_at = $1 WHERE id = $2 AND exposed AND exposed_at <= $3 \
             AND (reminded_at IS NULL OR reminded_at < $3)",
        )
        .bind(at)
        .bind(id)
        .bind(before)
        .execute(self)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn set_version_location(
        &mut self,
        credential_id: &str,
        version: i64,
        old_ref: &str,
        new_ref: &str,
        key_id: &str,
    ) -> Result<bool> {
        let r = self
            .sql(
                "UPDATE credential_versions SET secret_ref = $1, key_id = $2 \
             WHERE credential_id = $3 AND version = $4 AND secret_ref = $5",
            )
            .bind(new_ref)
            .bind(key_id)
            .bind(credential_id)
            .bind(version)
            .bind(old_ref)
            .execute(self)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn set_credential_policy(
        &mut self,
        id: &str,
        from: &str,
        to: &str,
        at: i64,
        seal: &str,
    ) -> Result<bool> {
        let r = self.sql("UPDATE credentials SET policy = $1, updated_at = $2, policy_seal = $5 WHERE id = $3 AND policy = $4")
            .bind(to)
            .bind(at)
            .bind(id)
            .bind(from)
            .bind(seal)
            .execute(self)
            .await?;
        Ok(r.rows_affected() == 1)
    }
}

pub(super) fn credential_from(r: &Row) -> Result<CredentialRow> {
    Ok(CredentialRow {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        account_id: r.try_get("account_id")?,
        policy: r.try_get("policy")?,
        current_version: r.try_get("current_version")?,
        exposed: r.try_get("exposed")?,
        exposed_at: r.try_get("exposed_at")?,
        last_released_at: r.try_get("last_released_at")?,
        created_at: r.try_get("created_at")?,
        created_by: r.try_get("created_by")?,
        updated_at: r.try_get("updated_at")?,
        access_key_id: r.try_get("access_key_id")?,
        drill: r.try_get("drill")?,
        reminded_at: r.try_get("reminded_at")?,
        policy_seal: r.try_get("policy_seal")?,
    })
}

pub(super) fn version_from(r: &Row) -> Result<VersionRow> {
    Ok(VersionRow {
        credential_id: r.try_get("credential_id")?,
        version: r.try_get("version")?,
        secret_store: r.try_get("secret_store")?,
        secret_ref: r.try_get("secret_ref")?,
        key_id: r.try_get("key_id")?,
        field_names: super::sql::parse_list(&r.try_get::<String, _>("field_names")?)?,
        created_at: r.try_get("created_at")?,
        created_by: r.try_get("created_by")?,
        recovery_set: r.try_get("recovery_set")?,
        recovery_wrap: r.try_get("recovery_wrap")?,
        recovery_envelope: r.try_get("recovery_envelope")?,
    })
}
