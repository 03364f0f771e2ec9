//! PostgreSQL backend: several replicas share one database. The rows a use
//! case decides on are locked `FOR UPDATE`, state changes are conditional,
//! and the audit chain head is one locked row, so every promise holds across
//! replicas.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::PgPoolOptions;
use sqlx::{PgPool, Row};

use super::{Backend, Result, Store, Tx};

super::sql::impl_sql_tx!(PgTx, sqlx::Postgres, sqlx::postgres::PgRow, " FOR UPDATE");

pub struct PgStore {
    pool: PgPool,
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

impl PgStore {
    pub async fn connect(url: &str, migrate: bool) -> anyhow::Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await?;
        if migrate {
            MIGRATOR.run(&pool).await?;
        }
        Ok(Self { pool })
    }

    pub async fn migrate(&self) -> anyhow::Result<()> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }
}

#[async_trait]
impl Store for PgStore {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    async fn begin(&self) -> Result<Box<dyn Tx>> {
        Ok(Box::new(PgTx::new(self.pool.begin().await?)))
    }

    async fn begin_read(&self) -> Result<Box<dyn Tx>> {
        Ok(Box::new(PgTx::new(self.pool.begin().await?)))
    }

    async fn begin_snapshot(&self) -> Result<Box<dyn Tx>> {
        let tx = self
            .pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .await?;
        Ok(Box::new(PgTx::new(tx)))
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn put_envelope(
        &self,
        id: &str,
        credential_id: &str,
        version: i64,
        envelope: &[u8],
    ) -> Result<()> {
        sqlx::query("INSERT INTO secret_envelopes (id, credential_id, version, envelope) VALUES ($1, $2, $3, $4)")
            .bind(id)
            .bind(credential_id)
            .bind(version)
            .bind(envelope)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn get_envelope(&self, id: &str, credential_id: &str) -> Result<Option<Vec<u8>>> {
        let row = sqlx::query(
            "SELECT envelope FROM secret_envelopes WHERE id = $1 AND credential_id = $2",
        )
        .bind(id)
        .bind(credential_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| r.try_get("envelope")).transpose()?)
    }

    async fn replace_envelope(
        &self,
        id: &str,
        credential_id: &str,
        old: &[u8],
        new: &[u8],
    ) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE secret_envelopes SET envelope = $1 WHERE id = $2 AND credential_id = $3 AND envelope = $4",
        )
        .bind(new)
        .bind(id)
        .bind(credential_id)
        .bind(old)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn close(&self) {
        self.pool.close().await
    }
}
