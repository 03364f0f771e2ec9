//! Audit events as OCSF (Open Cybersecurity Schema Framework) 1.1.0
//! records of the class API Activity (`class_uid` 6003, category
//! Application Activity), for SIEMs. The mapping is in
//! `docs/audit-format.md`; the chain fields travel in `unmapped`, so a SIEM
//! copy can still be matched with the verifiable JSON Lines export.

use serde_json::{json, Value};

use crate::crypto::chain::AuditEvent;
use crate::domain::action::{Action, Activity};

pub const OCSF_VERSION: &str = "1.1.0";
pub const CLASS_UID: i64 = 6003;
pub const CATEGORY_UID: i64 = 6;

/// CRUD activity of an action: what it did to the object it names. An
/// action this version does not know (from a newer log) is "Other".
pub fn activity_of(action: &str) -> (i64, &'static str) {
    let activity = Action::of(action).map_or(Activity::Other, Action::activity);
    (activity.id(), activity.name())
}

/// Severity: a root credential leaving the service is high; a refusal is
/// medium; an internal error high; anything else informational.
pub fn severity_of(e: &AuditEvent) -> (i64, &'static str) {
    match e.outcome.as_str() {
        "error" => (4, "High"),
        "refused" => (3, "Medium"),
        _ if Action::of(&e.action).is_some_and(Action::is_high_severity) => (4, "High"),
        _ => (1, "Informational"),
    }
}

pub fn api_activity(e: &AuditEvent) -> Value {
    let (activity_id, activity_name) = activity_of(&e.action);
    let (severity_id, severity) = severity_of(e);
    let success = e.outcome == "success";
    let (kind, name) = e.target.split_once(':').unwrap_or(("", e.target.as_str()));
    let mut cloud = json!({ "provider": "AWS" });
    if let Some(account) = e.details.get("account_id").and_then(Value::as_str) {
        cloud["account"] = json!({ "uid": account });
    }
    let mut v = json!({
        "class_uid": CLASS_UID,
        "class_name": "API Activity",
        "category_uid": CATEGORY_UID,
        "category_name": "Application Activity",
        "activity_id": activity_id,
        "activity_name": activity_name,
        "type_uid": CLASS_UID * 100 + activity_id,
        "type_name": format!("API Activity: {activity_name}"),
        "severity_id": severity_id,
        "severity": severity,
        "status_id": if success { 1 } else { 2 },
        "status": if success { "Success" } else { "Failure" },
        "time": e.ts_ms,
        "metadata": {
            "version": OCSF_VERSION,
            "product": {
                "name": "breakglass",
                "vendor_name": "breakglass",
                "version": env!("CARGO_PKG_VERSION"),
            },
            "log_name": "audit",
            "uid": e.hash,
            "sequence": e.seq,
        },
        "actor": { "user": { "name": e.actor, "uid": e.actor } },
        "api": {
            "operation": e.action,
            "service": { "name": "breakglass" },
        },
        "src_endpoint": { "svc_name": "breakglass" },
        "cloud": cloud,
        "resources": [ { "uid": e.target, "type": kind, "name": name } ],
        "unmapped": {
            "seq": e.seq,
            "outcome": e.outcome,
            "details": e.details,
            "prev_hash": e.prev_hash,
            "hash": e.hash,
        },
    });
    if let Some(code) = &e.code {
        v["status_code"] = json!(code);
        if let Some(m) = e.details.get("message").and_then(Value::as_str) {
            v["status_detail"] = json!(m);
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The mapping as docs/audit-format.md states it, by the action's verb.
    fn by_verb(action: &str) -> (i64, &'static str) {
        let verb = action.rsplit('.').next().unwrap_or(action);
        match verb {
            "create" | "add" | "deposit" | "init" | "issue" | "session_open" | "open"
            | "checkpoint" | "enroll" | "register" => (1, "Create"),
            "list" | "show" | "verify" | "export" | "release" | "recover" | "share_check" => {
                (2, "Read")
            }
            "approve" | "approved" | "deny" | "denied" | "confirm" | "rotate" | "rekey"
            | "revoke" | "rewrap" | "share_submit" | "exposed" | "lockout" | "close" | "remove"
            | "acknowledge" => (3, "Update"),
            _ => (99, "Other"),
        }
    }

    #[test]
    fn every_action_maps_to_the_activity_of_its_verb() {
        for a in Action::all() {
            assert_eq!(activity_of(a.as_str()), by_verb(a.as_str()), "{a}");
        }
        assert_eq!(activity_of("request.from_the_future"), (99, "Other"));
    }
}
