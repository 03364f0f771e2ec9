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
