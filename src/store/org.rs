//! The organisation's inventory: what the last `org sync` saw, and each
//! account's root posture.

use async_trait::async_trait;

use super::sql::{Row, SqlTx};
use super::*;

/// The organisation as the last sync saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgStateRow {
    pub organization_id: String,
    pub management_account_id: String,
    pub feature_set: String,
    pub trusted_access: bool,
    pub root_credentials_management: bool,
    pub root_sessions: bool,
    pub synced_at: i64,
}

/// One account of the inventory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgAccountRow {
    pub account_id: String,
    pub name: String,
    pub email: String,
    pub status: String,
    pub is_management: bool,
    pub first_seen_at: i64,
    pub last_seen_at: i64,
    /// JSON of `org::RootPosture`.
    pub posture: Option<String>,
    pub posture_at: Option<i64>,
    pub posture_error: Option<String>,
}

/// What a root-session request asks for, and how its execution went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootRequestRow {
    pub request_id: String,
    pub policy: String,
    pub account_id: String,
    /// `org::RootTask`'s name.
    pub task: String,
    pub duration_secs: i64,
    /// The bucket or queue URL of an unlock task.
    pub resource: Option<String>,
    /// `execute` or `hand_over`.
    pub delivery: String,
    pub tuple_sha256: String,
    pub claimed_until: i64,
    pub attempts: i64,
    /// JSON: the last attempt's steps.
    pub progress: Option<String>,
    /// JSON: the task's result, once done.
    pub outcome: Option<String>,
}

#[async_trait]
pub trait OrgStore: Send {
    async fn insert_root_request(&mut self, r: &RootRequestRow) -> Result<()>;
    async fn root_request(&mut self, request_id: &str) -> Result<Option<RootRequestRow>>;
    /// Hold the request's execution until `until` if no release holds it
    /// at `now`; counts the attempt.
    async fn claim_root_request(&mut self, request_id: &str, now: i64, until: i64) -> Result<bool>;
    /// Root-session requests whose last attempt stopped before the task's
    /// end and that are still approved, not released: each with its
    /// request's release deadline.
    async fn stopped_root_requests(&mut self) -> Result<Vec<(RootRequestRow, Option<i64>)>>;
    /// Record an attempt's steps (and its result, once done) and let go.
    async fn finish_root_attempt(
        &mut self,
        request_id: &str,
        progress: &str,
        outcome: Option<&str>,
    ) -> Result<()>;
    async fn org_state(&mut self) -> Result<Option<OrgStateRow>>;
    async fn put_org_state(&mut self, s: &OrgStateRow) -> Result<()>;
    /// Claim the scheduled sync until `until` if nobody holds it at `now`
    /// (and one is due: the last sync is older than `due_before`).
    async fn claim_org_sync(&mut self, now: i64, due_before: i64, until: i64) -> Result<bool>;
    async fn org_accounts(&mut self) -> Result<Vec<OrgAccountRow>>;
    async fn org_account(&mut self, id: &str) -> Result<Option<OrgAccountRow>>;
    /// Insert or refresh an account as a sync listed it (its posture kept).
    async fn see_org_account(&mut self, a: &OrgAccountRow) -> Result<()>;
    /// Mark GONE every account the sync at `seen_at` did not list; how many.
    async fn retire_unseen_org_accounts(&mut self, seen_at: i64) -> Result<u64>;
    async fn set_org_posture(
        &mut self,
        id: &str,
        posture: Option<&str>,
        error: Option<&str>,
        at: i64,
    ) -> Result<()>;
}

fn state_from(r: &Row) -> Result<OrgStateRow> {
    Ok(OrgStateRow {
        organization_id: r.try_get("organization_id")?,
        management_account_id: r.try_get("management_account_id")?,
        feature_set: r.try_get("feature_set")?,
        trusted_access: r.try_get("trusted_access")?,
        root_credentials_management: r.try_get("root_credentials_management")?,
        root_sessions: r.try_get("root_sessions")?,
        synced_at: r.try_get("synced_at")?,
    })
}

