//! Delivery cursors and leases of the audit sinks (SIEM shipping).

use async_trait::async_trait;

use super::sql::SqlTx;
use super::*;

#[async_trait]
pub trait SinkStore: Send {
    /// The sink's cursor, created at zero if new.
    async fn sink_cursor(&mut self, sink: &str) -> Result<SinkCursor>;
    /// Take the sink's lease until `until`, if it is free and a delivery is
    /// due at `now`.
    async fn lease_sink(&mut self, sink: &str, owner: &str, now: i64, until: i64) -> Result<bool>;
    /// Release every sink lease `owner` holds (a stopping replica).
    async fn release_sink_leases(&mut self, owner: &str) -> Result<u64>;
    /// Record a delivery by the lease holder and release the lease.
    async fn sink_delivered(
        &mut self,
        sink: &str,
        owner: &str,
        events_through: i64,
        checkpoints_through: i64,
        now: i64,
    ) -> Result<bool>;
    /// Record a failed attempt by the lease holder and release the lease.
    async fn sink_failed(
        &mut self,
        sink: &str,
        owner: &str,
        error: &str,
        now: i64,
        next_attempt_at: i64,
    ) -> Result<()>;
}

#[async_trait]
impl SinkStore for SqlTx {
    async fn sink_cursor(&mut self, sink: &str) -> Result<SinkCursor> {
        self.sql("INSERT INTO audit_sink_cursor (sink) VALUES ($1) ON CONFLICT (sink) DO NOTHING")
            .bind(sink)
            .execute(self)
            .await?;
        let r = self
            .sql("SELECT * FROM audit_sink_cursor WHERE sink = $1")
            .bind(sink)
            .fetch_one(self)
            .await?;
        Ok(SinkCursor {
            sink: r.try_get("sink")?,
            events_through: r.try_get("events_through")?,
            checkpoints_through: r.try_get("checkpoints_through")?,
            lease_owner: r.try_get("lease_owner")?,
            lease_until: r.try_get("lease_until")?,
            attempts: r.try_get("attempts")?,
            next_attempt_at: r.try_get("next_attempt_at")?,
            last_error: r.try_get("last_error")?,
            last_attempt_at: r.try_get("last_attempt_at")?,
            delivered_at: r.try_get("delivered_at")?,
        })
    }

    async fn release_sink_leases(&mut self, owner: &str) -> Result<u64> {
        let r = self
            .sql("UPDATE audit_sink_cursor SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = $1")
            .bind(owner)
            .execute(self)
            .await?;
        Ok(r.rows_affected())
    }

    async fn lease_sink(&mut self, sink: &str, owner: &str, now: i64, until: i64) -> Result<bool> {
        let r = self.sql(
            "UPDATE audit_sink_cursor SET lease_owner = $1, lease_until = $2 \
             WHERE sink = $3 AND next_attempt_at <= $4 AND (lease_until IS NULL OR lease_until < $4)",
        )
        .bind(owner)
        .bind(until)
        .bind(sink)
        .bind(now)
        .execute(self)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn sink_delivered(
        &mut self,
        sink: &str,
        owner: &str,
        events_through: i64,
        checkpoints_through: i64,
        now: i64,
    ) -> Result<bool> {
        let r = self.sql(
            "UPDATE audit_sink_cursor SET events_through = $1, checkpoints_through = $2, attempts = 0, \
             next_attempt_at = 0, last_error = NULL, last_attempt_at = $3, delivered_at = $3, \
             lease_owner = NULL, lease_until = NULL \
             WHERE sink = $4 AND lease_owner = $5 AND events_through <= $1",
        )
        .bind(events_through)
        .bind(checkpoints_through)
        .bind(now)
        .bind(sink)
        .bind(owner)
        .execute(self)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn sink_failed(
        &mut self,
        sink: &str,
        owner: &str,
        error: &str,
        now: i64,
        next_attempt_at: i64,
    ) -> Result<()> {
        self.sql(
            "UPDATE audit_sink_cursor SET attempts = attempts + 1, last_error = $1, last_attempt_at = $2, \
             next_attempt_at = $3, lease_owner = NULL, lease_until = NULL WHERE sink = $4 AND lease_owner = $5",
        )
        .bind(error)
        .bind(now)
        .bind(next_attempt_at)
        .bind(sink)
        .bind(owner)
        .execute(self)
        .await?;
        Ok(())
    }
}
