//! The figures `/metrics` reads from the database.

use async_trait::async_trait;

use super::sql::{Row, SqlTx};
use super::*;

#[async_trait]
pub trait GaugeStore: Send {
    /// The figures `/metrics` reports from the database.
    async fn custody_gauges(&mut self, now: i64) -> Result<crate::metrics::CustodyGauges>;
}

#[async_trait]
impl GaugeStore for SqlTx {
    async fn custody_gauges(&mut self, now: i64) -> Result<crate::metrics::CustodyGauges> {
        let pairs = |rows: Vec<Row>| -> Result<Vec<(String, i64)>> {
            rows.iter()
                .map(|r| Ok((r.try_get::<String, _>(0)?, r.try_get::<i64, _>(1)?)))
                .collect()
        };
        let requests_by_state = pairs(
            self.sql("SELECT state, COUNT(*) FROM requests GROUP BY state")
                .fetch_all(self)
                .await?,
        )?;
        let custodians_locked_out: i64 = self
            .sql("SELECT COUNT(*) FROM custodians WHERE locked_until > $1")
            .bind(now)
            .fetch_one(self)
            .await?
            .try_get(0)?;
        let alerts_by_state = pairs(
            self.sql("SELECT state, COUNT(*) FROM alert_outbox WHERE state <> 'delivered' GROUP BY state")
                .fetch_all(self)
                .await?,
        )?;
        let audit_head_seq: i64 = self
            .sql("SELECT seq FROM audit_head WHERE id = 1")
            .fetch_one(self)
            .await?
            .try_get(0)?;
        let sink_backlog = pairs(
            self.sql("SELECT sink, events_through FROM audit_sink_cursor")
                .fetch_all(self)
                .await?,
        )?
        .into_iter()
        .map(|(sink, through)| (sink, (audit_head_seq - through).max(0)))
        .collect();
        Ok(crate::metrics::CustodyGauges {
            requests_by_state,
            custodians_locked_out,
            alerts_by_state,
            audit_head_seq,
            sink_backlog,
            ..Default::default()
        })
    }
}
