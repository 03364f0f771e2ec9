//! SQLite backend: one file, WAL mode, a busy timeout, and write
//! transactions that take the lock when they begin (`BEGIN IMMEDIATE`), so
//! concurrent requests to one embedded server are serialised, not failed.

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;

use super::Backend;

super::sql::impl_sql_tx!(SqliteTx, sqlx::Sqlite, sqlx::sqlite::SqliteRow, "", "");

pub struct SqliteStore {
    pool: SqlitePool,
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

impl SqliteStore {
    pub async fn connect(
        url: &str,
        migrate: bool,
        bounds: &super::PoolSettings,
    ) -> anyhow::Result<Self> {
        let opts = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // The audit log is the product: a committed event survives a
            // power cut.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(15))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(bounds.max_connections.unwrap_or(8))
            .acquire_timeout(bounds.acquire_timeout)
            .connect_with(opts)
            .await?;
        if migrate {
            MIGRATOR.run(&pool).await?;
        }
        Ok(Self { pool })
    }
}

// On SQLite a write transaction takes the write lock when it begins, so it
// never fails half-way on a lock upgrade; a deferred transaction in WAL mode
// reads one snapshot. On PostgreSQL the snapshot is REPEATABLE READ.
super::sql::impl_sql_store!(
    SqliteStore,
    SqliteTx,
    backend = Backend::Sqlite,
    write = Some("BEGIN IMMEDIATE"),
    snapshot = None::<&str>
);
