//! The `Store` itself: transactions for use cases, and the envelopes of the
//! database secret store, which are written outside any use case's
//! transaction.

use async_trait::async_trait;

use super::sql::{Begin, Pool, SqlTx};
use super::{Backend, Result, Store, Tx};

pub(super) struct SqlStore {
    pool: Pool,
}

impl SqlStore {
    pub(super) fn new(pool: Pool) -> Self {
        SqlStore { pool }
    }
}

#[async_trait]
impl Tx for SqlTx {
    async fn commit(self: Box<Self>) -> Result<()> {
        SqlTx::commit(*self).await
    }

    async fn rollback(self: Box<Self>) -> Result<()> {
        SqlTx::rollback(*self).await
    }
}

#[async_trait]
impl Store for SqlStore {
    fn backend(&self) -> Backend {
        self.pool.backend()
    }

    async fn begin(&self) -> Result<Box<dyn Tx>> {
        Ok(Box::new(self.pool.begin(Begin::Write).await?))
    }

    async fn begin_read(&self) -> Result<Box<dyn Tx>> {
        Ok(Box::new(self.pool.begin(Begin::Read).await?))
    }

    async fn begin_snapshot(&self) -> Result<Box<dyn Tx>> {
        Ok(Box::new(self.pool.begin(Begin::Snapshot).await?))
    }

    async fn ping(&self) -> Result<()> {
        self.pool.ping().await
    }

    async fn put_envelope(
        &self,
        id: &str,
        credential_id: &str,
        version: i64,
        envelope: &[u8],
    ) -> Result<()> {
        let mut tx = self.pool.begin(Begin::Write).await?;
        tx.sql(
            "INSERT INTO secret_envelopes (id, credential_id, version, envelope) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(id)
        .bind(credential_id)
        .bind(version)
        .bind(envelope)
        .execute(&mut tx)
        .await?;
        tx.commit().await
    }

    async fn get_envelope(&self, id: &str, credential_id: &str) -> Result<Option<Vec<u8>>> {
        let mut tx = self.pool.begin(Begin::Read).await?;
        let row = tx
            .sql("SELECT envelope FROM secret_envelopes WHERE id = $1 AND credential_id = $2")
            .bind(id)
            .bind(credential_id)
            .fetch_optional(&mut tx)
            .await?;
        tx.commit().await?;
        row.map(|r| r.try_get("envelope")).transpose()
    }

    async fn replace_envelope(
        &self,
        id: &str,
        credential_id: &str,
        old: &[u8],
        new: &[u8],
    ) -> Result<bool> {
        let mut tx = self.pool.begin(Begin::Write).await?;
        let r = tx
            .sql(
                "UPDATE secret_envelopes SET envelope = $1 \
                 WHERE id = $2 AND credential_id = $3 AND envelope = $4",
            )
            .bind(new)
            .bind(id)
            .bind(credential_id)
            .bind(old)
            .execute(&mut tx)
            .await?;
        tx.commit().await?;
        Ok(r.rows_affected() == 1)
    }

    async fn close(&self) {
        self.pool.close().await
    }
}
