//! Every action the audit log records. The app appends them, the alert
//! channels choose among them, and the OCSF export maps each to its
//! activity: one list, so a new action is a compile error until each of
//! them knows it.

use std::fmt;

use strum::IntoEnumIterator;

/// What an audit event records, as the log names it (`request.create`).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    strum::EnumIter,
    strum::IntoStaticStr,
    strum::EnumString,
)]
pub enum Action {
    #[strum(serialize = "request.approve")]
    RequestApprove,
    #[strum(serialize = "request.approved")]
    RequestApproved,
    #[strum(serialize = "request.create")]
    RequestCreate,
    #[strum(serialize = "request.denied")]
    RequestDenied,
    #[strum(serialize = "request.deny")]
    RequestDeny,
    #[strum(serialize = "request.list")]
    RequestList,
    #[strum(serialize = "request.release")]
    RequestRelease,
    #[strum(serialize = "request.show")]
    RequestShow,
    #[strum(serialize = "custodian.add")]
    CustodianAdd,
    #[strum(serialize = "custodian.confirm")]
    CustodianConfirm,
    #[strum(serialize = "custodian.enroll")]
    CustodianEnroll,
    #[strum(serialize = "custodian.list")]
    CustodianList,
    #[strum(serialize = "custodian.lockout")]
    CustodianLockout,
    #[strum(serialize = "credential.deposit")]
    CredentialDeposit,
    #[strum(serialize = "credential.exposed")]
    CredentialExposed,
    #[strum(serialize = "credential.list")]
    CredentialList,
    #[strum(serialize = "credential.rotate")]
    CredentialRotate,
    #[strum(serialize = "credential.rotation_reminder")]
    CredentialRotationReminder,
    #[strum(serialize = "credential.show")]
    CredentialShow,
    #[strum(serialize = "policy.approve")]
    PolicyApprove,
    #[strum(serialize = "policy.change_applied")]
    PolicyChangeApplied,
    #[strum(serialize = "policy.denied")]
    PolicyDenied,
    #[strum(serialize = "policy.deny")]
    PolicyDeny,
    #[strum(serialize = "policy.list")]
    PolicyList,
    #[strum(serialize = "policy.propose")]
    PolicyPropose,
    #[strum(serialize = "recovery.init")]
    RecoveryInit,
    #[strum(serialize = "recovery.recover")]
    RecoveryRecover,
    #[strum(serialize = "recovery.rekey")]
    RecoveryRekey,
    #[strum(serialize = "recovery.release")]
    RecoveryRelease,
    #[strum(serialize = "recovery.session_open")]
    RecoverySessionOpen,
    #[strum(serialize = "recovery.share_check")]
    RecoveryShareCheck,
    #[strum(serialize = "recovery.share_submit")]
    RecoveryShareSubmit,
    #[strum(serialize = "backup.export")]
    BackupExport,
    #[strum(serialize = "rotation.deposited")]
    RotationDeposited,
    #[strum(serialize = "rotation.old_key_deleted")]
    RotationOldKeyDeleted,
    #[strum(serialize = "rotation.orphan_deleted")]
    RotationOrphanDeleted,
    #[strum(serialize = "rotation.run")]
    RotationRun,
    #[strum(serialize = "rotation.start")]
    RotationStart,
    #[strum(serialize = "rotation.verified")]
    RotationVerified,
    #[strum(serialize = "keys.rewrap")]
    KeysRewrap,
    #[strum(serialize = "token.issue")]
    TokenIssue,
    #[strum(serialize = "token.revoke")]
    TokenRevoke,
    #[strum(serialize = "auth.fallback")]
    AuthFallback,
    #[strum(serialize = "auth.refused_summary")]
    AuthRefusedSummary,
    #[strum(serialize = "auth.token")]
    AuthToken,
    #[strum(serialize = "session.open")]
    SessionOpen,
    #[strum(serialize = "session.close")]
    SessionClose,
    #[strum(serialize = "session.revoke")]
    SessionRevoke,
    #[strum(serialize = "webauthn.challenge")]
    WebauthnChallenge,
    #[strum(serialize = "webauthn.register")]
    WebauthnRegister,
    #[strum(serialize = "webauthn.remove")]
    WebauthnRemove,
    #[strum(serialize = "webauthn.list")]
    WebauthnList,
    #[strum(serialize = "webauthn.counter_regressed")]
    WebauthnCounterRegressed,
    #[strum(serialize = "key_reset.propose")]
    KeyResetPropose,
    #[strum(serialize = "key_reset.approve")]
    KeyResetApprove,
    #[strum(serialize = "key_reset.deny")]
    KeyResetDeny,
    #[strum(serialize = "key_reset.approved")]
    KeyResetApproved,
    #[strum(serialize = "key_reset.denied")]
    KeyResetDenied,
    #[strum(serialize = "key_reset.list")]
    KeyResetList,
    #[strum(serialize = "audit.checkpoint")]
    AuditCheckpoint,
    #[strum(serialize = "audit.checkpoints")]
    AuditCheckpoints,
    #[strum(serialize = "audit.export")]
    AuditExport,
    #[strum(serialize = "audit.list")]
    AuditList,
    #[strum(serialize = "audit.prune")]
    AuditPrune,
    #[strum(serialize = "audit.verify")]
    AuditVerify,
    #[strum(serialize = "alert.retry")]
    AlertRetry,
    #[strum(serialize = "hygiene.report")]
    HygieneReport,
    #[strum(serialize = "org.sync")]
    OrgSync,
    #[strum(serialize = "org.list")]
    OrgList,
    #[strum(serialize = "org.root_session")]
    OrgRootSession,
    #[strum(serialize = "org.root_task")]
    OrgRootTask,
    /// Root activity in CloudTrail linked to the release or the brokered
    /// session it happened in.
    #[strum(serialize = "watch.matched")]
    WatchMatched,
    /// Root activity in CloudTrail that no release and no brokered
    /// session accounts for: a finding, and the alarm.
    #[strum(serialize = "watch.unmatched")]
    WatchUnmatched,
    #[strum(serialize = "watch.acknowledge")]
    WatchAcknowledge,
    /// A CloudTrail file that is not one (malformed, foreign): skipped.
    #[strum(serialize = "watch.file_rejected")]
    WatchFileRejected,
    #[strum(serialize = "watch.run")]
    WatchRun,
    #[strum(serialize = "watch.list")]
    WatchList,
    #[strum(serialize = "http.input")]
    HttpInput,
}

