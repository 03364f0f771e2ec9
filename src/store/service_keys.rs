//! The service's own signing keys, sealed, when the database keeps them
//! for every replica (`keys.signing_keys = "database"`).

use async_trait::async_trait;

use super::sql::SqlTx;
use super::*;

/// A sealed service key: the envelope (JSON) and the public key (hex).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceKeyRow {
    pub name: String,
    pub envelope: String,
    pub public_key: String,
    pub created_at: i64,
}

#[async_trait]
pub trait ServiceKeyStore: Send {
    async fn service_key(&mut self, name: &str) -> Result<Option<ServiceKeyRow>>;
    /// Keep `row` unless a key of that name is kept already; whether it was.
    async fn insert_service_key(&mut self, row: &ServiceKeyRow) -> Result<bool>;
    /// Every kept key, by name.
    async fn service_keys(&mut self) -> Result<Vec<ServiceKeyRow>>;
    /// Swap the envelope of `name` for `new` (the same key, re-wrapped)
    /// if it is still `old`; whether it was.
    async fn replace_service_key_envelope(
        &mut self,
        name: &str,
        old: &str,
        new: &str,
    ) -> Result<bool>;
}

fn row_of(r: &super::sql::Row) -> Result<ServiceKeyRow> {
    Ok(ServiceKeyRow {
        name: r.try_get("name")?,
        envelope: r.try_get("envelope")?,
        public_key: r.try_get("public_key")?,
        created_at: r.try_get("created_at")?,
    })
}

#[async_trait]
impl ServiceKeyStore for SqlTx {
    async fn service_key(&mut self, name: &str) -> Result<Option<ServiceKeyRow>> {
        let r = self
            .sql("SELECT * FROM service_keys WHERE name = $1")
            .bind(name)
            .fetch_optional(self)
            .await?;
        r.as_ref().map(row_of).transpose()
    }

    async fn service_keys(&mut self) -> Result<Vec<ServiceKeyRow>> {
        let rows = self
            .sql("SELECT * FROM service_keys ORDER BY name")
            .fetch_all(self)
            .await?;
        rows.iter().map(row_of).collect()
    }

    async fn replace_service_key_envelope(
        &mut self,
        name: &str,
        old: &str,
        new: &str,
    ) -> Result<bool> {
        let r = self
            .sql("UPDATE service_keys SET envelope = $1 WHERE name = $2 AND envelope = $3")
            .bind(new)
            .bind(name)
            .bind(old)
            .execute(self)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn insert_service_key(&mut self, row: &ServiceKeyRow) -> Result<bool> {
        let r = self
            .sql(
                "INSERT INTO service_keys (name, envelope, public_key, created_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO NOTHING",
            )
            .bind(&row.name)
            .bind(&row.envelope)
            .bind(&row.public_key)
            .bind(row.created_at)
            .execute(self)
            .await?;
        Ok(r.rows_affected() == 1)
    }
}
