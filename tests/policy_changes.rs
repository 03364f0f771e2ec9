//! Four-eyes on policy changes: a change proposed by one admin stays
//! pending until the quorum of the policy it changes approves with TOTP;
//! the proposer never counts; the change is audited with what it changes.

mod common;

use breakglass::domain::Role;
use common::{Backend, World};
use serde_json::json;

both_backends!(
    lowering_a_quorum_waits_for_the_quorum_it_lowers,
    moving_a_credential_needs_its_current_policys_quorum_and_a_veto_stops_it,
);

const ONE_SRE: &str = r#"[[policy]]
name = "default"
description = "lowered"
require = [{ group = "sre", count = 1 }]
"#;

async fn lowering_a_quorum_waits_for_the_quorum_it_lowers(b: Backend) {
    let w = World::new(b).await;
    let t = &w.t;
    // The admin is also a custodian (security): one person, both roles.
    let sec_admin = t.token("sec", &[Role::Admin, Role::Custodian]);
    let change = t
        .post(
            "/v1/policy-changes",
            &sec_admin,
            json!({ "policy_toml": ONE_SRE, "reason": "too slow at night" }),
        )
        .await
        .ok();
    let id = change["id"].as_str().unwrap().to_string();
    assert_eq!(change["state"], "pending");
    assert_eq!(change["quorum"], "2 of sre AND 1 of security");
    assert!(change["changes"][0]
        .as_str()
        .unwrap()
        .contains("quorum: 2 of sre AND 1 of security → 1 of sre"));
    // Still pending: a new request still needs the old quorum.
    let r = w.request().await;
    let v = t.get(format!("/v1/requests/{r}"), &w.requester).await.ok();
    assert_eq!(v["quorum"], "2 of sre AND 1 of security");
    // The proposer cannot approve their own change; an admin without the
    // custodian role cannot approve at all; a wrong code is refused.
    t.post(
        format!("/v1/policy-changes/{id}/approve"),
        &sec_admin,
        json!({ "code": t.code("sec") }),
    )
    .await
    .refused(403, "self_approval");
    t.post(
        format!("/v1/policy-changes/{id}/approve"),
        &w.admin,
        json!({ "code": "123456" }),
    )
    .await
    .refused(403, "forbidden_role");
    t.post(
        format!("/v1/policy-changes/{id}/approve"),
        &w.ann,
        json!({ "code": t.wrong_code("ann") }),
    )
    .await
    .refused(401, "invalid_totp");
    // Two SREs approve; it waits for security, which only the proposer is.
    for (who, token) in [("ann", &w.ann), ("bob", &w.bob)] {
        let v = t
            .post(
                format!("/v1/policy-changes/{id}/approve"),
                token,
                json!({ "code": t.code(who) }),
            )
            .await
            .ok();
        assert_eq!(v["state"], "pending", "{v}");
    }
    t.post(
        format!("/v1/policy-changes/{id}/approve"),
        &w.cat,
        json!({ "code": t.code("cat") }),
    )
    .await
    .refused(409, "approval_not_needed");
    let v = t.get("/v1/policy-changes", &w.auditor).await.ok();
    assert_eq!(v[0]["waiting_for"], "a custodian of security");
    // A second security custodian completes the quorum: applied.
    t.enrolled_custodian(&w.admin, "sue", &["security"], &[])
        .await;
    let sue = t.token("sue", &[Role::Custodian]);
    t.next_step();
    let v = t
        .post(
            format!("/v1/policy-changes/{id}/approve"),
            &sue,
            json!({ "code": t.code("sue") }),
        )
        .await
        .ok();
    assert_eq!(v["state"], "applied", "{v}");
    let v = t
        .get(format!("/v1/requests/{}", w.request().await), &w.requester)
        .await
        .ok();
    assert_eq!(v["quorum"], "1 of sre");
    // The request filed before keeps the rule it was filed under.
    let v = t.get(format!("/v1/requests/{r}"), &w.requester).await.ok();
    assert_eq!(v["quorum"], "2 of sre AND 1 of security");
    let events = t.audit().await;
    let applied = events
        .iter()
        .find(|e| e.action == "policy.change_applied")
        .unwrap();
    assert_eq!(applied.details["version"], 1);
    assert!(applied.details["changes"][0]
        .as_str()
        .unwrap()
        .contains("→ 1 of sre"));
    assert_eq!(applied.details["proposer"], "sec");
    assert!(events
        .iter()
        .any(|e| e.code.as_deref() == Some("self_approval")));
    // Applied once: it cannot be approved again.
    t.post(
        format!("/v1/policy-changes/{id}/approve"),
        &w.cat,
        json!({ "code": t.code("cat") }),
    )
    .await
    .refused(409, "policy_change_closed");
    assert!(t.verify().await);
}

async fn moving_a_credential_needs_its_current_policys_quorum_and_a_veto_stops_it(b: Backend) {
    let w = World::new(b).await;
    let t = &w.t;
    let propose = || async {
        t.post(
            "/v1/policy-changes",
            &w.admin,
            json!({ "credential": "aws-prod-root", "to_policy": "one-sre", "reason": "cheaper" }),
        )
        .await
    };
    let change = propose().await.ok();
    let id = change["id"].as_str().unwrap().to_string();
    assert_eq!(change["policy"], "default");
    assert!(change["changes"][0]
        .as_str()
        .unwrap()
        .contains("credential aws-prod-root: policy default (2 of sre AND 1 of security) → one-sre (1 of sre)"));
    // Security denies: the default policy's denials veto.
    let v = t
        .post(
            format!("/v1/policy-changes/{id}/deny"),
            &w.sec,
            json!({ "code": t.code("sec"), "reason": "no" }),
        )
        .await
        .ok();
    assert_eq!(v["state"], "denied");
    let c = t.get("/v1/credentials/aws-prod-root", &w.admin).await.ok();
    assert_eq!(c["policy"], "default");
    // Proposed again, approved by the whole quorum: moved.
    let id = propose().await.ok()["id"].as_str().unwrap().to_string();
    t.next_step();
    for (who, token) in [("ann", &w.ann), ("bob", &w.bob), ("sec", &w.sec)] {
        t.post(
            format!("/v1/policy-changes/{id}/approve"),
            token,
            json!({ "code": t.code(who) }),
        )
        .await
        .ok();
    }
    let c = t.get("/v1/credentials/aws-prod-root", &w.admin).await.ok();
    assert_eq!(c["policy"], "one-sre");
    // Bad proposals are refused with their reason and change nothing.
    t.post(
        "/v1/policy-changes",
        &w.admin,
        json!({ "credential": "aws-prod-root", "to_policy": "nope", "reason": "x" }),
    )
    .await
    .refused(404, "unknown_policy");
    t.post(
        "/v1/policy-changes",
        &w.admin,
        json!({ "policy_toml": "[[policy]]\nname = \"default\"\nrequire = []\n", "reason": "x" }),
    )
    .await
    .refused(422, "invalid_policy");
    t.post("/v1/policy-changes", &w.admin, json!({ "reason": "x" }))
        .await
        .refused(422, "invalid_body");
    t.post(
        "/v1/policy-changes",
        &w.requester,
        json!({ "credential": "aws-prod-root", "to_policy": "default", "reason": "x" }),
    )
    .await
    .refused(403, "forbidden_role");
}
