//! Recovery share sets, the wraps made to them, and online recovery sessions.

use async_trait::async_trait;

use super::sql::{Row, SqlTx};
use super::*;
use crate::domain::states::SessionState;

#[async_trait]
pub trait RecoveryStore: Send {
    async fn insert_recovery_set(&mut self, s: &RecoverySetRow) -> Result<()>;
    async fn insert_recovery_share(&mut self, s: &RecoveryShareRow) -> Result<()>;
    async fn active_recovery_set(&mut self) -> Result<Option<RecoverySetRow>>;
    async fn recovery_shares(&mut self, set_id: &str) -> Result<Vec<RecoveryShareRow>>;
    async fn mark_share_checked(&mut self, set_id: &str, idx: i64, at: i64) -> Result<()>;
    /// active → retired, only if still active.
    async fn retire_recovery_set(&mut self, set_id: &str) -> Result<bool>;
    /// Move a version's recovery wrap from one set to another, only if it
    /// is still wrapped to `old_set`.
    async fn set_recovery_wrap(
        &mut self,
        credential_id: &str,
        version: i64,
        old_set: &str,
        new_set: &str,
        wrap: &[u8],
    ) -> Result<bool>;
    /// Record a custodian's TOTP seed wrapped to a recovery set.
    async fn set_totp_recovery_wrap(&mut self, name: &str, set_id: &str, wrap: &[u8])
        -> Result<()>;
    async fn insert_recovery_session(&mut self, s: &RecoverySessionRow) -> Result<()>;
    /// Read (and on PostgreSQL lock) one session.
    async fn recovery_session(&mut self, id: &str) -> Result<Option<RecoverySessionRow>>;
    /// Close every open session of a request as `superseded`; how many.
    async fn supersede_recovery_sessions(&mut self, request_id: &str, at: i64) -> Result<u64>;
    /// open → `state`, only if still open.
    async fn close_recovery_session(
        &mut self,
        id: &str,
        state: SessionState,
        at: i64,
    ) -> Result<bool>;
    async fn insert_recovery_submission(&mut self, s: &RecoverySubmissionRow) -> Result<()>;
    async fn recovery_submissions(
        &mut self,
        session_id: &str,
    ) -> Result<Vec<RecoverySubmissionRow>>;
    async fn delete_recovery_submission(&mut self, session_id: &str, idx: i64) -> Result<()>;
}

#[async_trait]
impl RecoveryStore for SqlTx {
    async fn insert_recovery_set(&mut self, s: &RecoverySetRow) -> Result<()> {
        self.sql(
            "INSERT INTO recovery_sets (set_id, threshold, share_count, recipient, key_check, state, created_at, created_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&s.set_id)
        .bind(s.threshold)
        .bind(s.share_count)
        .bind(&s.recipient)
        .bind(&s.key_check)
        .bind(s.state.as_str())
        .bind(s.created_at)
        .bind(&s.created_by)
        .execute(self)
        .await?;
        Ok(())
    }

    async fn insert_recovery_share(&mut self, s: &RecoveryShareRow) -> Result<()> {
        self.sql(
            "INSERT INTO recovery_shares (set_id, idx, custodian, age_recipient, commitment, checked_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&s.set_id)
        .bind(s.idx)
        .bind(&s.custodian)
        .bind(&s.age_recipient)
        .bind(&s.commitment)
        .bind(s.checked_at)
        .execute(self)
        .await?;
        Ok(())
    }

    async fn active_recovery_set(&mut self) -> Result<Option<RecoverySetRow>> {
        let row = self
            .locked("SELECT * FROM recovery_sets WHERE state = 'active'")
            .fetch_optional(self)
            .await?;
        let Some(r) = row else { return Ok(None) };
        Ok(Some(RecoverySetRow {
            set_id: r.try_get("set_id")?,
            threshold: r.try_get("threshold")?,
            share_count: r.try_get("share_count")?,
            recipient: r.try_get("recipient")?,
            key_check: r.try_get("key_check")?,
            state: r.state("state")?,
            created_at: r.try_get("created_at")?,
            created_by: r.try_get("created_by")?,
        }))
    }

    async fn recovery_shares(&mut self, set_id: &str) -> Result<Vec<RecoveryShareRow>> {
        let rows = self
            .sql("SELECT * FROM recovery_shares WHERE set_id = $1 ORDER BY idx")
            .bind(set_id)
            .fetch_all(self)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(RecoveryShareRow {
                    set_id: r.try_get("set_id")?,
                    idx: r.try_get("idx")?,
                    custodian: r.try_get("custodian")?,
                    age_recipient: r.try_get("age_recipient")?,
                    commitment: r.try_get("commitment")?,
                    checked_at: r.try_get("checked_at")?,
                })
            })
            .collect()
    }

    async fn mark_share_checked(&mut self, set_id: &str, idx: i64, at: i64) -> Result<()> {
        self.sql("UPDATE recovery_shares SET checked_at = $1 WHERE set_id = $2 AND idx = $3")
            .bind(at)
            .bind(set_id)
            .bind(idx)
            .execute(self)
            .await?;
        Ok(())
    }

