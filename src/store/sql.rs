//! The SQL layer under the aggregates: one transaction type, one query
//! builder and one row type for both databases, so each aggregate's SQL is
//! written once in ordinary code.
//!
//! What differs between SQLite and PostgreSQL is all here and small:
//! - the statement that opens each kind of transaction (`begin_statement`);
//! - the row-lock clauses (`locked`, `skip_locked`), empty on SQLite, where
//!   a write transaction already holds the database's one write lock;
//! - which sqlx driver runs a statement (the `match` arms below).
//!
//! A value is bound, and a column read, only if both drivers can encode or
//! decode its Rust type (`Value`, `Column`), so a type one database cannot
//! store fails to compile rather than at runtime.

use sqlx::postgres::{PgArguments, PgRow};
use sqlx::sqlite::{SqliteArguments, SqliteRow};
use sqlx::{ColumnIndex, Decode, Encode, Postgres, SqlSafeStr, Sqlite, Transaction, Type};

use super::{Backend, Result, StoreError};

/// A Rust type both drivers can bind as a parameter.
pub(super) trait Value<'t>:
    Encode<'t, Sqlite> + Type<Sqlite> + Encode<'t, Postgres> + Type<Postgres>
{
}

impl<'t, T> Value<'t> for T where
    T: Encode<'t, Sqlite> + Type<Sqlite> + Encode<'t, Postgres> + Type<Postgres>
{
}

/// A Rust type both drivers can read from a column.
pub(super) trait Column:
    for<'r> Decode<'r, Sqlite> + Type<Sqlite> + for<'r> Decode<'r, Postgres> + Type<Postgres>
{
}

impl<T> Column for T where
    T: for<'r> Decode<'r, Sqlite> + Type<Sqlite> + for<'r> Decode<'r, Postgres> + Type<Postgres>
{
}

/// A column name or position, on either driver's rows.
pub(super) trait Index: ColumnIndex<SqliteRow> + ColumnIndex<PgRow> {}

impl<I: ColumnIndex<SqliteRow> + ColumnIndex<PgRow>> Index for I {}

