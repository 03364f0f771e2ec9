//! PostgreSQL backend: several replicas share one database. The rows a use
//! case decides on are locked `FOR UPDATE`, state changes are conditional,
//! and the audit chain head is one locked row, so every promise holds across
//! replicas.

use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;

use super::Backend;

super::sql::impl_sql_tx!(
    PgTx,
    sqlx::Postgres,
    sqlx::postgres::PgRow,
    " FOR UPDATE",
    " FOR UPDATE SKIP LOCKED"
);

pub struct PgStore {
    pool: PgPool,
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

impl PgStore {
    pub async fn connect(
        url: &str,
        migrate: bool,
        bounds: &super::PoolSettings,
    ) -> anyhow::Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(bounds.max_connections.unwrap_or(16))
            .acquire_timeout(bounds.acquire_timeout)
            .connect(url)
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
    PgStore,
    PgTx,
    backend = Backend::Postgres,
    write = None::<&str>,
    snapshot = Some("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
);
