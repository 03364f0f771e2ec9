//! Break-glass requests and the custodians' decisions on them.

use async_trait::async_trait;

use super::sql::{Query, Row, SqlTx};
use super::*;

#[async_trait]
pub trait RequestStore: Send {
    async fn insert_request(&mut self, r: &RequestRow) -> Result<()>;
    /// Read (and on PostgreSQL lock) one request.
    async fn request(&mut self, id: &str) -> Result<Option<RequestRow>>;
    async fn requests(&mut self, f: &RequestFilter) -> Result<Vec<RequestRow>>;
    /// pending → approved, only while not expired.
    async fn mark_approved(&mut self, id: &str, at: i64, release_deadline: i64) -> Result<bool>;
    /// pending → denied, only while not expired.
    async fn mark_denied(&mut self, id: &str, at: i64, by: &str) -> Result<bool>;
    /// approved → released, only inside the release window. Only one caller
    /// can ever win this.
    async fn mark_released(&mut self, id: &str, at: i64, version: Option<i64>) -> Result<bool>;
    /// Requests of credentials under `policy` that are open at `now`
    /// (pending, or approved and not yet released, within their deadlines).
    /// On PostgreSQL the policy's credentials are locked first, so two
    /// requests cannot both take the last place.
    async fn count_open_requests(&mut self, policy: &str, now: i64) -> Result<i64>;
    async fn insert_decision(&mut self, d: &DecisionRow) -> Result<()>;
    async fn decisions(&mut self, request_id: &str) -> Result<Vec<DecisionRow>>;
    /// Each custodian's latest decision on a request: (name, at).
    async fn last_decisions(&mut self) -> Result<Vec<(String, i64)>>;
    /// Every TOTP step a custodian decided with, on requests and policy
    /// changes: (step, at).
    async fn decision_steps(&mut self, custodian: &str) -> Result<Vec<(i64, i64)>>;
}

#[async_trait]
impl RequestStore for SqlTx {
    async fn insert_request(&mut self, r: &RequestRow) -> Result<()> {
        self.sql(
            "INSERT INTO requests (id, credential_id, credential_name, requester, reason, ticket, policy, state, \
             created_at, expires_at, approved_at, release_deadline, released_at, released_version, denied_at, denied_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
        )
        .bind(&r.id)
        .bind(&r.credential_id)
        .bind(&r.credential_name)
        .bind(&r.requester)
        .bind(&r.reason)
        .bind(&r.ticket)
        .bind(&r.policy)
        .bind(r.state.as_str())
        .bind(r.created_at)
        .bind(r.expires_at)
        .bind(r.approved_at)
        .bind(r.release_deadline)
        .bind(r.released_at)
        .bind(r.released_version)
        .bind(r.denied_at)
        .bind(&r.denied_by)
        .execute(self)
        .await?;
        Ok(())
    }

    async fn request(&mut self, id: &str) -> Result<Option<RequestRow>> {
        let row = self
            .locked("SELECT * FROM requests WHERE id = $1")
            .bind(id)
            .fetch_optional(self)
            .await?;
        row.as_ref().map(request_from).transpose()
    }

    async fn requests(&mut self, f: &RequestFilter) -> Result<Vec<RequestRow>> {
        let rows = self.sql(
            "SELECT * FROM requests WHERE ($1 IS NULL OR requester = $1) AND ($2 IS NULL OR credential_id = $2) \
             ORDER BY created_at DESC, id LIMIT $3",
        )
        .bind(&f.requester)
        .bind(&f.credential_id)
        .bind(f.limit)
        .fetch_all(self)
        .await?;
        rows.iter().map(request_from).collect()
    }