/// A statement with its parameters, built for the transaction's database.
#[must_use = "a query does nothing until it is executed"]
pub(super) enum Query {
    Sqlite(sqlx::query::Query<'static, Sqlite, SqliteArguments>),
    Postgres(sqlx::query::Query<'static, Postgres, PgArguments>),
}

/// What a statement changed.
pub(super) struct Done {
    rows: u64,
}

impl Done {
    pub(super) fn rows_affected(&self) -> u64 {
        self.rows
    }
}

/// A row read by either driver.
pub(super) enum Row {
    Sqlite(SqliteRow),
    Postgres(PgRow),
}

impl Row {
    pub(super) fn try_get<T: Column, I: Index>(&self, index: I) -> Result<T> {
        use sqlx::Row as _;
        Ok(match self {
            Row::Sqlite(r) => r.try_get(index)?,
            Row::Postgres(r) => r.try_get(index)?,
        })
    }

    /// A state column, read into its closed set; any other value is
    /// refused, so a corrupted row is never acted on.
    pub(super) fn state<S: std::str::FromStr>(&self, column: &str) -> Result<S> {
        let value: String = self.try_get(column)?;
        value
            .parse()
            .map_err(|_| StoreError::Other(format!("corrupt {column} column: {value:?}")))
    }
}

/// One use case's transaction, on either database.
pub struct SqlTx {
    tx: Conn,
}

enum Conn {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

impl SqlTx {
    pub(super) fn sqlite(tx: Transaction<'static, Sqlite>) -> Self {
        SqlTx {
            tx: Conn::Sqlite(tx),
        }
    }

    pub(super) fn postgres(tx: Transaction<'static, Postgres>) -> Self {
        SqlTx {
            tx: Conn::Postgres(tx),
        }
    }

    fn backend(&self) -> Backend {
        match self.tx {
            Conn::Sqlite(_) => Backend::Sqlite,
            Conn::Postgres(_) => Backend::Postgres,
        }
    }

    /// A statement for this transaction's database.
    pub(super) fn sql(&self, sql: impl SqlSafeStr) -> Query {
        match self.backend() {
            Backend::Sqlite => Query::Sqlite(sqlx::query(sql)),
            Backend::Postgres => Query::Postgres(sqlx::query(sql)),
        }
    }

    /// A `SELECT` whose rows stay locked until commit (`FOR UPDATE`).
    pub(super) fn locked(&self, select: &'static str) -> Query {
        self.with_clause(select, " FOR UPDATE")
    }

    /// A `SELECT` that skips the rows another transaction holds
    /// (`FOR UPDATE SKIP LOCKED`).
    pub(super) fn skip_locked(&self, select: &'static str) -> Query {
        self.with_clause(select, " FOR UPDATE SKIP LOCKED")
    }

    fn with_clause(&self, select: &'static str, clause: &'static str) -> Query {
        match self.backend() {
            // The transaction holds the database's write lock already.
            Backend::Sqlite => self.sql(select),
            // Both parts are constants.
            Backend::Postgres => self.sql(sqlx::AssertSqlSafe(format!("{select}{clause}"))),
        }
    }

    pub(super) async fn commit(self) -> Result<()> {
        match self.tx {
            Conn::Sqlite(tx) => tx.commit().await?,
            Conn::Postgres(tx) => tx.commit().await?,
        }
        Ok(())
    }

    pub(super) async fn rollback(self) -> Result<()> {
        match self.tx {
            Conn::Sqlite(tx) => tx.rollback().await?,
            Conn::Postgres(tx) => tx.rollback().await?,
        }
        Ok(())
    }
}

fn mismatch() -> StoreError {
    StoreError::Other("a statement was built for the other database".into())
}

impl Query {
    pub(super) fn bind<'t, T: Value<'t> + Send>(self, value: T) -> Self {
        match self {
            Query::Sqlite(q) => Query::Sqlite(q.bind(value)),
            Query::Postgres(q) => Query::Postgres(q.bind(value)),
        }
    }

    pub(super) async fn execute(self, tx: &mut SqlTx) -> Result<Done> {
        let rows = match (self, &mut tx.tx) {
            (Query::Sqlite(q), Conn::Sqlite(c)) => q.execute(&mut **c).await?.rows_affected(),
            (Query::Postgres(q), Conn::Postgres(c)) => q.execute(&mut **c).await?.rows_affected(),
            _ => return Err(mismatch()),
        };
        Ok(Done { rows })
    }

    pub(super) async fn fetch_optional(self, tx: &mut SqlTx) -> Result<Option<Row>> {
        Ok(match (self, &mut tx.tx) {
            (Query::Sqlite(q), Conn::Sqlite(c)) => {
                q.fetch_optional(&mut **c).await?.map(Row::Sqlite)
            }
            (Query::Postgres(q), Conn::Postgres(c)) => {
                q.fetch_optional(&mut **c).await?.map(Row::Postgres)
            }
            _ => return Err(mismatch()),
        })
    }

    pub(super) async fn fetch_one(self, tx: &mut SqlTx) -> Result<Row> {
        Ok(match (self, &mut tx.tx) {
            (Query::Sqlite(q), Conn::Sqlite(c)) => Row::Sqlite(q.fetch_one(&mut **c).await?),
            (Query::Postgres(q), Conn::Postgres(c)) => Row::Postgres(q.fetch_one(&mut **c).await?),
            _ => return Err(mismatch()),
        })
    }

    pub(super) async fn fetch_all(self, tx: &mut SqlTx) -> Result<Vec<Row>> {
        Ok(match (self, &mut tx.tx) {
            (Query::Sqlite(q), Conn::Sqlite(c)) => q
                .fetch_all(&mut **c)
                .await?
                .into_iter()
                .map(Row::Sqlite)
                .collect(),
            (Query::Postgres(q), Conn::Postgres(c)) => q
                .fetch_all(&mut **c)
                .await?
                .into_iter()
                .map(Row::Postgres)
                .collect(),
            _ => return Err(mismatch()),
        })
    }
}

/// The pool of either database.
pub(super) enum Pool {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

/// Which kind of transaction a use case opens.
#[derive(Debug, Clone, Copy)]
pub(super) enum Begin {
    Write,
    Read,
    Snapshot,
}

/// The statement that opens a transaction (`None`: a plain `BEGIN`). On
/// SQLite a write transaction takes the write lock when it begins, so it
/// never fails half-way on a lock upgrade, and a deferred transaction in WAL
/// mode reads one snapshot; on PostgreSQL the snapshot is REPEATABLE READ.
fn begin_statement(backend: Backend, kind: Begin) -> Option<&'static str> {
    match (backend, kind) {
        (Backend::Sqlite, Begin::Write) => Some("BEGIN IMMEDIATE"),
        (Backend::Postgres, Begin::Snapshot) => {
            Some("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        }
        _ => None,
    }
}

impl Pool {
    pub(super) fn backend(&self) -> Backend {
        match self {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    pub(super) async fn begin(&self, kind: Begin) -> Result<SqlTx> {
        let statement = begin_statement(self.backend(), kind);
        Ok(match (self, statement) {
            (Pool::Sqlite(p), Some(s)) => SqlTx::sqlite(p.begin_with(s).await?),
            (Pool::Sqlite(p), None) => SqlTx::sqlite(p.begin().await?),
            (Pool::Postgres(p), Some(s)) => SqlTx::postgres(p.begin_with(s).await?),
            (Pool::Postgres(p), None) => SqlTx::postgres(p.begin().await?),
        })
    }

    pub(super) async fn ping(&self) -> Result<()> {
        match self {
            Pool::Sqlite(p) => {
                sqlx::query("SELECT 1").execute(p).await?;
            }
            Pool::Postgres(p) => {
                sqlx::query("SELECT 1").execute(p).await?;
            }
        }
        Ok(())
    }

    pub(super) async fn close(&self) {
        match self {
            Pool::Sqlite(p) => p.close().await,
            Pool::Postgres(p) => p.close().await,
        }
    }
}

pub(super) fn json_list(v: &[String]) -> String {
    serde_json::to_string(v).expect("a list of strings always serialises")
}

pub(super) fn parse_list(s: &str) -> Result<Vec<String>> {
    serde_json::from_str(s).map_err(|e| StoreError::Other(format!("corrupt list column: {e}")))
}