/// What an action did to the object it names (OCSF's CRUD activities).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activity {
    Create,
    Read,
    Update,
    Other,
}

impl Activity {
    /// OCSF `activity_id`.
    pub fn id(self) -> i64 {
        match self {
            Activity::Create => 1,
            Activity::Read => 2,
            Activity::Update => 3,
            Activity::Other => 99,
        }
    }

    /// OCSF `activity_name`.
    pub fn name(self) -> &'static str {
        match self {
            Activity::Create => "Create",
            Activity::Read => "Read",
            Activity::Update => "Update",
            Activity::Other => "Other",
        }
    }
}

impl Action {
    /// Every action.
    pub fn all() -> impl Iterator<Item = Action> {
        Action::iter()
    }

    /// The action as the log writes it.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The action a stored event names, if this version knows it.
    pub fn of(name: &str) -> Option<Action> {
        name.parse().ok()
    }

    /// What it did to its object.
    pub fn activity(self) -> Activity {
        match self {
            Action::RequestCreate
            | Action::CustodianAdd
            | Action::CustodianEnroll
            | Action::CredentialDeposit
            | Action::RecoveryInit
            | Action::RecoverySessionOpen
            | Action::TokenIssue
            | Action::SessionOpen
            | Action::WebauthnRegister
            | Action::AuditCheckpoint => Activity::Create,
            Action::RequestList
            | Action::RequestRelease
            | Action::RequestShow
            | Action::CustodianList
            | Action::CredentialList
            | Action::CredentialShow
            | Action::PolicyList
            | Action::RecoveryRecover
            | Action::RecoveryRelease
            | Action::RecoveryShareCheck
            | Action::BackupExport
            | Action::AuditExport
            | Action::AuditList
            | Action::WebauthnList
            | Action::KeyResetList
            | Action::OrgList
            | Action::WatchList
            | Action::AuditVerify => Activity::Read,
            Action::RequestApprove
            | Action::RequestApproved
            | Action::RequestDenied
            | Action::RequestDeny
            | Action::CustodianConfirm
            | Action::CustodianLockout
            | Action::CredentialExposed
            | Action::CredentialRotate
            | Action::PolicyApprove
            | Action::PolicyDenied
            | Action::PolicyDeny
            | Action::RecoveryRekey
            | Action::RecoveryShareSubmit
            | Action::KeysRewrap
            | Action::TokenRevoke
            | Action::SessionClose
            | Action::WebauthnRemove
            | Action::KeyResetApprove
            | Action::KeyResetDeny
            | Action::KeyResetApproved
            | Action::KeyResetDenied
            | Action::WatchAcknowledge
            | Action::SessionRevoke => Activity::Update,
            Action::CredentialRotationReminder
            | Action::PolicyChangeApplied
            | Action::PolicyPropose
            | Action::RotationDeposited
            | Action::RotationOldKeyDeleted
            | Action::RotationOrphanDeleted
            | Action::RotationRun
            | Action::RotationStart
            | Action::RotationVerified
            | Action::AuthFallback
            | Action::AuthRefusedSummary
            | Action::AuthToken
            | Action::AuditCheckpoints
            | Action::AuditPrune
            | Action::AlertRetry
            | Action::HygieneReport
            | Action::WebauthnChallenge
            | Action::WebauthnCounterRegressed
            | Action::KeyResetPropose
            | Action::OrgSync
            | Action::OrgRootSession
            | Action::OrgRootTask
            | Action::WatchMatched
            | Action::WatchUnmatched
            | Action::WatchFileRejected
            | Action::WatchRun
            | Action::HttpInput => Activity::Other,
        }
    }

    /// A root credential leaves the service, or a custodian is locked out:
    /// what a SIEM should page on.
    pub fn is_high_severity(self) -> bool {
        matches!(
            self,
            Action::RequestRelease
                | Action::RecoveryRelease
                | Action::RecoveryRecover
                | Action::CustodianLockout
                | Action::WebauthnCounterRegressed
                | Action::WatchUnmatched
        )
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_is_named_once_and_parses_back() {
        let mut seen = std::collections::BTreeSet::new();
        for a in Action::all() {
            assert!(seen.insert(a.as_str()), "{a} is named twice");
            assert_eq!(Action::of(a.as_str()), Some(a));
            let (object, verb) = a.as_str().split_once('.').unwrap();
            assert!(!object.is_empty() && !verb.is_empty(), "{a}");
        }
        assert_eq!(Action::of("request.whatever"), None);
    }
}
