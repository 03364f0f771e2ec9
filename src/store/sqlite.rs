//! SQLite backend: one file, WAL mode, a busy timeout, and write
//! transactions that take the lock when they begin (`BEGIN IMMEDIATE`), so
//! concurrent requests to one embedded server are serialised, not failed.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

use super::{Backend, Result, Store, Tx};

super::sql::impl_sql_tx!(SqliteTx, sqlx::Sqlite, sqlx::sqlite::SqliteRow, "");

pub struct SqliteStore {
    pool: SqlitePool,
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

impl SqliteStore {
    pub async fn connect(url: &str, migrate: bool) -> anyhow::Result<Self> {
        let opts = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // The audit log is the product: a committed event survives a
            // power cut.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(15))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(20))
            .connect_with(opts)
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
impl Store for SqliteStore {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    async fn begin(&self) -> Result<Box<dyn Tx>> {
        Ok(Box::new(SqliteTx::new(
            self.pool.begin_with("BEGIN IMMEDIATE").await?,
        )))
    }

    async fn begin_read(&self) -> Result<Box<dyn Tx>> {
        Ok(Box::new(SqliteTx::new(self.pool.begin().await?)))
    }

    async fn begin_snapshot(&self) -> Result<Box<dyn Tx>> {
        // A deferred transaction in WAL mode reads one snapshot, taken at
        // its first read.
        Ok(Box::new(SqliteTx::new(self.pool.begin().await?)))
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
