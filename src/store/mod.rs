//! The storage port. Every use case runs in one transaction (`Store::begin`)
//! that also appends its audit event, so an action that cannot be audited
//! does not happen.
//!
//! Concurrency: on SQLite a transaction takes the write lock when it begins
//! (`BEGIN IMMEDIATE`), so use cases are serialised; on PostgreSQL the rows a
//! use case decides on are read `FOR UPDATE`, always in the order request →
//! custodian → audit head, and every state change is conditional
//! (`… WHERE state = 'approved' AND release_deadline > now`).

use async_trait::async_trait;

use crate::crypto::chain::AuditEvent;

pub mod postgres;
mod sql;
pub mod sqlite;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule was violated; carries the constraint or table.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The database cannot be reached or timed out.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Every pooled connection stayed in use for the acquire timeout.
    #[error("database busy: no free connection in the pool")]
    Busy,
    #[error("database error: {0}")]
    Other(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(
                db.constraint()
                    .map(str::to_owned)
                    .unwrap_or_else(|| db.message().to_owned()),
            ),
            sqlx::Error::PoolTimedOut => StoreError::Busy,
            sqlx::Error::PoolClosed | sqlx::Error::Io(_) => StoreError::Unavailable(e.to_string()),
            sqlx::Error::Database(db) if db.message().contains("database is locked") => {
                StoreError::Unavailable(e.to_string())
            }
            _ => StoreError::Other(e.to_string()),
        }
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

#[derive(Debug, Clone)]
pub struct CustodianRow {
    pub name: String,
    pub groups: Vec<String>,
    /// `new` (no TOTP yet), `pending` (seed issued, not confirmed), `active`.
    pub status: String,
    pub enrollment_id: Option<String>,
    /// Envelope of the TOTP seed; never leaves the server.
    pub totp_envelope: Option<Vec<u8>>,
    pub last_totp_step: Option<i64>,
    pub locked_until: Option<i64>,
    pub created_at: i64,
    pub created_by: String,
    pub enrolled_at: Option<i64>,
    /// The recovery set the TOTP seed is also wrapped to, and that wrap:
    /// presence can be checked with the rebuilt recovery key while the key
    /// service is down.
    pub totp_recovery_set: Option<String>,
    pub totp_recovery_wrap: Option<Vec<u8>>,
}

#[derive(Debug, Clone)]
pub struct CredentialRow {
    pub id: String,
    pub name: String,
    pub account_id: String,
    pub policy: String,
    pub current_version: i64,
    pub exposed: bool,
    pub exposed_at: Option<i64>,
    pub last_released_at: Option<i64>,
    pub created_at: i64,
    pub created_by: String,
    pub updated_at: i64,
    /// Root access key id deposited in it, if any (not a secret).
    pub access_key_id: Option<String>,
    /// A drill credential: no real secret, released to rehearse.
    pub drill: bool,
    /// When the last rotation reminder went out.
    pub reminded_at: Option<i64>,
    /// The audit key's seal of (id, policy) (`proof::seal_policy_of`).
    pub policy_seal: Option<String>,
}

#[derive(Debug, Clone)]
pub struct VersionRow {
    pub credential_id: String,
    pub version: i64,
    pub secret_store: String,
    pub secret_ref: String,
    pub key_id: String,
    pub field_names: Vec<String>,
    pub created_at: i64,
    pub created_by: String,
    /// The recovery share set the data key is also wrapped to.
    pub recovery_set: Option<String>,
    /// age ciphertext (to the recovery key) of the data key and its binding.
    pub recovery_wrap: Option<Vec<u8>>,
    /// A copy of the envelope, for recovery without the secret store.
    pub recovery_envelope: Option<Vec<u8>>,
}

#[derive(Debug, Clone)]
pub struct RequestRow {
    pub id: String,
    pub credential_id: String,
    pub credential_name: String,
    pub requester: String,
    pub reason: String,
    pub ticket: Option<String>,
    /// JSON snapshot of the policy at request time.
    pub policy: String,
    pub state: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub approved_at: Option<i64>,
    pub release_deadline: Option<i64>,
    pub released_at: Option<i64>,
    pub released_version: Option<i64>,
    pub denied_at: Option<i64>,
    pub denied_by: Option<String>,
}

