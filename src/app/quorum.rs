//! Who counts toward a quorum: the groups recorded for custodians and for
//! approvers, read as validated names.

use serde_json::{json, Value};

use super::{refuse, AppResult, Event};
use crate::domain::states::{CustodianStatus, Decision};
use crate::domain::GroupName;
use crate::domain::{Action, Code, Policy};
use crate::store::RequestRow;
use crate::store::{DecisionRow, Tx};

/// Stored group names as validated names (an unparsable one counts for nothing).
pub(crate) fn groups_of(names: &[String]) -> Vec<GroupName> {
    names
        .iter()
        .filter_map(|g| GroupName::parse(g).ok())
        .collect()
}

/// The groups of each approver (as recorded when they decided), leaving out
/// `except` (the requester never counts).
pub(crate) fn approvers_of(decisions: &[DecisionRow], except: Option<&str>) -> Vec<Vec<GroupName>> {
    decisions
        .iter()
        .filter(|d| d.decision == Decision::Approve && Some(d.custodian.as_str()) != except)
        .map(|d| groups_of(&d.groups))
        .collect()
}

/// The groups each approval counts for under `policy`: its custodian's
/// groups as recorded, narrowed to those whose requirement accepts the
/// proof of presence it was made with; leaving out `except`.
pub(crate) fn counting_approvers(
    policy: &Policy,
    decisions: &[DecisionRow],
    except: Option<&str>,
) -> Vec<Vec<GroupName>> {
    decisions
        .iter()
        .filter(|d| d.decision == Decision::Approve && Some(d.custodian.as_str()) != except)
        .map(|d| policy.counting(&groups_of(&d.groups), d.factor()))
        .collect()
}

/// Groups of the custodians who can approve today (enrolled), optionally
/// leaving one person out (the requester never counts).
pub(crate) async fn enrolled_groups(
    tx: &mut dyn Tx,
    except: Option<&str>,
) -> AppResult<Vec<Vec<GroupName>>> {
    Ok(tx
        .custodians()
        .await?
        .into_iter()
        .filter(|c| c.status == CustodianStatus::Active && Some(c.name.as_str()) != except)
        .map(|c| groups_of(&c.groups))
        .collect())
}

/// The quorum is met: the request becomes approved, its release window
/// open from `now`, and the event that says so (naming the approvers, the
/// deadline, and `extra`). Refused with `expired` when the request expired
/// meanwhile (the change is conditional).
pub(crate) async fn approve_on_quorum(
    tx: &mut dyn Tx,
    r: &RequestRow,
    policy: &Policy,
    now: i64,
    approvers: Vec<String>,
    (expired, extra): (&str, Value),
) -> AppResult<Event> {
    let deadline = now + policy.release_window_secs as i64 * 1000;
    if !tx.mark_approved(&r.id, now, deadline).await? {
        return refuse(Code::RequestExpired, expired);
    }
    let mut details = json!({
        "credential": r.credential_name,
        "approvers": approvers,
        "release_deadline": crate::clock::rfc3339(deadline),
    });
    if let (Some(d), Value::Object(extra)) = (details.as_object_mut(), extra) {
        d.extend(extra);
    }
    Ok(Event::new(
        Action::RequestApproved,
        crate::domain::request::request_target(&r.id),
        details,
    ))
}

/// What a TOTP decision by a quorum is about: a policy change or a key
/// reset.
pub(crate) struct Pending<'a> {
    /// Its id (the decision row's key).
    pub id: &'a str,
    /// "change", "key reset": what the refusals call it.
    pub what: &'a str,
    /// Who never counts, and what their decision is refused with.
    pub excluded: &'a str,
    pub excluded_message: &'a str,
}

impl super::App {
    /// A custodian's TOTP decision on `p` under `quorum`, with the
    /// `decisions` made so far: the rules that come before the code (an
    /// active custodian, not locked out, not the one excluded, eligible,
    /// not decided yet, and, to approve, still needed), then the code.
    /// Returns the decision to insert.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn quorum_decision(
        &self,
        tx: &mut dyn Tx,
        who: &crate::auth::Identity,
        p: Pending<'_>,
        quorum: &Policy,
        decisions: &[DecisionRow],
        code: &secrecy::SecretString,
        opened: Option<&super::custodians::OpenedSeed>,
        deny_reason: Option<String>,
    ) -> AppResult<DecisionRow> {
        let c = super::custodians::active_custodian(tx, who).await?;
        let now = self.now_ms();
        super::custodians::refuse_if_locked(&c, now)?;
        let groups = super::custodians::deciding_groups(&c, who);
        if p.excluded == who.subject {
            return refuse(Code::SelfApproval, p.excluded_message);
        }
        if !quorum.is_eligible(&groups_of(&groups)) {
            return refuse(
                Code::NotEligible,
                format!(
                    "custodian {} is in none of the groups policy {} needs ({})",
                    c.name,
                    quorum.name,
                    quorum.describe()
                ),
            );
        }
        if decisions.iter().any(|d| d.custodian == c.name) {
            return refuse(
                Code::AlreadyDecided,
                format!(
                    "custodian {} has already decided on this {}",
                    c.name, p.what
                ),
            );
        }
        let approvers = approvers_of(decisions, Some(p.excluded));
        if deny_reason.is_none() && !quorum.contributes(&approvers, &groups_of(&groups)) {
            return refuse(
                Code::ApprovalNotNeeded,
                format!(
                    "the approvals so far already cover your groups: it is waiting for {}",
                    quorum.missing(&approvers)
                ),
            );
        }
        let step = self.check_presence(tx, &c, code, opened).await?;
        Ok(DecisionRow {
            request_id: p.id.into(),
            custodian: c.name.clone(),
            decision: match deny_reason {
                Some(_) => Decision::Deny,
                None => Decision::Approve,
            },
            reason: deny_reason,
            groups,
            totp_step: step,
            at: now,
            totp_code: Some(crate::crypto::totp::SpentCode::new(
                super::custodians::well_formed_code(code)?.to_owned(),
            )),
            webauthn: None,
        })
    }
}
