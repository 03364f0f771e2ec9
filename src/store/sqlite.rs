//! SQLite: one file, WAL mode, a busy timeout, and write transactions that
//! take the lock when they begin (`BEGIN IMMEDIATE`, see `sql.rs`), so
//! concurrent requests to one embedded server are serialised, not failed.

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::sql::Pool;
use super::PoolSettings;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

pub(super) async fn open(url: &str, migrate: bool, bounds: &PoolSettings) -> anyhow::Result<Pool> {
    let opts = SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // The audit log is the product: a committed event survives a power
        // cut.
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
    Ok(Pool::Sqlite(pool))
}
