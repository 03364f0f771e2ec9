//! Who counts toward a quorum: the groups recorded for custodians and for
//! approvers, read as validated names.

use super::AppResult;
use crate::domain::states::{CustodianStatus, Decision};
use crate::domain::GroupName;
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
