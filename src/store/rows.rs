//! The rows the aggregates read and write.

use crate::domain::states::{
    AlertState, CustodianStatus, Decision, PolicyChangeKind, PolicyChangeState, RecoverySetState,
    RotationState, SessionState, SignInMethod, StoredRequestState,
};

#[derive(Debug, Clone)]
pub struct CustodianRow {
    pub name: String,
    pub groups: Vec<String>,
    pub status: CustodianStatus,
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
    /// The credential released; `None` for a root-session request (whose
    /// account and task are a `RootRequestRow`).
    pub credential_id: Option<String>,
    pub credential_name: String,
    pub requester: String,
    pub reason: String,
    pub ticket: Option<String>,
    /// JSON snapshot of the policy at request time.
    pub policy: String,
    pub state: StoredRequestState,
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
    pub decision: Decision,
    pub reason: Option<String>,
    /// The custodian's groups when they decided.
    pub groups: Vec<String>,
    pub totp_step: i64,
    pub at: i64,
    /// The code the decision was made with (spent), re-verified at release;
    /// `None` for decisions made before codes were kept.
    pub totp_code: Option<crate::crypto::totp::SpentCode>,
    /// The assertion of a decision made with a security key (JSON, see
    /// `app::webauthn::Assertion`); `None` for a TOTP decision.
    pub webauthn: Option<String>,
}

impl DecisionRow {
    /// The proof of presence it was made with.
    pub fn factor(&self) -> crate::domain::Factor {
        match self.webauthn {
            Some(_) => crate::domain::Factor::Webauthn,
            None => crate::domain::Factor::Totp,
        }
    }
}

/// A registered security key or passkey.
#[derive(Debug, Clone)]
pub struct WebauthnKeyRow {
    pub credential_id: String,
    pub custodian: String,
    pub name: String,
    /// The library's record of the key (public key, counter at registration).
    pub passkey: String,
    pub counter: i64,
    pub aaguid: Option<String>,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub removed_at: Option<i64>,
}

/// A WebAuthn ceremony in progress.
#[derive(Debug, Clone)]
pub struct CeremonyRow {
    pub id: String,
    pub kind: String,
    pub custodian: String,
    pub session: String,
    pub request_id: Option<String>,
    pub key_name: Option<String>,
    pub nonce: Option<String>,
    pub authorized_by: Option<String>,
    pub state: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct RecoverySetRow {
    pub set_id: String,
    pub threshold: i64,
    pub share_count: i64,
    pub recipient: String,
    pub key_check: String,
    pub state: RecoverySetState,
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
    pub state: SessionState,
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

/// A console session. `id_hash` is the SHA-256 (hex) of the cookie's
/// value, which only the browser holds.
#[derive(Debug, Clone)]
pub struct ConsoleSessionRow {
    pub id_hash: String,
    pub subject: String,
    /// The identity as authenticated at sign-in, as JSON.
    pub identity: String,
    pub method: SignInMethod,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub idle_until: i64,
    pub expires_at: i64,
    pub ended_at: Option<i64>,
    pub ended_by: Option<String>,
}

impl ConsoleSessionRow {
    /// Whether the session still signs its holder in at `now`.
    pub fn is_live(&self, now: i64) -> bool {
        self.ended_at.is_none() && now < self.idle_until && now < self.expires_at
    }
}

/// A one-time sign-in link of the console (only the hash of its secret).
#[derive(Debug, Clone)]
pub struct SignInLinkRow {
    pub id_hash: String,
    pub jti: String,
    pub subject: String,
    /// The roles it signs in with, as a JSON list.
    pub roles: String,
    pub created_at: i64,
    pub created_by: String,
    pub expires_at: i64,
    pub used_at: Option<i64>,
}

/// A rotation of a credential's root access keys.
#[derive(Debug, Clone)]
pub struct KeyRotationRow {
    pub id: String,
    pub credential_id: String,
    pub state: RotationState,
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
    pub state: AlertState,
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
    pub kind: PolicyChangeKind,
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
    pub state: PolicyChangeState,
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

/// A proposed new security key for a custodian with none left.
#[derive(Debug, Clone)]
pub struct KeyResetRow {
    pub id: String,
    pub custodian: String,
    pub proposer: String,
    /// The policy whose quorum decides, and its snapshot (JSON).
    pub policy: String,
    pub quorum: String,
    pub reason: String,
    /// `pending`, `approved`, `denied` or `used`.
    pub state: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub approved_at: Option<i64>,
    pub closed_at: Option<i64>,
}