    async fn retire_recovery_set(&mut self, set_id: &str) -> Result<bool> {
        let r = self
            .sql(
                "UPDATE recovery_sets SET state = 'retired' WHERE set_id = $1 AND state = 'active'",
            )
            .bind(set_id)
            .execute(self)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn set_recovery_wrap(
        &mut self,
        credential_id: &str,
        version: i64,
        old_set: &str,
        new_set: &str,
        wrap: &[u8],
    ) -> Result<bool> {
        let r = self
            .sql(
                "UPDATE credential_versions SET recovery_set = $1, recovery_wrap = $2 \
             WHERE credential_id = $3 AND version = $4 AND recovery_set = $5",
            )
            .bind(new_set)
            .bind(wrap)
            .bind(credential_id)
            .bind(version)
            .bind(old_set)
            .execute(self)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn set_totp_recovery_wrap(
        &mut self,
        name: &str,
        set_id: &str,
        wrap: &[u8],
    ) -> Result<()> {
        self.sql(
            "UPDATE custodians SET totp_recovery_set = $1, totp_recovery_wrap = $2 WHERE name = $3",
        )
        .bind(set_id)
        .bind(wrap)
        .bind(name)
        .execute(self)
        .await?;
        Ok(())
    }

    async fn insert_recovery_session(&mut self, s: &RecoverySessionRow) -> Result<()> {
        self.sql(
            "INSERT INTO recovery_sessions (id, request_id, set_id, recipient, replica, opened_by, opened_at, expires_at, state, closed_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&s.id)
        .bind(&s.request_id)
        .bind(&s.set_id)
        .bind(&s.recipient)
        .bind(&s.replica)
        .bind(&s.opened_by)
        .bind(s.opened_at)
        .bind(s.expires_at)
        .bind(s.state.as_str())
        .bind(s.closed_at)
        .execute(self)
        .await?;
        Ok(())
    }

    async fn recovery_session(&mut self, id: &str) -> Result<Option<RecoverySessionRow>> {
        let row = self
            .locked("SELECT * FROM recovery_sessions WHERE id = $1")
            .bind(id)
            .fetch_optional(self)
            .await?;
        row.as_ref().map(session_from).transpose()
    }

    async fn supersede_recovery_sessions(&mut self, request_id: &str, at: i64) -> Result<u64> {
        let r = self.sql(
            "UPDATE recovery_sessions SET state = 'superseded', closed_at = $1 WHERE request_id = $2 AND state = 'open'",
        )
        .bind(at)
        .bind(request_id)
        .execute(self)
        .await?;
        Ok(r.rows_affected())
    }

    async fn close_recovery_session(
        &mut self,
        id: &str,
        state: SessionState,
        at: i64,
    ) -> Result<bool> {
        let r = self.sql("UPDATE recovery_sessions SET state = $1, closed_at = $2 WHERE id = $3 AND state = 'open'")
            .bind(state.as_str())
            .bind(at)
            .bind(id)
            .execute(self)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn insert_recovery_submission(&mut self, s: &RecoverySubmissionRow) -> Result<()> {
        self.sql(
            "INSERT INTO recovery_submissions (session_id, idx, custodian, submitted_at, prior_step) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&s.session_id)
        .bind(s.idx)
        .bind(&s.custodian)
        .bind(s.submitted_at)
        .bind(s.prior_step)
        .execute(self)
        .await?;
        Ok(())
    }

    async fn recovery_submissions(
        &mut self,
        session_id: &str,
    ) -> Result<Vec<RecoverySubmissionRow>> {
        let rows = self
            .sql("SELECT * FROM recovery_submissions WHERE session_id = $1 ORDER BY idx")
            .bind(session_id)
            .fetch_all(self)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(RecoverySubmissionRow {
                    session_id: r.try_get("session_id")?,
                    idx: r.try_get("idx")?,
                    custodian: r.try_get("custodian")?,
                    submitted_at: r.try_get("submitted_at")?,
                    prior_step: r.try_get("prior_step")?,
                })
            })
            .collect()
    }

    async fn delete_recovery_submission(&mut self, session_id: &str, idx: i64) -> Result<()> {
        self.sql("DELETE FROM recovery_submissions WHERE session_id = $1 AND idx = $2")
            .bind(session_id)
            .bind(idx)
            .execute(self)
            .await?;
        Ok(())
    }
}

pub(super) fn session_from(r: &Row) -> Result<RecoverySessionRow> {
    Ok(RecoverySessionRow {
        id: r.try_get("id")?,
        request_id: r.try_get("request_id")?,
        set_id: r.try_get("set_id")?,
        recipient: r.try_get("recipient")?,
        replica: r.try_get("replica")?,
        opened_by: r.try_get("opened_by")?,
        opened_at: r.try_get("opened_at")?,
        expires_at: r.try_get("expires_at")?,
        state: r.state("state")?,
        closed_at: r.try_get("closed_at")?,
    })
}