fn account_from(r: &Row) -> Result<OrgAccountRow> {
    Ok(OrgAccountRow {
        account_id: r.try_get("account_id")?,
        name: r.try_get("name")?,
        email: r.try_get("email")?,
        status: r.try_get("status")?,
        is_management: r.try_get("is_management")?,
        first_seen_at: r.try_get("first_seen_at")?,
        last_seen_at: r.try_get("last_seen_at")?,
        posture: r.try_get("posture")?,
        posture_at: r.try_get("posture_at")?,
        posture_error: r.try_get("posture_error")?,
    })
}

fn root_request_from(r: &Row) -> Result<RootRequestRow> {
    Ok(RootRequestRow {
        request_id: r.try_get("request_id")?,
        policy: r.try_get("policy")?,
        account_id: r.try_get("account_id")?,
        task: r.try_get("task")?,
        duration_secs: r.try_get("duration_secs")?,
        resource: r.try_get("resource")?,
        delivery: r.try_get("delivery")?,
        tuple_sha256: r.try_get("tuple_sha256")?,
        claimed_until: r.try_get("claimed_until")?,
        attempts: r.try_get("attempts")?,
        progress: r.try_get("progress")?,
        outcome: r.try_get("outcome")?,
    })
}

#[async_trait]
impl OrgStore for SqlTx {
    async fn insert_root_request(&mut self, r: &RootRequestRow) -> Result<()> {
        self.sql(
            "INSERT INTO root_requests (request_id, policy, account_id, task, duration_secs, \
             resource, delivery, tuple_sha256) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&r.request_id)
        .bind(&r.policy)
        .bind(&r.account_id)
        .bind(&r.task)
        .bind(r.duration_secs)
        .bind(&r.resource)
        .bind(&r.delivery)
        .bind(&r.tuple_sha256)
        .execute(self)
        .await?;
        Ok(())
    }

    async fn root_request(&mut self, request_id: &str) -> Result<Option<RootRequestRow>> {
        let r = self
            .sql("SELECT * FROM root_requests WHERE request_id = $1")
            .bind(request_id)
            .fetch_optional(self)
            .await?;
        r.as_ref().map(root_request_from).transpose()
    }

    async fn claim_root_request(&mut self, request_id: &str, now: i64, until: i64) -> Result<bool> {
        let r = self
            .sql(
                "UPDATE root_requests SET claimed_until = $1, attempts = attempts + 1 \
                 WHERE request_id = $2 AND claimed_until <= $3",
            )
            .bind(until)
            .bind(request_id)
            .bind(now)
            .execute(self)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn stopped_root_requests(&mut self) -> Result<Vec<(RootRequestRow, Option<i64>)>> {
        let rows = self
            .sql(
                "SELECT q.*, r.release_deadline AS release_deadline FROM root_requests q \
                 JOIN requests r ON r.id = q.request_id \
                 WHERE r.state = 'approved' AND q.progress IS NOT NULL AND q.outcome IS NULL \
                 ORDER BY q.request_id",
            )
            .fetch_all(self)
            .await?;
        rows.iter()
            .map(|r| Ok((root_request_from(r)?, r.try_get("release_deadline")?)))
            .collect()
    }

    async fn finish_root_attempt(
        &mut self,
        request_id: &str,
        progress: &str,
        outcome: Option<&str>,
    ) -> Result<()> {
        self.sql(
            "UPDATE root_requests SET progress = $1, outcome = COALESCE($2, outcome), \
             claimed_until = 0 WHERE request_id = $3",
        )
        .bind(progress)
        .bind(outcome)
        .bind(request_id)
        .execute(self)
        .await?;
        Ok(())
    }

    async fn org_state(&mut self) -> Result<Option<OrgStateRow>> {
        let r = self
            .sql("SELECT * FROM org_state WHERE id = 1")
            .fetch_optional(self)
            .await?;
        r.as_ref().map(state_from).transpose()
    }

    async fn put_org_state(&mut self, s: &OrgStateRow) -> Result<()> {
        self.sql(
            "INSERT INTO org_state (id, organization_id, management_account_id, feature_set, \
             trusted_access, root_credentials_management, root_sessions, synced_at) \
             VALUES (1, $1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (id) DO UPDATE SET organization_id = excluded.organization_id, \
             management_account_id = excluded.management_account_id, \
             feature_set = excluded.feature_set, trusted_access = excluded.trusted_access, \
             root_credentials_management = excluded.root_credentials_management, \
             root_sessions = excluded.root_sessions, synced_at = excluded.synced_at",
        )
        .bind(&s.organization_id)
        .bind(&s.management_account_id)
        .bind(&s.feature_set)
        .bind(s.trusted_access)
        .bind(s.root_credentials_management)
        .bind(s.root_sessions)
        .bind(s.synced_at)
        .execute(self)
        .await?;
        Ok(())
    }

    async fn claim_org_sync(&mut self, now: i64, due_before: i64, until: i64) -> Result<bool> {
        // No row yet: the first sync is due, and the row it writes holds
        // no claim; two replicas racing both run it (idempotent).
        if self.org_state().await?.is_none() {
            return Ok(true);
        }
        let r = self
            .sql(
                "UPDATE org_state SET sync_claimed_until = $1 \
                 WHERE id = 1 AND sync_claimed_until <= $2 AND synced_at < $3",
            )
            .bind(until)
            .bind(now)
            .bind(due_before)
            .execute(self)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn org_accounts(&mut self) -> Result<Vec<OrgAccountRow>> {
        let rows = self
            .sql("SELECT * FROM org_accounts ORDER BY account_id")
            .fetch_all(self)
            .await?;
        rows.iter().map(account_from).collect()
    }

    async fn org_account(&mut self, id: &str) -> Result<Option<OrgAccountRow>> {
        let r = self
            .sql("SELECT * FROM org_accounts WHERE account_id = $1")
            .bind(id)
            .fetch_optional(self)
            .await?;
        r.as_ref().map(account_from).transpose()
    }

    async fn see_org_account(&mut self, a: &OrgAccountRow) -> Result<()> {
        self.sql(
            "INSERT INTO org_accounts (account_id, name, email, status, is_management, \
             first_seen_at, last_seen_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (account_id) DO UPDATE SET name = excluded.name, \
             email = excluded.email, status = excluded.status, \
             is_management = excluded.is_management, last_seen_at = excluded.last_seen_at",
        )
        .bind(&a.account_id)
        .bind(&a.name)
        .bind(&a.email)
        .bind(&a.status)
        .bind(a.is_management)
        .bind(a.first_seen_at)
        .bind(a.last_seen_at)
        .execute(self)
        .await?;
        Ok(())
    }

    async fn retire_unseen_org_accounts(&mut self, seen_at: i64) -> Result<u64> {
        let r = self
            .sql(
                "UPDATE org_accounts SET status = 'GONE' \
                 WHERE last_seen_at < $1 AND status <> 'GONE'",
            )
            .bind(seen_at)
            .execute(self)
            .await?;
        Ok(r.rows_affected())
    }

    async fn set_org_posture(
        &mut self,
        id: &str,
        posture: Option<&str>,
        error: Option<&str>,
        at: i64,
    ) -> Result<()> {
        // A failed audit keeps the last posture read, and says why.
        self.sql(
            "UPDATE org_accounts SET posture = COALESCE($1, posture), \
             posture_at = CASE WHEN $1 IS NULL THEN posture_at ELSE $2 END, \
             posture_error = $3 WHERE account_id = $4",
        )
        .bind(posture)
        .bind(at)
        .bind(error)
        .bind(id)
        .execute(self)
        .await?;
        Ok(())
    }
}
