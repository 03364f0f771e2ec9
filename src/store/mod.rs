//! The storage port. Every use case runs in one transaction (`Store::begin`)
//! that also appends its audit event, so an action that cannot be audited
//! does not happen.
//!
//! Concurrency: on SQLite a transaction takes the write lock when it begins
//! (`BEGIN IMMEDIATE`), so use cases are serialised; on PostgreSQL the rows a
//! use case decides on are read `FOR UPDATE`, always in the order request →
//! custodian → audit head, and every state change is conditional
//! (`… WHERE state = 'approved' AND release_deadline > now`).

use async_trait::async_trait;

mod alerts;
mod audit;
mod backend;
mod credentials;
mod custodians;
mod gauges;
mod org;
mod policies;
mod postgres;
mod recovery;
mod requests;
mod rotations;
mod rows;
mod service_keys;
mod sessions;
mod sinks;
mod sql;
mod sqlite;
mod tokens;
mod watch;
mod webauthn;

pub use alerts::AlertStore;
pub use audit::AuditStore;
pub use credentials::CredentialStore;
pub use custodians::CustodianStore;
pub use gauges::GaugeStore;
pub use org::{OrgAccountRow, OrgStateRow, OrgStore, RootRequestRow};
pub use policies::PolicyStore;
pub use recovery::RecoveryStore;
pub use requests::RequestStore;
pub use rotations::RotationStore;
pub use rows::*;
pub use service_keys::{ServiceKeyRow, ServiceKeyStore};
pub use sessions::SessionStore;
pub use sinks::SinkStore;
pub use tokens::TokenStore;
pub use watch::{
    BrokeredSessionRow, ReleaseOfAccount, RootActivityRow, RootFindingRow, TrailCursorRow,
    TrailFileRow, WatchStore,
};
pub use webauthn::WebauthnStore;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule was violated; carries the constraint or table.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The database cannot be reached or timed out.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Every pooled connection stayed in use for the acquire timeout.
    #[error("database busy: no free connection in the pool")]
    Busy,
    #[error("database error: {0}")]
    Other(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(
                db.constraint()
                    .map(str::to_owned)
                    .unwrap_or_else(|| db.message().to_owned()),
            ),
            sqlx::Error::PoolTimedOut => StoreError::Busy,
            sqlx::Error::PoolClosed | sqlx::Error::Io(_) => StoreError::Unavailable(e.to_string()),
            sqlx::Error::Database(db) if db.message().contains("database is locked") => {
                StoreError::Unavailable(e.to_string())
            }
            _ => StoreError::Other(e.to_string()),
        }
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

#[async_trait]
pub trait Store: Send + Sync {
    fn backend(&self) -> Backend;
    /// Begin a read-write transaction (on SQLite it takes the write lock
    /// at once, so it never fails half-way on an upgrade).
    async fn begin(&self) -> Result<Box<dyn Tx>>;
    /// Begin a transaction that only reads (on SQLite it does not wait for
    /// writers). Writing in it is a bug.
    async fn begin_read(&self) -> Result<Box<dyn Tx>>;
    /// Begin a read-only transaction that sees one consistent snapshot for
    /// its whole life (for verifying the audit chain while writers go on).
    /// Only `audit_head_peek` and `audit_events` may be used in it.
    async fn begin_snapshot(&self) -> Result<Box<dyn Tx>>;
    async fn ping(&self) -> Result<()>;
    /// Envelopes of the database secret store, written outside the use
    /// case's transaction under a fresh id (an orphan left by a failed
    /// deposit is inert ciphertext).
    async fn put_envelope(
        &self,
        id: &str,
        credential_id: &str,
        version: i64,
        envelope: &[u8],
    ) -> Result<()>;
    async fn get_envelope(&self, id: &str, credential_id: &str) -> Result<Option<Vec<u8>>>;
    /// Swap an envelope for a re-wrapped one, only if it still holds `old`.
    async fn replace_envelope(
        &self,
        id: &str,
        credential_id: &str,
        old: &[u8],
        new: &[u8],
    ) -> Result<bool>;
    async fn close(&self);
}

/// One use case's transaction: every aggregate's reads and writes, then
/// commit or roll back. Bring the aggregate traits into scope with
/// `use crate::store::prelude::*`.
#[async_trait]
pub trait Tx:
    CustodianStore
    + CredentialStore
    + RequestStore
    + RotationStore
    + AlertStore
    + PolicyStore
    + AuditStore
    + SinkStore
    + RecoveryStore
    + TokenStore
    + SessionStore
    + ServiceKeyStore
    + WebauthnStore
    + GaugeStore
    + OrgStore
    + WatchStore
    + Send
{
    async fn commit(self: Box<Self>) -> Result<()>;
    async fn rollback(self: Box<Self>) -> Result<()>;
}

/// The storage traits, for the code that runs use cases.
pub mod prelude {
    pub use super::{
        AlertStore, AuditStore, CredentialStore, CustodianStore, GaugeStore, OrgStore, PolicyStore,
        RecoveryStore, RequestStore, RotationStore, ServiceKeyStore, SessionStore, SinkStore,
        Store, TokenStore, Tx, WatchStore, WebauthnStore,
    };
}

/// The connection pool's bounds.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// `None`: 8 on SQLite (one writer at a time anyway), 16 on PostgreSQL.
    pub max_connections: Option<u32>,
    /// How long a use case waits for a connection before it is refused
    /// with `database_busy`.
    pub acquire_timeout: std::time::Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            max_connections: None,
            acquire_timeout: std::time::Duration::from_secs(10),
        }
    }
}

/// Open the store a database URL names (`sqlite:` or `postgres:`) and
/// apply its migrations unless told not to.
pub async fn connect(url: &str, migrate: bool) -> anyhow::Result<std::sync::Arc<dyn Store>> {
    connect_with(url, migrate, &PoolSettings::default()).await
}

/// `connect`, with the pool bounded as configured.
pub async fn connect_with(
    url: &str,
    migrate: bool,
    pool: &PoolSettings,
) -> anyhow::Result<std::sync::Arc<dyn Store>> {
    let pool = if url.starts_with("sqlite:") {
        sqlite::open(url, migrate, pool).await?
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        postgres::open(url, migrate, pool).await?
    } else {
        anyhow::bail!("database URL must start with sqlite: or postgres:")
    };
    Ok(std::sync::Arc::new(backend::SqlStore::new(pool)))
}