#[derive(Debug, Clone)]
pub struct DecisionRow {
    pub request_id: String,
    pub custodian: String,
    /// `approve` or `deny`.
    pub decision: String,
    pub reason: Option<String>,
    /// The custodian's groups when they decided.
    pub groups: Vec<String>,
    pub totp_step: i64,
    pub at: i64,
    /// The code the decision was made with (spent), re-verified at release;
    /// `None` for decisions made before codes were kept.
    pub totp_code: Option<crate::crypto::totp::SpentCode>,
}

#[derive(Debug, Clone)]
pub struct RecoverySetRow {
    pub set_id: String,
    pub threshold: i64,
    pub share_count: i64,
    pub recipient: String,
    pub key_check: String,
    pub state: String,
    pub created_at: i64,
    pub created_by: String,
}

#[derive(Debug, Clone)]
pub struct RecoveryShareRow {
    pub set_id: String,
    pub idx: i64,
    pub custodian: String,
    pub age_recipient: String,
    pub commitment: String,
    pub checked_at: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct RecoverySessionRow {
    pub id: String,
    pub request_id: String,
    pub set_id: String,
    /// The session's ephemeral age recipient; its identity lives only in
    /// the memory of the process that opened it.
    pub recipient: String,
    pub replica: String,
    pub opened_by: String,
    pub opened_at: i64,
    pub expires_at: i64,
    /// `open`, `released` or `superseded`.
    pub state: String,
    pub closed_at: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct RecoverySubmissionRow {
    pub session_id: String,
    pub idx: i64,
    pub custodian: String,
    pub submitted_at: i64,
    /// The custodian's last accepted TOTP step before this submission.
    pub prior_step: Option<i64>,
}

/// A rotation of a credential's root access keys.
#[derive(Debug, Clone)]
pub struct KeyRotationRow {
    pub id: String,
    pub credential_id: String,
    /// `started`, `deposited`, `verified` or `done`.
    pub state: String,
    pub old_key_id: String,
    pub new_key_id: Option<String>,
    pub started_by: String,
    pub started_at: i64,
    pub updated_at: i64,
}

/// One alert to deliver to one channel.
#[derive(Debug, Clone)]
pub struct AlertRow {
    pub id: String,
    /// The audit event it announces.
    pub seq: i64,
    pub channel: String,
    pub kind: String,
    /// The message, without any secret (keys and URLs are added at delivery).
    pub payload: String,
    /// `pending`, `delivered` or `dead`.
    pub state: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub delivered_at: Option<i64>,
}

/// A policy changed at runtime (the files are version 0).
#[derive(Debug, Clone)]
pub struct PolicyVersionRow {
    pub name: String,
    pub version: i64,
    /// JSON of the policy.
    pub body: String,
    pub at: i64,
    pub by: String,
    pub change_id: String,
    /// The audit key's seal (`proof::seal_version`).
    pub seal: String,
}

#[derive(Debug, Clone)]
pub struct PolicyChangeRow {
    pub id: String,
    /// `update` or `move`.
    pub kind: String,
    /// The policy whose quorum decides (and, for an update, that changes).
    pub policy: String,
    pub base_version: i64,
    /// JSON snapshot of `policy` when proposed.
    pub quorum: String,
    pub proposed: Option<String>,
    pub credential_id: Option<String>,
    pub to_policy: Option<String>,
    /// JSON list of the changes, in words.
    pub diff: String,
    pub reason: String,
    pub proposer: String,
    /// `pending`, `applied`, `denied` or `superseded`.
    pub state: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub decided_at: Option<i64>,
}

/// Delivery state of one audit sink.
#[derive(Debug, Clone, Default)]
pub struct SinkCursor {
    pub sink: String,
    pub events_through: i64,
    pub checkpoints_through: i64,
    pub lease_owner: Option<String>,
    pub lease_until: Option<i64>,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    pub last_attempt_at: Option<i64>,
    pub delivered_at: Option<i64>,
}

/// Which audit events a search returns (all given conditions hold).
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// `ts_ms >= since_ms`.
    pub since_ms: Option<i64>,
    /// `ts_ms < until_ms`.
    pub until_ms: Option<i64>,
    pub actor: Option<String>,
    pub action: Option<String>,
    pub outcome: Option<String>,
    /// Events about this credential: its own target, or a request or
    /// recovery naming it in `details.credential`.
    pub credential: Option<String>,
    /// Events with exactly this target (e.g. `request:ID`).
    pub target: Option<String>,
}

impl AuditFilter {
    /// The WHERE conditions after `seq > $1` and their values, numbered
    /// from `$2` (the same SQL on both backends).
    pub fn sql(&self) -> (String, Vec<SqlValue>) {
        let mut sql = String::new();
        let mut values = Vec::new();
        let mut add = |cond: &str, v: SqlValue, values: &mut Vec<SqlValue>| {
            values.push(v);
            sql.push_str(&cond.replace('?', &format!("${}", values.len() + 1)));
        };
        if let Some(t) = self.since_ms {
            add(" AND ts_ms >= ?", SqlValue::Int(t), &mut values);
        }
        if let Some(t) = self.until_ms {
            add(" AND ts_ms < ?", SqlValue::Int(t), &mut values);
        }
        if let Some(a) = &self.actor {
            add(" AND actor = ?", SqlValue::Text(a.clone()), &mut values);
        }
        if let Some(a) = &self.action {
            add(" AND action = ?", SqlValue::Text(a.clone()), &mut values);
        }
        if let Some(o) = &self.outcome {
            add(" AND outcome = ?", SqlValue::Text(o.clone()), &mut values);
        }
        if let Some(t) = &self.target {
            add(" AND target = ?", SqlValue::Text(t.clone()), &mut values);
        }
        if let Some(c) = &self.credential {
            add(
                " AND (target = ?",
                SqlValue::Text(format!("credential:{c}")),
                &mut values,
            );
            let escaped: String = c
                .chars()
                .flat_map(|ch| match ch {
                    '%' | '_' | '\\' => vec!['\\', ch],
                    _ => vec![ch],
                })
                .collect();
            add(
                " OR details LIKE ? ESCAPE '\\')",
                SqlValue::Text(format!("%\"credential\":\"{escaped}\"%")),
                &mut values,
            );
        }
        (sql, values)
    }
}

/// A value bound to a dynamically built statement.
#[derive(Debug, Clone)]
pub enum SqlValue {
    Int(i64),
    Text(String),
}

#[derive(Debug, Clone, Default)]
pub struct RequestFilter {
    pub requester: Option<String>,
    pub credential_id: Option<String>,
    pub limit: i64,
}

#[async_trait]
pub trait Store: Send + Sync {
    fn backend(&self) -> Backend;
    /// Begin a read-write transaction (on SQLite it takes the write lock
    /// at once, so it never fails half-way on an upgrade).
    async fn begin(&self) -> Result<Box<dyn Tx>>;
    /// Begin a transaction that only reads (on SQLite it does not wait for
    /// writers). Writing in it is a bug.
    async fn begin_read(&self) -> Result<Box<dyn Tx>>;
    /// Begin a read-only transaction that sees one consistent snapshot for
    /// its whole life (for verifying the audit chain while writers go on).
    /// Only `audit_head_peek` and `audit_events` may be used in it.
    async fn begin_snapshot(&self) -> Result<Box<dyn Tx>>;
    async fn ping(&self) -> Result<()>;
    /// Envelopes of the database secret store, written outside the use
    /// case's transaction under a fresh id (an orphan left by a failed
    /// deposit is inert ciphertext).
    async fn put_envelope(
        &self,
        id: &str,
        credential_id: &str,
        version: i64,
        envelope: &[u8],
    ) -> Result<()>;
    async fn get_envelope(&self, id: &str, credential_id: &str) -> Result<Option<Vec<u8>>>;
    /// Swap an envelope for a re-wrapped one, only if it still holds `old`.
    async fn replace_envelope(
        &self,
        id: &str,
        credential_id: &str,
        old: &[u8],
        new: &[u8],
    ) -> Result<bool>;
    async fn close(&self);
}

#[async_trait]
pub trait Tx: Send {
    async fn commit(self: Box<Self>) -> Result<()>;
    async fn rollback(self: Box<Self>) -> Result<()>;

