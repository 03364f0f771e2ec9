//! PostgreSQL: several replicas share one database. The rows a use case
//! decides on are locked `FOR UPDATE`, state changes are conditional, and
//! the audit chain head is one locked row, so every promise holds across
//! replicas.

use sqlx::postgres::PgPoolOptions;

use super::sql::Pool;
use super::PoolSettings;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

pub(super) async fn open(url: &str, migrate: bool, bounds: &PoolSettings) -> anyhow::Result<Pool> {
    let pool = PgPoolOptions::new()
        .max_connections(bounds.max_connections.unwrap_or(16))
        .acquire_timeout(bounds.acquire_timeout)
        .connect(url)
        .await?;
    if migrate {
        MIGRATOR.run(&pool).await?;
    }
    Ok(Pool::Postgres(pool))
}
