//! Policies changed at runtime, and the changes custodians decide.

use async_trait::async_trait;

use super::sql::{Row, SqlTx};
use super::*;
use crate::domain::states::PolicyChangeState;

#[async_trait]
pub trait PolicyStore: Send {
    /// The latest runtime version of every changed policy: (name, version,
    /// JSON, seal).
    async fn policy_versions(&mut self) -> Result<Vec<(String, i64, String, Option<String>)>>;
    /// Add a version; a conflict means another change won.
    async fn insert_policy_version(&mut self, v: &PolicyVersionRow) -> Result<()>;
    async fn insert_policy_change(&mut self, c: &PolicyChangeRow) -> Result<()>;
    /// Read (and on PostgreSQL lock) one change.
    async fn policy_change(&mut self, id: &str) -> Result<Option<PolicyChangeRow>>;
    async fn policy_changes(&mut self, limit: i64) -> Result<Vec<PolicyChangeRow>>;
    /// pending → `state`, only while pending.
    async fn close_policy_change(
        &mut self,
        id: &str,
        state: PolicyChangeState,
        at: i64,
    ) -> Result<bool>;
    /// Decisions on a change (the same rows as a request's, keyed by change).
    async fn insert_policy_change_decision(
        &mut self,
        change_id: &str,
        d: &DecisionRow,
    ) -> Result<()>;
    async fn policy_change_decisions(&mut self, change_id: &str) -> Result<Vec<DecisionRow>>;
}

#[async_trait]
impl PolicyStore for SqlTx {
    async fn policy_versions(&mut self) -> Result<Vec<(String, i64, String, Option<String>)>> {
        let rows = self.sql(
            "SELECT v.name, v.version, v.body, v.seal FROM policy_versions v \
             WHERE v.version = (SELECT MAX(w.version) FROM policy_versions w WHERE w.name = v.name) ORDER BY v.name",
        )
        .fetch_all(self)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("name")?,
                    r.try_get("version")?,
                    r.try_get("body")?,
                    r.try_get("seal")?,
                ))
            })
            .collect()
    }

    async fn insert_policy_version(&mut self, v: &PolicyVersionRow) -> Result<()> {
        self.sql(
            "INSERT INTO policy_versions (name, version, body, created_at, created_by, change_id, seal) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&v.name)
        .bind(v.version)
        .bind(&v.body)
        .bind(v.at)
        .bind(&v.by)
        .bind(&v.change_id)
        .bind(&v.seal)
        .execute(self)
        .await?;
        Ok(())
    }

    async fn insert_policy_change(&mut self, c: &PolicyChangeRow) -> Result<()> {
        self.sql(
            "INSERT INTO policy_changes (id, kind, policy, base_version, quorum, proposed, credential_id, to_policy, diff, reason, proposer, state, created_at, expires_at, decided_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        )
        .bind(&c.id)
        .bind(c.kind.as_str())
        .bind(&c.policy)
        .bind(c.base_version)
        .bind(&c.quorum)
        .bind(&c.proposed)
        .bind(&c.credential_id)
        .bind(&c.to_policy)
        .bind(&c.diff)
        .bind(&c.reason)
        .bind(&c.proposer)
        .bind(c.state.as_str())
        .bind(c.created_at)
        .bind(c.expires_at)
        .bind(c.decided_at)
        .execute(self)
        .await?;
        Ok(())
    }

    async fn policy_change(&mut self, id: &str) -> Result<Option<PolicyChangeRow>> {
        let row = self
            .locked("SELECT * FROM policy_changes WHERE id = $1")
            .bind(id)
            .fetch_optional(self)
            .await?;
        row.as_ref().map(policy_change_from).transpose()
    }

    async fn policy_changes(&mut self, limit: i64) -> Result<Vec<PolicyChangeRow>> {
        let rows = self
            .sql("SELECT * FROM policy_changes ORDER BY created_at DESC, id LIMIT $1")
            .bind(limit)
            .fetch_all(self)
            .await?;
        rows.iter().map(policy_change_from).collect()
    }

    async fn close_policy_change(
        &mut self,
        id: &str,
        state: PolicyChangeState,
        at: i64,
    ) -> Result<bool> {
        let r = self.sql("UPDATE policy_changes SET state = $1, decided_at = $2 WHERE id = $3 AND state = 'pending'")
            .bind(state.as_str())
            .bind(at)
            .bind(id)
            .execute(self)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn insert_policy_change_decision(
        &mut self,
        change_id: &str,
        d: &DecisionRow,
    ) -> Result<()> {
        let q = self
            .sql(
                "INSERT INTO policy_change_decisions (change_id, custodian, decision, reason, groups, totp_step, at, totp_code, webauthn) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(change_id);
        super::requests::bind_decision(q, d).execute(self).await?;
        Ok(())
    }

    async fn policy_change_decisions(&mut self, change_id: &str) -> Result<Vec<DecisionRow>> {
        let rows = self
            .sql(
                "SELECT * FROM policy_change_decisions WHERE change_id = $1 ORDER BY at, custodian",
            )
            .bind(change_id)
            .fetch_all(self)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(DecisionRow {
                    request_id: r.try_get("change_id")?,
                    custodian: r.try_get("custodian")?,
                    decision: r.state("decision")?,
                    reason: r.try_get("reason")?,
                    groups: super::sql::parse_list(&r.try_get::<String, _>("groups")?)?,
                    totp_step: r.try_get("totp_step")?,
                    at: r.try_get("at")?,
                    totp_code: r
                        .try_get::<Option<String>, _>("totp_code")?
                        .map(crate::crypto::totp::SpentCode::new),
                    webauthn: r.try_get("webauthn")?,
                })
            })
            .collect()
    }
}

pub(super) fn policy_change_from(r: &Row) -> Result<PolicyChangeRow> {
    Ok(PolicyChangeRow {
        id: r.try_get("id")?,
        kind: r.state("kind")?,
        policy: r.try_get("policy")?,
        base_version: r.try_get("base_version")?,
        quorum: r.try_get("quorum")?,
        proposed: r.try_get("proposed")?,
        credential_id: r.try_get("credential_id")?,
        to_policy: r.try_get("to_policy")?,
        diff: r.try_get("diff")?,
        reason: r.try_get("reason")?,
        proposer: r.try_get("proposer")?,
        state: r.state("state")?,
        created_at: r.try_get("created_at")?,
        expires_at: r.try_get("expires_at")?,
        decided_at: r.try_get("decided_at")?,
    })
}
