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
}

#[async_trait]
impl ServiceKeyStore for SqlTx {
    async fn service_key(&mut self, name: &str) -> Result<Option<ServiceKeyRow>> {
        let r = self
            .sql("SELECT * FROM service_keys WHERE name = $1")
            .bind(name)
            .fetch_optional(self)
            .await?;
        r.map(|r| {
            Ok(ServiceKeyRow {
                name: r.try_get("name")?,
                envelope: r.try_get("envelope")?,
                public_key: r.try_get("public_key")?,
                created_at: r.try_get("created_at")?,
            })
        })
        .transpose()
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