    async fn mark_approved(&mut self, id: &str, at: i64, release_deadline: i64) -> Result<bool> {
        let r = self
            .sql(
                "UPDATE requests SET state = 'approved', approved_at = $1, release_deadline = $2 \
             WHERE id = $3 AND state = 'pending' AND expires_at > $1",
            )
            .bind(at)
            .bind(release_deadline)
            .bind(id)
            .execute(self)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn mark_denied(&mut self, id: &str, at: i64, by: &str) -> Result<bool> {
        let r = self
            .sql(
                "UPDATE requests SET state = 'denied', denied_at = $1, denied_by = $2 \
             WHERE id = $3 AND state = 'pending' AND expires_at > $1",
            )
            .bind(at)
            .bind(by)
            .bind(id)
            .execute(self)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn mark_released(&mut self, id: &str, at: i64, version: Option<i64>) -> Result<bool> {
        let r = self
            .sql(
                "UPDATE requests SET state = 'released', released_at = $1, released_version = $2 \
             WHERE id = $3 AND state = 'approved' AND release_deadline > $1",
            )
            .bind(at)
            .bind(version)
            .bind(id)
            .execute(self)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn count_open_requests(&mut self, policy: &str, now: i64) -> Result<i64> {
        self.locked("SELECT id FROM credentials WHERE policy = $1 ORDER BY id")
            .bind(policy)
            .fetch_all(self)
            .await?;
        let r = self.sql(
            "SELECT COUNT(*) AS n FROM requests r LEFT JOIN credentials c ON c.id = r.credential_id \
             LEFT JOIN root_requests q ON q.request_id = r.id \
             WHERE (c.policy = $1 OR q.policy = $1) AND ((r.state = 'pending' AND r.expires_at > $2) \
             OR (r.state = 'approved' AND r.release_deadline > $2))",
        )
        .bind(policy)
        .bind(now)
        .fetch_one(self)
        .await?;
        Ok(r.try_get("n")?)
    }

    async fn insert_decision(&mut self, d: &DecisionRow) -> Result<()> {
        let q = self.sql(
            "INSERT INTO decisions (request_id, custodian, decision, reason, groups, totp_step, at, totp_code, webauthn) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&d.request_id);
        bind_decision(q, d).execute(self).await?;
        Ok(())
    }

    async fn decisions(&mut self, request_id: &str) -> Result<Vec<DecisionRow>> {
        let rows = self
            .sql("SELECT * FROM decisions WHERE request_id = $1 ORDER BY at, custodian")
            .bind(request_id)
            .fetch_all(self)
            .await?;
        rows.iter().map(decision_from).collect()
    }

    async fn last_decisions(&mut self) -> Result<Vec<(String, i64)>> {
        let rows = self
            .sql("SELECT custodian, MAX(at) AS at FROM decisions GROUP BY custodian")
            .fetch_all(self)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("custodian")?, r.try_get("at")?)))
            .collect()
    }

    async fn decision_steps(&mut self, custodian: &str) -> Result<Vec<(i64, i64)>> {
        let rows = self
            .sql(
                "SELECT totp_step, at FROM decisions WHERE custodian = $1 AND webauthn IS NULL \
             UNION ALL SELECT totp_step, at FROM policy_change_decisions WHERE custodian = $1 AND webauthn IS NULL \
             UNION ALL SELECT totp_step, at FROM key_reset_decisions WHERE custodian = $1 AND webauthn IS NULL",
            )
            .bind(custodian)
            .fetch_all(self)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("totp_step")?, r.try_get("at")?)))
            .collect()
    }
}

pub(super) fn request_from(r: &Row) -> Result<RequestRow> {
    Ok(RequestRow {
        id: r.try_get("id")?,
        credential_id: r.try_get("credential_id")?,
        credential_name: r.try_get("credential_name")?,
        requester: r.try_get("requester")?,
        reason: r.try_get("reason")?,
        ticket: r.try_get("ticket")?,
        policy: r.try_get("policy")?,
        state: r.state("state")?,
        created_at: r.try_get("created_at")?,
        expires_at: r.try_get("expires_at")?,
        approved_at: r.try_get("approved_at")?,
        release_deadline: r.try_get("release_deadline")?,
        released_at: r.try_get("released_at")?,
        released_version: r.try_get("released_version")?,
        denied_at: r.try_get("denied_at")?,
        denied_by: r.try_get("denied_by")?,
    })
}

pub(super) fn decision_from(r: &Row) -> Result<DecisionRow> {
    Ok(DecisionRow {
        request_id: r.try_get("request_id")?,
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
}

/// A decision's columns after its key (`request_id` or `change_id`), in
/// the order both decision tables declare them.
pub(super) fn bind_decision(q: Query, d: &DecisionRow) -> Query {
    q.bind(&d.custodian)
        .bind(d.decision.as_str())
        .bind(&d.reason)
        .bind(super::sql::json_list(&d.groups))
        .bind(d.totp_step)
        .bind(d.at)
        .bind(d.totp_code.as_ref().map(|c| c.expose().to_owned()))
        .bind(&d.webauthn)
}
