//! What the API returns and accepts. Secret values appear only in
//! `EnrollmentView` (once, at enrolment) and `ReleaseView` (once, at
//! release), each behind `secrecy` types whose `Debug` is redacted.

use std::collections::BTreeMap;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize, Serializer};
use utoipa::ToSchema;

use crate::clock::rfc3339;
use crate::domain::policy::Satisfiability;
use crate::domain::states::Decision;
use crate::domain::{Policy, RequestState, Role};
use crate::store::{CredentialRow, CustodianRow, DecisionRow, RequestRow, VersionRow};

fn ts(ms: Option<i64>) -> Option<String> {
    ms.map(rfc3339)
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CustodianView {
    pub name: String,
    pub groups: Vec<String>,
    /// `new` (no TOTP yet), `pending` (enrolled, not confirmed) or `active`.
    pub status: String,
    pub locked_until: Option<String>,
    pub enrolled_at: Option<String>,
    pub created_at: String,
    pub created_by: String,
}

impl CustodianView {
    pub fn from_row(c: &CustodianRow, now: i64) -> Self {
        CustodianView {
            name: c.name.clone(),
            groups: c.groups.clone(),
            status: c.status.to_string(),
            locked_until: c.locked_until.filter(|&u| u > now).map(rfc3339),
            enrolled_at: ts(c.enrolled_at),
            created_at: rfc3339(c.created_at),
            created_by: c.created_by.clone(),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddCustodian {
    pub name: String,
    pub groups: Vec<String>,
}

/// Shown once: the otpauth URI carries the TOTP seed.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct EnrollmentView {
    pub custodian: String,
    /// `otpauth://totp/...` for an authenticator app (160-bit secret, SHA-1,
    /// 6 digits, 30 s). Shown once; confirm with a first code.
    #[serde(serialize_with = "expose")]
    #[schema(value_type = String)]
    pub otpauth_uri: SecretString,
    pub algorithm: String,
    pub digits: u8,
    pub period: u64,
}

impl std::fmt::Debug for EnrollmentView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnrollmentView")
            .field("custodian", &self.custodian)
            .finish_non_exhaustive()
    }
}

fn expose<S: Serializer>(s: &SecretString, ser: S) -> Result<S::Ok, S::Error> {
    ser.serialize_str(s.expose_secret())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TotpCode {
    /// The current 6-digit code from the custodian's authenticator.
    #[schema(value_type = String, example = "123456")]
    pub code: SecretString,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DenyBody {
    #[schema(value_type = String, example = "123456")]
    pub code: SecretString,
    pub reason: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DepositBody {
    pub name: String,
    /// 12-digit AWS account id.
    pub account_id: String,
    pub policy: String,
    /// Field name to secret value, e.g. `password`, `mfa_seed`.
    #[schema(value_type = BTreeMap<String, String>)]
    pub fields: BTreeMap<String, SecretString>,
    /// Fields holding a TOTP seed (e.g. the root user's virtual MFA device)
    /// that are released as their current 6-digit code, never as the seed.
    #[serde(default)]
    pub code_only: Vec<String>,
    /// The id of root access keys deposited here (AKIA…): the review asks
    /// IAM when they were last used.
    pub access_key_id: Option<String>,
    /// A drill credential (no real secret): releasing it rehearses the
    /// policy's whole break-glass path.
    #[serde(default)]
    pub drill: bool,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateBody {
    #[schema(value_type = BTreeMap<String, String>)]
    pub fields: BTreeMap<String, SecretString>,
    /// As at deposit: TOTP seeds released only as codes.
    #[serde(default)]
    pub code_only: Vec<String>,
    /// As at deposit: the new access key id, if the version holds one.
    pub access_key_id: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct VersionView {
    pub version: i64,
    pub field_names: Vec<String>,
    pub key_id: String,
    pub secret_store: String,
    pub created_at: String,
    pub created_by: String,
}

impl From<&VersionRow> for VersionView {
    fn from(v: &VersionRow) -> Self {
        VersionView {
            version: v.version,
            field_names: v.field_names.clone(),
            key_id: v.key_id.clone(),
            secret_store: v.secret_store.clone(),
            created_at: rfc3339(v.created_at),
            created_by: v.created_by.clone(),
        }
    }
}

/// Credential metadata; never a value.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CredentialView {
    pub name: String,
    pub account_id: String,
    pub policy: String,
    pub current_version: i64,
    /// Released since the last deposit: rotate it.
    pub exposed: bool,
    pub exposed_at: Option<String>,
    pub last_released_at: Option<String>,
    pub created_at: String,
    pub created_by: String,
    pub updated_at: String,
    pub access_key_id: Option<String>,
    pub drill: bool,
    pub versions: Vec<VersionView>,
}

impl CredentialView {
    pub fn new(c: &CredentialRow, versions: &[VersionRow]) -> Self {
        CredentialView {
            name: c.name.clone(),
            account_id: c.account_id.clone(),
            policy: c.policy.clone(),
            current_version: c.current_version,
            exposed: c.exposed,
            exposed_at: ts(c.exposed_at),
            last_released_at: ts(c.last_released_at),
            created_at: rfc3339(c.created_at),
            created_by: c.created_by.clone(),
            updated_at: rfc3339(c.updated_at),
            access_key_id: c.access_key_id.clone(),
            drill: c.drill,
            versions: versions.iter().map(VersionView::from).collect(),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRequestBody {
    pub credential: String,
    /// Why the credential is needed; shown to custodians.
    pub reason: String,
    /// Incident or ticket reference.
    pub ticket: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DecisionView {
    pub custodian: String,
    /// `approve` or `deny`.
    pub decision: String,
    pub reason: Option<String>,
    pub at: String,
    /// The proof of presence: `totp` or `webauthn`.
    pub presence: crate::domain::Factor,
}

impl From<&DecisionRow> for DecisionView {
    fn from(d: &DecisionRow) -> Self {
        DecisionView {
            custodian: d.custodian.clone(),
            decision: d.decision.to_string(),
            reason: d.reason.clone(),
            at: rfc3339(d.at),
            presence: d.factor(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RequestView {
    pub id: String,
    pub credential: String,
    pub requester: String,
    pub reason: String,
    pub ticket: Option<String>,
    pub state: RequestState,
    pub policy: String,
    /// "2 of sre AND 1 of security".
    pub quorum: String,
    pub approvals: usize,
    pub approvals_needed: u32,
    pub decisions: Vec<DecisionView>,
    pub created_at: String,
    pub expires_at: String,
    pub approved_at: Option<String>,
    pub release_deadline: Option<String>,
    pub released_at: Option<String>,
    pub released_version: Option<i64>,
    /// What a root-session request asks for (absent for a credential).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_session: Option<RootRequestView>,
}

/// A root-session request's tuple, as the quorum approves it, and how its
/// execution went.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RootRequestView {
    pub account_id: String,
    /// One of the five task policies.
    pub task: String,
    pub duration_secs: i64,
    /// The bucket or queue URL of an unlock task.
    pub resource: Option<String>,
    /// `execute` (the service runs the task) or `hand_over` (the requester
    /// receives the session's credentials once).
    pub delivery: String,
    /// SHA-256 of the tuple (account, task, duration, resource, delivery),
    /// as the signed `request.create` event records it.
    pub tuple_sha256: String,
    /// Releases that started executing the task.
    pub attempts: i64,
    /// The last attempt's steps (and its error, if it stopped).
    pub progress: Option<serde_json::Value>,
}

impl From<&crate::store::RootRequestRow> for RootRequestView {
    fn from(r: &crate::store::RootRequestRow) -> Self {
        RootRequestView {
            account_id: r.account_id.clone(),
            task: r.task.clone(),
            duration_secs: r.duration_secs,
            resource: r.resource.clone(),
            delivery: r.delivery.clone(),
            tuple_sha256: r.tuple_sha256.clone(),
            attempts: r.attempts,
            progress: r
                .progress
                .as_deref()
                .and_then(|p| serde_json::from_str(p).ok()),
        }
    }
}

/// What a release of a root-session request did.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RootTaskView {
    pub account_id: String,
    pub task: String,
    pub delivery: String,
    /// The root session's access key id (its secret is never kept).
    pub session_key_id: String,
    pub session_expires_at: String,
    /// What the task did (absent when the session is handed over).
    pub run: Option<crate::org::TaskRun>,
}

impl RequestView {
    /// With the root-session tuple, when the request is one.
    pub fn with_root(mut self, root: Option<&crate::store::RootRequestRow>) -> Self {
        self.root_session = root.map(RootRequestView::from);
        self
    }

    pub fn new(r: &RequestRow, policy: &Policy, decisions: &[DecisionRow], now: i64) -> Self {
        let state = RequestState::effective(
            crate::domain::request::StoredState {
                state: r.state,
                expires_at: r.expires_at,
                release_deadline: r.release_deadline,
            },
            now,
        );
        RequestView {
            id: r.id.clone(),
            credential: r.credential_name.clone(),
            requester: r.requester.clone(),
            reason: r.reason.clone(),
            ticket: r.ticket.clone(),
            state,
            policy: policy.name.to_string(),
            quorum: policy.describe(),
            approvals: decisions
                .iter()
                .filter(|d| d.decision == Decision::Approve)
                .count(),
            approvals_needed: policy.approvals_needed(),
            decisions: decisions.iter().map(DecisionView::from).collect(),
            created_at: rfc3339(r.created_at),
            expires_at: rfc3339(r.expires_at),
            approved_at: ts(r.approved_at),
            release_deadline: ts(r.release_deadline),
            released_at: ts(r.released_at),
            released_version: r.released_version,
            root_session: None,
        }
    }
}

/// The released credential. Serialised once into the response, then
/// dropped (the values are zeroized).
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ReleaseView {
    pub request_id: String,
    pub credential: String,
    pub account_id: String,
    pub version: i64,
    #[serde(serialize_with = "expose_map")]
    #[schema(value_type = BTreeMap<String, String>)]
    pub fields: BTreeMap<String, SecretString>,
    /// Fields released as their current TOTP code instead of the seed.
    pub codes: Vec<String>,
    /// When those codes stop being valid (the end of their 30 s step).
    pub codes_valid_until: Option<String>,
    /// For a root-session request: what the release did (its `fields`
    /// are the session's credentials when it is handed over, else none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_task: Option<RootTaskView>,
}

impl std::fmt::Debug for ReleaseView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReleaseView")
            .field("request_id", &self.request_id)
            .field("credential", &self.credential)
            .field("version", &self.version)
            .field("fields", &self.fields.keys().collect::<Vec<_>>())
            .finish()
    }
}

fn expose_map<S: Serializer>(
    m: &BTreeMap<String, SecretString>,
    ser: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut out = ser.serialize_map(Some(m.len()))?;
    for (k, v) in m {
        out.serialize_entry(k, v.expose_secret())?;
    }
    out.end()
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PolicyView {
    #[serde(flatten)]
    pub policy: Policy,
    pub quorum: String,
    pub satisfiability: Satisfiability,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WhoAmI {
    pub subject: String,
    /// The token's id (`jti`), for `breakglass token revoke`.
    pub token_id: String,
    pub roles: Vec<Role>,
    pub expires_at: String,
    /// Present when the subject is a custodian.
    pub custodian: Option<CustodianView>,
    /// The console's address (`[console] public_url`), where security keys
    /// are used; absent when it is not configured.
    pub console_url: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShareCheckBody {
    pub set_id: String,
    pub index: u8,
    /// The share's commitment (hex SHA-256), computed by the custodian from
    /// their decrypted share; the share itself never leaves their machine.
    pub commitment: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ShareCheckView {
    pub set_id: String,
    pub index: u8,
    pub custodian: String,
    pub threshold: i64,
    pub share_count: i64,
    pub checked_at: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeBody {
    pub jti: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RevokedView {
    pub jti: String,
    pub revoked: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeSessionsBody {
    /// Whose console sessions to end (a token subject).
    pub subject: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RevokedSessionsView {
    pub subject: String,
    /// How many live sessions were ended.
    pub sessions_ended: u64,
}

/// An online recovery session.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RecoverySessionView {
    pub id: String,
    pub request_id: String,
    pub credential: String,
    pub set_id: String,
    /// Shares needed to rebuild the recovery key.
    pub threshold: i64,
    /// The custodians who hold a share of the set.
    pub share_holders: Vec<String>,
    /// The session's age recipient: seal your decrypted share to it.
    pub recipient: String,
    /// `open`, `released` or `superseded`.
    pub state: String,
    pub opened_by: String,
    pub opened_at: String,
    pub expires_at: String,
    pub submitted: Vec<SubmissionView>,
    /// How many more shares are needed.
    pub needed: i64,
    /// The server process that holds the session's key.
    pub replica: String,
    /// Whether the process that answered holds it.
    pub held_here: bool,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SubmissionView {
    pub index: i64,
    pub custodian: String,
    pub submitted_at: String,
}

/// A custodian's share, sealed on their machine to the session's recipient.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitShareBody {
    /// The custodian's current TOTP code.
    #[schema(value_type = String, example = "123456")]
    pub code: SecretString,
    /// Base64 of an age file (to the session's recipient) holding the
    /// decrypted share.
    pub sealed_share: String,
}

/// A proposed policy change: either a changed policy (`policy_toml`, one
/// `[[policy]]` in the policy file syntax, naming an existing policy), or a
/// credential moved to another policy (`credential` and `to_policy`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProposeBody {
    pub policy_toml: Option<String>,
    pub credential: Option<String>,
    pub to_policy: Option<String>,
    pub reason: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PolicyChangeView {
    pub id: String,
    /// `update` or `move`.
    pub kind: String,
    /// The policy whose quorum decides.
    pub policy: String,
    /// The version in force when proposed (0: the policy file).
    pub base_version: i64,
    /// The quorum that must approve, e.g. "2 of sre AND 1 of security".
    pub quorum: String,
    /// What changes, in words.
    pub changes: Vec<String>,
    pub credential: Option<String>,
    pub to_policy: Option<String>,
    pub reason: String,
    pub proposer: String,
    /// `pending`, `applied`, `denied`, `expired` or `superseded`.
    pub state: String,
    pub approvals: Vec<String>,
    pub waiting_for: Option<String>,
    pub created_at: String,
    pub expires_at: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecideBody {
    #[schema(value_type = String, example = "123456")]
    pub code: SecretString,
    /// Required to deny.
    pub reason: Option<String>,
}
