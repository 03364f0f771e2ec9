//! The alert outbox and its per-channel delivery leases.

use async_trait::async_trait;

use super::sql::{Row, SqlTx};
use super::*;
use crate::domain::states::AlertState;

#[async_trait]
pub trait AlertStore: Send {
    async fn insert_alert(&mut self, a: &AlertRow) -> Result<()>;
    /// Take the channel's delivery lease (skipping it if another process
    /// holds its row or lease).
    async fn lease_alert_channel(
        &mut self,
        channel: &str,
        owner: &str,
        now: i64,
        until: i64,
    ) -> Result<bool>;
    async fn release_alert_channel(&mut self, channel: &str, owner: &str) -> Result<()>;
    /// Release every channel lease `owner` holds (a stopping replica).
    async fn release_alert_leases(&mut self, owner: &str) -> Result<u64>;
    /// The channel's pending alerts, in event order.
    async fn due_alerts(&mut self, channel: &str, now: i64, limit: i64) -> Result<Vec<AlertRow>>;
    async fn set_alert_state(
        &mut self,
        id: &str,
        state: AlertState,
        attempts: i64,
        next_attempt_at: i64,
        last_error: Option<&str>,
        delivered_at: Option<i64>,
    ) -> Result<()>;
    async fn alerts(&mut self, state: Option<AlertState>, limit: i64) -> Result<Vec<AlertRow>>;
    /// dead → pending, attempts reset.
    async fn retry_alert(&mut self, id: &str) -> Result<bool>;
}

#[async_trait]
impl AlertStore for SqlTx {
    async fn insert_alert(&mut self, a: &AlertRow) -> Result<()> {
        self.sql(
            "INSERT INTO alert_outbox (id, seq, channel, kind, payload, state, attempts, next_attempt_at, last_error, created_at, delivered_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&a.id)
        .bind(a.seq)
        .bind(&a.channel)
        .bind(&a.kind)
        .bind(&a.payload)
        .bind(a.state.as_str())
        .bind(a.attempts)
        .bind(a.next_attempt_at)
        .bind(&a.last_error)
        .bind(a.created_at)
        .bind(a.delivered_at)
        .execute(self)
        .await?;
        Ok(())
    }

    async fn lease_alert_channel(
        &mut self,
        channel: &str,
        owner: &str,
        now: i64,
        until: i64,
    ) -> Result<bool> {
        self.sql("INSERT INTO alert_channels (name) VALUES ($1) ON CONFLICT (name) DO NOTHING")
            .bind(channel)
            .execute(self)
            .await?;
        // Another process delivering this channel holds the row: skip it.
        let free = self.skip_locked("SELECT name FROM alert_channels WHERE name = $1 AND (lease_until IS NULL OR lease_until < $2)")
        .bind(channel)
        .bind(now)
        .fetch_optional(self)
        .await?;
        if free.is_none() {
            return Ok(false);
        }
        let r = self.sql(
            "UPDATE alert_channels SET lease_owner = $1, lease_until = $2 WHERE name = $3 AND (lease_until IS NULL OR lease_until < $4)",
        )
        .bind(owner)
        .bind(until)
        .bind(channel)
        .bind(now)
        .execute(self)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn release_alert_channel(&mut self, channel: &str, owner: &str) -> Result<()> {
        self.sql("UPDATE alert_channels SET lease_owner = NULL, lease_until = NULL WHERE name = $1 AND lease_owner = $2")
            .bind(channel)
            .bind(owner)
            .execute(self)
            .await?;
        Ok(())
    }

    async fn release_alert_leases(&mut self, owner: &str) -> Result<u64> {
        let r = self
            .sql("UPDATE alert_channels SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = $1")
            .bind(owner)
            .execute(self)
            .await?;
        Ok(r.rows_affected())
    }

    async fn due_alerts(&mut self, channel: &str, now: i64, limit: i64) -> Result<Vec<AlertRow>> {
        let rows = self.sql(
            "SELECT * FROM alert_outbox WHERE channel = $1 AND state = 'pending' ORDER BY seq LIMIT $2",
        )
        .bind(channel)
        .bind(limit)
        .fetch_all(self)
        .await?;
        let _ = now;
        rows.iter().map(alert_from).collect()
    }

    async fn set_alert_state(
        &mut self,
        id: &str,
        state: AlertState,
        attempts: i64,
        next_attempt_at: i64,
        last_error: Option<&str>,
        delivered_at: Option<i64>,
    ) -> Result<()> {
        self.sql(
            "UPDATE alert_outbox SET state = $1, attempts = $2, next_attempt_at = $3, last_error = $4, delivered_at = $5 WHERE id = $6",
        )
        .bind(state.as_str())
        .bind(attempts)
        .bind(next_attempt_at)
        .bind(last_error)
        .bind(delivered_at)
        .bind(id)
        .execute(self)
        .await?;
        Ok(())
    }

    async fn alerts(&mut self, state: Option<AlertState>, limit: i64) -> Result<Vec<AlertRow>> {
        let rows = match state {
            Some(st) => self.sql("SELECT * FROM alert_outbox WHERE state = $1 ORDER BY seq DESC, channel LIMIT $2")
                .bind(st.as_str())
                .bind(limit)
                .fetch_all(self)
                .await?,
            None => self.sql("SELECT * FROM alert_outbox ORDER BY seq DESC, channel LIMIT $1")
                .bind(limit)
                .fetch_all(self)
                .await?,
        };
        rows.iter().map(alert_from).collect()
    }

    async fn retry_alert(&mut self, id: &str) -> Result<bool> {
        let r = self.sql(
            "UPDATE alert_outbox SET state = 'pending', attempts = 0, next_attempt_at = 0 WHERE id = $1 AND state = 'dead'",
        )
        .bind(id)
        .execute(self)
        .await?;
        Ok(r.rows_affected() == 1)
    }
}

pub(super) fn alert_from(r: &Row) -> Result<AlertRow> {
    Ok(AlertRow {
        id: r.try_get("id")?,
        seq: r.try_get("seq")?,
        channel: r.try_get("channel")?,
        kind: r.try_get("kind")?,
        payload: r.try_get("payload")?,
        state: r.state("state")?,
        attempts: r.try_get("attempts")?,
        next_attempt_at: r.try_get("next_attempt_at")?,
        last_error: r.try_get("last_error")?,
        created_at: r.try_get("created_at")?,
        delivered_at: r.try_get("delivered_at")?,
    })
}
