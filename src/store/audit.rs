//! The audit chain: its head, events, checkpoints and archived base.

use async_trait::async_trait;

use super::sql::{Row, SqlTx};
use super::*;
use crate::crypto::chain::AuditEvent;

#[async_trait]
pub trait AuditStore: Send {
    /// The chain head (last sequence number and hash), locked until commit.
    async fn audit_head(&mut self) -> Result<(i64, String)>;
    /// The chain head, without locking it.
    async fn audit_head_peek(&mut self) -> Result<(i64, String)>;
    /// Insert a sealed event and move the head to it.
    async fn insert_audit(&mut self, e: &AuditEvent) -> Result<()>;
    async fn audit_events(&mut self, after_seq: i64, limit: i64) -> Result<Vec<AuditEvent>>;
    /// Events after `after_seq` that match `f`, in chain order.
    async fn audit_search(
        &mut self,
        f: &AuditFilter,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<AuditEvent>>;
    /// The first event at or after `ts_ms`.
    async fn first_seq_since(&mut self, ts_ms: i64) -> Result<Option<i64>>;
    /// The first event after `seq` (after the head: one appended outside
    /// the service).
    async fn audit_seq_after(&mut self, seq: i64) -> Result<Option<i64>>;
    /// The `hash` of event `seq` (64 zeros for 0).
    async fn audit_hash_at(&mut self, seq: i64) -> Result<Option<String>>;
    /// Record a signed checkpoint; false if one exists for that event.
    async fn insert_checkpoint(&mut self, c: &crate::crypto::chain::Checkpoint) -> Result<bool>;
    async fn checkpoints(
        &mut self,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<crate::crypto::chain::Checkpoint>>;
    async fn last_checkpoint(&mut self) -> Result<Option<crate::crypto::chain::Checkpoint>>;
    /// Events up to the base were archived and pruned: (seq, hash), or
    /// (0, 64 zeros).
    async fn audit_base(&mut self) -> Result<(i64, String)>;
    /// Delete the events up to `seq` (whose hash is `hash`) and record the
    /// new base; false if `seq` is not an event.
    async fn prune_audit(&mut self, seq: i64, hash: &str) -> Result<bool>;
}

#[async_trait]
impl AuditStore for SqlTx {
    async fn audit_head(&mut self) -> Result<(i64, String)> {
        let row = self
            .locked("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_one(self)
            .await?;
        Ok((row.try_get("seq")?, row.try_get("hash")?))
    }

    async fn audit_head_peek(&mut self) -> Result<(i64, String)> {
        let row = self
            .sql("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_one(self)
            .await?;
        Ok((row.try_get("seq")?, row.try_get("hash")?))
    }

    async fn insert_audit(&mut self, e: &crate::crypto::chain::AuditEvent) -> Result<()> {
        let details = serde_json::to_string(&e.details).expect("a JSON value always serialises");
        self.sql(
            "INSERT INTO audit_events (seq, ts_ms, actor, action, target, outcome, code, details, prev_hash, hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(e.seq)
        .bind(e.ts_ms)
        .bind(&e.actor)
        .bind(&e.action)
        .bind(&e.target)
        .bind(&e.outcome)
        .bind(&e.code)
        .bind(details)
        .bind(&e.prev_hash)
        .bind(&e.hash)
        .execute(self)
        .await?;
        let r = self
            .sql(
                "UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1 AND seq = $3 AND hash = $4",
            )
            .bind(e.seq)
            .bind(&e.hash)
            .bind(e.seq - 1)
            .bind(&e.prev_hash)
            .execute(self)
            .await?;
        if r.rows_affected() != 1 {
            return Err(StoreError::Conflict("audit_head".into()));
        }
        Ok(())
    }

    async fn audit_events(
        &mut self,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<crate::crypto::chain::AuditEvent>> {
        let rows = self
            .sql("SELECT * FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT $2")
            .bind(after_seq)
            .bind(limit)
            .fetch_all(self)
            .await?;
        rows.iter().map(audit_from).collect()
    }

    async fn audit_search(
        &mut self,
        f: &AuditFilter,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<crate::crypto::chain::AuditEvent>> {
        let (cond, values) = f.sql();
        let n = values.len() + 2;
        let sql =
            format!("SELECT * FROM audit_events WHERE seq > $1{cond} ORDER BY seq LIMIT ${n}");
        let mut q = self.sql(sqlx::AssertSqlSafe(sql)).bind(after_seq);
        for v in values {
            q = match v {
                SqlValue::Int(i) => q.bind(i),
                SqlValue::Text(t) => q.bind(t),
            };
        }
        let rows = q.bind(limit).fetch_all(self).await?;
        rows.iter().map(audit_from).collect()
    }

    async fn first_seq_since(&mut self, ts_ms: i64) -> Result<Option<i64>> {
        let row = self
            .sql("SELECT MIN(seq) AS seq FROM audit_events WHERE ts_ms >= $1")
            .bind(ts_ms)
            .fetch_one(self)
            .await?;
        Ok(row.try_get("seq")?)
    }

    async fn audit_seq_after(&mut self, seq: i64) -> Result<Option<i64>> {
        let row = self
            .sql("SELECT MIN(seq) AS seq FROM audit_events WHERE seq > $1")
            .bind(seq)
            .fetch_one(self)
            .await?;
        Ok(row.try_get("seq")?)
    }

    async fn audit_hash_at(&mut self, seq: i64) -> Result<Option<String>> {
        if seq == 0 {
            return Ok(Some(crate::crypto::chain::GENESIS.into()));
        }
        let row = self.sql(
            "SELECT hash FROM audit_events WHERE seq = $1 UNION ALL SELECT hash FROM audit_base WHERE id = 1 AND seq = $1",
        )
        .bind(seq)
        .fetch_optional(self)
        .await?;
        Ok(row.map(|r| r.try_get("hash")).transpose()?)
    }

    async fn insert_checkpoint(&mut self, c: &crate::crypto::chain::Checkpoint) -> Result<bool> {
        let r = self.sql(
            "INSERT INTO audit_checkpoints (seq, hash, ts_ms, kid, signature) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (seq) DO NOTHING",
        )
        .bind(c.seq)
        .bind(&c.hash)
        .bind(c.ts_ms)
        .bind(&c.kid)
        .bind(&c.signature)
        .execute(self)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn checkpoints(
        &mut self,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<crate::crypto::chain::Checkpoint>> {
        let rows = self
            .sql("SELECT * FROM audit_checkpoints WHERE seq > $1 ORDER BY seq LIMIT $2")
            .bind(after_seq)
            .bind(limit)
            .fetch_all(self)
            .await?;
        rows.iter().map(checkpoint_from).collect()
    }

    async fn last_checkpoint(&mut self) -> Result<Option<crate::crypto::chain::Checkpoint>> {
        let row = self
            .sql("SELECT * FROM audit_checkpoints ORDER BY seq DESC LIMIT 1")
            .fetch_optional(self)
            .await?;
        row.as_ref().map(checkpoint_from).transpose()
    }

    async fn audit_base(&mut self) -> Result<(i64, String)> {
        let row = self
            .sql("SELECT seq, hash FROM audit_base WHERE id = 1")
            .fetch_optional(self)
            .await?;
        Ok(match row {
            Some(r) => (r.try_get("seq")?, r.try_get("hash")?),
            None => (0, crate::crypto::chain::GENESIS.into()),
        })
    }

    async fn prune_audit(&mut self, seq: i64, hash: &str) -> Result<bool> {
        let found = self
            .sql("SELECT seq FROM audit_events WHERE seq = $1 AND hash = $2")
            .bind(seq)
            .bind(hash)
            .fetch_optional(self)
            .await?;
        if found.is_none() {
            return Ok(false);
        }
        self.sql("DELETE FROM audit_events WHERE seq <= $1")
            .bind(seq)
            .execute(self)
            .await?;
        self.sql(
            "INSERT INTO audit_base (id, seq, hash) VALUES (1, $1, $2) \
             ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
        )
        .bind(seq)
        .bind(hash)
        .execute(self)
        .await?;
        Ok(true)
    }
}

pub(super) fn audit_from(r: &Row) -> Result<crate::crypto::chain::AuditEvent> {
    let details: String = r.try_get("details")?;
    Ok(crate::crypto::chain::AuditEvent {
        seq: r.try_get("seq")?,
        ts_ms: r.try_get("ts_ms")?,
        actor: r.try_get("actor")?,
        action: r.try_get("action")?,
        target: r.try_get("target")?,
        outcome: r.try_get("outcome")?,
        code: r.try_get("code")?,
        // A row whose details are not JSON is kept as a string so
        // that verification reports it instead of failing to read.
        details: serde_json::from_str(&details).unwrap_or(serde_json::Value::String(details)),
        prev_hash: r.try_get("prev_hash")?,
        hash: r.try_get("hash")?,
    })
}

pub(super) fn checkpoint_from(r: &Row) -> Result<crate::crypto::chain::Checkpoint> {
    Ok(crate::crypto::chain::Checkpoint {
        seq: r.try_get("seq")?,
        hash: r.try_get("hash")?,
        ts_ms: r.try_get("ts_ms")?,
        kid: r.try_get("kid")?,
        signature: r.try_get("signature")?,
    })
}
