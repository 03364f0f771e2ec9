//! Custodians: enrolment, TOTP steps and failures, lockout.

use async_trait::async_trait;

use super::sql::{Row, SqlTx};
use super::*;
use crate::domain::states::CustodianStatus;

#[async_trait]
pub trait CustodianStore: Send {
    async fn insert_custodian(&mut self, c: &CustodianRow) -> Result<()>;
    /// Read (and on PostgreSQL lock) one custodian.
    async fn custodian(&mut self, name: &str) -> Result<Option<CustodianRow>>;
    async fn custodians(&mut self) -> Result<Vec<CustodianRow>>;
    async fn set_enrollment(
        &mut self,
        name: &str,
        status: CustodianStatus,
        enrollment_id: Option<&str>,
        envelope: Option<&[u8]>,
        enrolled_at: Option<i64>,
    ) -> Result<()>;
    /// Record `step` as the custodian's last accepted TOTP step, only if it
    /// is later than the one recorded; false means a replay.
    async fn advance_totp_step(&mut self, name: &str, step: i64) -> Result<bool>;
    async fn add_totp_failure(&mut self, name: &str, at: i64) -> Result<()>;
    async fn count_totp_failures(&mut self, name: &str, since: i64) -> Result<i64>;
    async fn clear_totp_failures(&mut self, name: &str) -> Result<()>;
    async fn set_locked_until(&mut self, name: &str, until: Option<i64>) -> Result<()>;
    /// Swap a custodian's TOTP seed envelope for a re-wrapped one, only if
    /// it still holds `old`.
    async fn replace_totp_envelope(&mut self, name: &str, old: &[u8], new: &[u8]) -> Result<bool>;
}

#[async_trait]
impl CustodianStore for SqlTx {
    async fn insert_custodian(&mut self, c: &CustodianRow) -> Result<()> {
        self.sql(
            "INSERT INTO custodians (name, groups, status, enrollment_id, totp_envelope, last_totp_step, \
             locked_until, created_at, created_by, enrolled_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&c.name)
        .bind(super::sql::json_list(&c.groups))
        .bind(c.status.as_str())
        .bind(&c.enrollment_id)
        .bind(&c.totp_envelope)
        .bind(c.last_totp_step)
        .bind(c.locked_until)
        .bind(c.created_at)
        .bind(&c.created_by)
        .bind(c.enrolled_at)
        .execute(self)
        .await?;
        Ok(())
    }

    async fn custodian(&mut self, name: &str) -> Result<Option<CustodianRow>> {
        let row = self
            .locked("SELECT * FROM custodians WHERE name = $1")
            .bind(name)
            .fetch_optional(self)
            .await?;
        row.as_ref().map(custodian_from).transpose()
    }

    async fn custodians(&mut self) -> Result<Vec<CustodianRow>> {
        let rows = self
            .sql("SELECT * FROM custodians ORDER BY name")
            .fetch_all(self)
            .await?;
        rows.iter().map(custodian_from).collect()
    }

    async fn set_enrollment(
        &mut self,
        name: &str,
        status: CustodianStatus,
        enrollment_id: Option<&str>,
        envelope: Option<&[u8]>,
        enrolled_at: Option<i64>,
    ) -> Result<()> {
        self.sql(
            "UPDATE custodians SET status = $1, enrollment_id = $2, totp_envelope = $3, enrolled_at = $4, \
             last_totp_step = NULL WHERE name = $5",
        )
        .bind(status.as_str())
        .bind(enrollment_id)
        .bind(envelope)
        .bind(enrolled_at)
        .bind(name)
        .execute(self)
        .await?;
        Ok(())
    }

    async fn advance_totp_step(&mut self, name: &str, step: i64) -> Result<bool> {
        let r = self
            .sql(
                "UPDATE custodians SET last_totp_step = $1 \
             WHERE name = $2 AND (last_totp_step IS NULL OR last_totp_step < $1)",
            )
            .bind(step)
            .bind(name)
            .execute(self)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn add_totp_failure(&mut self, name: &str, at: i64) -> Result<()> {
        self.sql("INSERT INTO totp_failures (custodian, at) VALUES ($1, $2)")
            .bind(name)
            .bind(at)
            .execute(self)
            .await?;
        Ok(())
    }

    async fn count_totp_failures(&mut self, name: &str, since: i64) -> Result<i64> {
        let row = self
            .sql("SELECT COUNT(*) AS n FROM totp_failures WHERE custodian = $1 AND at >= $2")
            .bind(name)
            .bind(since)
            .fetch_one(self)
            .await?;
        Ok(row.try_get("n")?)
    }

    async fn clear_totp_failures(&mut self, name: &str) -> Result<()> {
        self.sql("DELETE FROM totp_failures WHERE custodian = $1")
            .bind(name)
            .execute(self)
            .await?;
        Ok(())
    }

    async fn set_locked_until(&mut self, name: &str, until: Option<i64>) -> Result<()> {
        self.sql("UPDATE custodians SET locked_until = $1 WHERE name = $2")
            .bind(until)
            .bind(name)
            .execute(self)
            .await?;
        Ok(())
    }

    async fn replace_totp_envelope(&mut self, name: &str, old: &[u8], new: &[u8]) -> Result<bool> {
        let r = self
            .sql("UPDATE custodians SET totp_envelope = $1 WHERE name = $2 AND totp_envelope = $3")
            .bind(new)
            .bind(name)
            .bind(old)
            .execute(self)
            .await?;
        Ok(r.rows_affected() == 1)
    }
}

pub(super) fn custodian_from(r: &Row) -> Result<CustodianRow> {
    Ok(CustodianRow {
        name: r.try_get("name")?,
        groups: super::sql::parse_list(&r.try_get::<String, _>("groups")?)?,
        status: r.state("status")?,
        enrollment_id: r.try_get("enrollment_id")?,
        totp_envelope: r.try_get("totp_envelope")?,
        last_totp_step: r.try_get("last_totp_step")?,
        locked_until: r.try_get("locked_until")?,
        created_at: r.try_get("created_at")?,
        created_by: r.try_get("created_by")?,
        enrolled_at: r.try_get("enrolled_at")?,
        totp_recovery_set: r.try_get("totp_recovery_set")?,
        totp_recovery_wrap: r.try_get("totp_recovery_wrap")?,
    })
}