    async fn insert_custodian(&mut self, c: &CustodianRow) -> Result<()>;
    /// Read (and on PostgreSQL lock) one custodian.
    async fn custodian(&mut self, name: &str) -> Result<Option<CustodianRow>>;
    async fn custodians(&mut self) -> Result<Vec<CustodianRow>>;
    async fn set_enrollment(
        &mut self,
        name: &str,
        status: &str,
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

    async fn insert_credential(&mut self, c: &CredentialRow) -> Result<()>;
    async fn credential_by_name(&mut self, name: &str) -> Result<Option<CredentialRow>>;
    async fn credential_by_id(&mut self, id: &str) -> Result<Option<CredentialRow>>;
    async fn credentials(&mut self) -> Result<Vec<CredentialRow>>;
    async fn insert_version(&mut self, v: &VersionRow) -> Result<()>;
    async fn version(&mut self, credential_id: &str, version: i64) -> Result<Option<VersionRow>>;
    async fn versions(&mut self, credential_id: &str) -> Result<Vec<VersionRow>>;
    /// Make `version` current and clear `exposed`, only if it is the next
    /// version; false if another deposit won.
    async fn advance_credential_version(&mut self, id: &str, version: i64, at: i64)
        -> Result<bool>;
    async fn mark_exposed(&mut self, id: &str, at: i64) -> Result<()>;
    async fn set_access_key_id(&mut self, id: &str, key: Option<&str>) -> Result<()>;
    /// Record a rotation reminder for a credential exposed since before
    /// `before`, only if the last reminder is older than `before`; false if
    /// it is not due or another process sent it.
    async fn mark_reminded(&mut self, id: &str, at: i64, before: i64) -> Result<bool>;
    /// Point a version at its re-wrapped envelope, only if it still points
    /// at `old_ref`.
    async fn set_version_location(
        &mut self,
        credential_id: &str,
        version: i64,
        old_ref: &str,
        new_ref: &str,
        key_id: &str,
    ) -> Result<bool>;
    /// Swap a custodian's TOTP seed envelope for a re-wrapped one, only if
    /// it still holds `old`.
    async fn replace_totp_envelope(&mut self, name: &str, old: &[u8], new: &[u8]) -> Result<bool>;

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
    async fn mark_released(&mut self, id: &str, at: i64, version: i64) -> Result<bool>;

    /// Requests of credentials under `policy` that are open at `now`
    /// (pending, or approved and not yet released, within their deadlines).
    /// On PostgreSQL the policy's credentials are locked first, so two
    /// requests cannot both take the last place.
    async fn count_open_requests(&mut self, policy: &str, now: i64) -> Result<i64>;

    async fn insert_key_rotation(&mut self, r: &KeyRotationRow) -> Result<()>;
    /// The rotation in progress for a credential, if any.
    async fn open_key_rotation(&mut self, credential_id: &str) -> Result<Option<KeyRotationRow>>;
    /// The credentials with a rotation in progress (no lock).
    async fn open_key_rotation_ids(&mut self) -> Result<Vec<String>>;
    /// Move a rotation from `from` to `to`, only if it is still at `from`.
    async fn advance_key_rotation(
        &mut self,
        id: &str,
        from: &str,
        to: &str,
        new_key_id: Option<&str>,
        at: i64,
    ) -> Result<bool>;

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
    /// The channel's pending alerts, in event order.
    async fn due_alerts(&mut self, channel: &str, now: i64, limit: i64) -> Result<Vec<AlertRow>>;
    async fn set_alert_state(
        &mut self,
        id: &str,
        state: &str,
        attempts: i64,
        next_attempt_at: i64,
        last_error: Option<&str>,
        delivered_at: Option<i64>,
    ) -> Result<()>;
    async fn alerts(&mut self, state: Option<&str>, limit: i64) -> Result<Vec<AlertRow>>;
    /// dead → pending, attempts reset.
    async fn retry_alert(&mut self, id: &str) -> Result<bool>;

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
    async fn close_policy_change(&mut self, id: &str, state: &str, at: i64) -> Result<bool>;
    /// Decisions on a change (the same rows as a request's, keyed by change).
    async fn insert_policy_change_decision(
        &mut self,
        change_id: &str,
        d: &DecisionRow,
    ) -> Result<()>;
    async fn policy_change_decisions(&mut self, change_id: &str) -> Result<Vec<DecisionRow>>;
    /// Move a credential to another policy, only if it is still under `from`.
    async fn set_credential_policy(
        &mut self,
        id: &str,
        from: &str,
        to: &str,
        at: i64,
        seal: &str,
    ) -> Result<bool>;

    /// Each custodian's latest decision on a request: (name, at).
    async fn last_decisions(&mut self) -> Result<Vec<(String, i64)>>;

    async fn insert_decision(&mut self, d: &DecisionRow) -> Result<()>;
    async fn decisions(&mut self, request_id: &str) -> Result<Vec<DecisionRow>>;
    /// Every TOTP step a custodian decided with, on requests and policy
    /// changes: (step, at).
    async fn decision_steps(&mut self, custodian: &str) -> Result<Vec<(i64, i64)>>;

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

    /// The sink's cursor, created at zero if new.
    async fn sink_cursor(&mut self, sink: &str) -> Result<SinkCursor>;
    /// Take the sink's lease until `until`, if it is free and a delivery is
    /// due at `now`.
    async fn lease_sink(&mut self, sink: &str, owner: &str, now: i64, until: i64) -> Result<bool>;
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
    async fn close_recovery_session(&mut self, id: &str, state: &str, at: i64) -> Result<bool>;
    async fn insert_recovery_submission(&mut self, s: &RecoverySubmissionRow) -> Result<()>;
    async fn recovery_submissions(
        &mut self,
        session_id: &str,
    ) -> Result<Vec<RecoverySubmissionRow>>;
    async fn delete_recovery_submission(&mut self, session_id: &str, idx: i64) -> Result<()>;

    /// The figures `/metrics` reports from the database.
    async fn custody_gauges(&mut self, now: i64) -> Result<crate::metrics::CustodyGauges>;

    async fn is_token_revoked(&mut self, jti: &str) -> Result<bool>;
    async fn revoke_token(&mut self, jti: &str, at: i64, by: &str) -> Result<bool>;
}

/// The connection pool's bounds.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// `None`: 8 on SQLite (one writer at a time anyway), 16 on PostgreSQL.
    pub max_connections: Option<u32>,
    /// How long a use case waits for a connection before it is refused
    /// with `database_busy`.
    pub acquire_timeout: std::time::Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            max_connections: None,
            acquire_timeout: std::time::Duration::from_secs(10),
        }
    }
}

/// Open the store a database URL names (`sqlite:` or `postgres:`) and
/// apply its migrations unless told not to.
pub async fn connect(url: &str, migrate: bool) -> anyhow::Result<std::sync::Arc<dyn Store>> {
    connect_with(url, migrate, &PoolSettings::default()).await
}

/// `connect`, with the pool bounded as configured.
pub async fn connect_with(
    url: &str,
    migrate: bool,
    pool: &PoolSettings,
) -> anyhow::Result<std::sync::Arc<dyn Store>> {
    if url.starts_with("sqlite:") {
        Ok(std::sync::Arc::new(
            sqlite::SqliteStore::connect(url, migrate, pool).await?,
        ))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Ok(std::sync::Arc::new(
            postgres::PgStore::connect(url, migrate, pool).await?,
        ))
    } else {
        anyhow::bail!("database URL must start with sqlite: or postgres:")
    }
}
