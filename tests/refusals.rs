//! One test per refusal: the precise error code, nothing changed, and the
//! refusal itself audited.

mod common;

use breakglass::domain::Role;
use common::{Backend, World};
use serde_json::json;

both_backends!(
    a_requester_cannot_approve_their_own_request,
    a_custodian_cannot_approve_twice,
    a_code_already_used_by_that_custodian_is_refused,
    a_wrong_code_is_refused,
    a_custodian_locked_out_after_five_wrong_codes_is_refused,
    an_expired_request_cannot_be_approved,
    a_denied_request_cannot_be_approved,
    a_released_request_cannot_be_approved_or_released_again,
    a_custodian_outside_the_policy_groups_cannot_approve,
    only_the_requester_can_release,
    a_release_after_the_window_is_refused,
    a_caller_without_the_role_is_refused,
    a_call_without_a_valid_token_is_refused,
    malformed_and_unknown_input_gets_a_precise_error,
    an_admin_has_no_bypass,
);

async fn a_requester_cannot_approve_their_own_request(b: Backend) {
    let w = World::new(b).await;
    // cat is an SRE custodian and also a requester.
    let r =
        w.t.post(
            "/v1/requests",
            &w.cat,
            json!({ "credential": "aws-prod-root", "reason": "mine" }),
        )
        .await
        .ok();
    let id = r["id"].as_str().unwrap();
    w.t.assert_refused_and_unchanged(Some(id), 403, "self_approval", || {
        w.approve(id, "cat", &w.cat)
    })
    .await;
}

async fn a_custodian_cannot_approve_twice(b: Backend) {
    let w = World::new(b).await;
    let id = w.request().await;
    w.approve(&id, "ann", &w.ann).await.ok();
    w.t.next_step();
    w.t.assert_refused_and_unchanged(Some(&id), 409, "already_decided", || {
        w.approve(&id, "ann", &w.ann)
    })
    .await;
}

async fn a_code_already_used_by_that_custodian_is_refused(b: Backend) {
    let w = World::new(b).await;
    let first = w.request().await;
    let second = w.request().await;
    let code = w.t.code("ann");
    w.t.post(
        format!("/v1/requests/{first}/approve"),
        &w.ann,
        json!({ "code": code }),
    )
    .await
    .ok();
    // Same code, another request, same 30-second step: a replay.
    w.t.assert_refused_and_unchanged(Some(&second), 409, "totp_replayed", || {
        w.t.post(
            format!("/v1/requests/{second}/approve"),
            &w.ann,
            json!({ "code": code }),
        )
    })
    .await;
    // The previous step's code is still inside the ±1 window but older: refused too.
    w.t.next_step();
    w.t.assert_refused_and_unchanged(Some(&second), 409, "totp_replayed", || {
        w.t.post(
            format!("/v1/requests/{second}/approve"),
            &w.ann,
            json!({ "code": code }),
        )
    })
    .await;
    // A fresh code works.
    w.approve(&second, "ann", &w.ann).await.ok();
}

async fn a_wrong_code_is_refused(b: Backend) {
    let w = World::new(b).await;
    let id = w.request().await;
    let before = w.t.state(Some(&id)).await;
    // (Malformed codes are refused as such: tests/hostile_input.rs.)
    for bad in std::iter::repeat_n(w.t.wrong_code("ann"), 4) {
        let r =
            w.t.post(
                format!("/v1/requests/{id}/approve"),
                &w.ann,
                json!({ "code": bad }),
            )
            .await;
        r.refused(401, "invalid_totp");
    }
    assert_eq!(w.t.state(Some(&id)).await, before);
    let refused: Vec<_> =
        w.t.audit()
            .await
            .into_iter()
            .filter(|e| e.code.as_deref() == Some("invalid_totp"))
            .collect();
    assert_eq!(refused.len(), 4);
    assert!(w.t.verify().await);
}

async fn a_custodian_locked_out_after_five_wrong_codes_is_refused(b: Backend) {
    let w = World::new(b).await;
    let id = w.request().await;
    for _ in 0..4 {
        let bad = w.t.wrong_code("bob");
        w.t.post(
            format!("/v1/requests/{id}/approve"),
            &w.bob,
            json!({ "code": bad }),
        )
        .await
        .refused(401, "invalid_totp");
        w.t.advance_mins(2);
    }
    // Four failures: not yet locked.
    let mut tx = w.t.app.store.begin_read().await.unwrap();
    let bob = tx.custodian("bob").await.unwrap().unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(bob.locked_until, None, "four wrong codes do not lock");
    let bad = w.t.wrong_code("bob");
    w.t.post(
        format!("/v1/requests/{id}/approve"),
        &w.bob,
        json!({ "code": bad }),
    )
    .await
    .refused(401, "invalid_totp");
    w.t.assert_refused_and_unchanged(Some(&id), 423, "custodian_locked", || {
        w.approve(&id, "bob", &w.bob)
    })
    .await;
    // Failures spread over more than 15 minutes do not lock: ann fails 5
    // times, 4 minutes apart.
    for _ in 0..5 {
        let bad = w.t.wrong_code("ann");
        w.t.post(
            format!("/v1/requests/{id}/approve"),
            &w.ann,
            json!({ "code": bad }),
        )
        .await
        .refused(401, "invalid_totp");
        w.t.advance_mins(4);
    }
    w.approve(&id, "ann", &w.ann).await.ok();
}

async fn an_expired_request_cannot_be_approved(b: Backend) {
    let w = World::new(b).await;
    let id = w.request().await;
    w.t.advance_mins(61);
    let r =
        w.t.get(format!("/v1/requests/{id}"), &w.requester)
            .await
            .ok();
    assert_eq!(r["state"], "expired");
    w.t.assert_refused_and_unchanged(Some(&id), 409, "request_expired", || {
        w.approve(&id, "ann", &w.ann)
    })
    .await;
}

async fn a_denied_request_cannot_be_approved(b: Backend) {
    let w = World::new(b).await;
    let id = w.request().await;
    let code = w.t.code("sec");
    w.t.post(
        format!("/v1/requests/{id}/deny"),
        &w.sec,
        json!({ "code": code, "reason": "no incident" }),
    )
    .await
    .ok();
    w.t.assert_refused_and_unchanged(Some(&id), 409, "request_denied", || {
        w.approve(&id, "ann", &w.ann)
    })
    .await;
}

async fn a_released_request_cannot_be_approved_or_released_again(b: Backend) {
    let w = World::new(b).await;
    let id = w.approved_request().await;
    w.t.post(
        format!("/v1/requests/{id}/release"),
        &w.requester,
        json!({}),
    )
    .await
    .ok();
    w.t.assert_refused_and_unchanged(Some(&id), 409, "request_released", || {
        w.approve(&id, "cat", &w.cat)
    })
    .await;
    w.t.assert_refused_and_unchanged(Some(&id), 409, "request_released", || {
        w.t.post(
            format!("/v1/requests/{id}/release"),
            &w.requester,
            json!({}),
        )
    })
    .await;
}

async fn a_custodian_outside_the_policy_groups_cannot_approve(b: Backend) {
    let w = World::new(b).await;
    let dba =
        w.t.enrolled_custodian(&w.admin, "dora", &["dba"], &[])
            .await;
    w.t.next_step();
    let id = w.request().await;
    w.t.assert_refused_and_unchanged(Some(&id), 403, "not_eligible", || {
        w.approve(&id, "dora", &dba)
    })
    .await;
}

async fn only_the_requester_can_release(b: Backend) {
    let w = World::new(b).await;
    let id = w.approved_request().await;
    let other = w.t.token("other-oncall", &[Role::Requester]);
    w.t.assert_refused_and_unchanged(Some(&id), 403, "not_requester", || {
        w.t.post(format!("/v1/requests/{id}/release"), &other, json!({}))
    })
    .await;
    // A custodian who approved cannot release either.
    w.t.assert_refused_and_unchanged(Some(&id), 403, "forbidden_role", || {
        w.t.post(format!("/v1/requests/{id}/release"), &w.ann, json!({}))
    })
    .await;
}

async fn a_release_after_the_window_is_refused(b: Backend) {
    let w = World::new(b).await;
    let id = w.approved_request().await;
    w.t.advance_mins(16);
    w.t.assert_refused_and_unchanged(Some(&id), 409, "release_window_closed", || {
        w.t.post(
            format!("/v1/requests/{id}/release"),
            &w.requester,
            json!({}),
        )
    })
    .await;
    let c =
        w.t.get("/v1/credentials/aws-prod-root", &w.admin)
            .await
            .ok();
    assert_eq!(c["exposed"], false);
}

async fn a_caller_without_the_role_is_refused(b: Backend) {
    let w = World::new(b).await;
    let t = &w.t;
    t.assert_refused_and_unchanged(None, 403, "forbidden_role", || {
        t.post(
            "/v1/custodians",
            &w.requester,
            json!({ "name": "mallory", "groups": ["sre"] }),
        )
    })
    .await;
    t.assert_refused_and_unchanged(None, 403, "forbidden_role", || {
        t.post(
            "/v1/credentials",
            &w.ann,
            json!({ "name": "x", "account_id": "123456789012", "policy": "default", "fields": { "a": "b" } }),
        )
    })
    .await;
    t.assert_refused_and_unchanged(None, 403, "forbidden_role", || {
        t.post(
            "/v1/requests",
            &w.ann,
            json!({ "credential": "aws-prod-root", "reason": "x" }),
        )
    })
    .await;
    t.assert_refused_and_unchanged(None, 403, "forbidden_role", || {
        t.get("/v1/audit/events", &w.admin)
    })
    .await;
    let id = w.request().await;
    t.assert_refused_and_unchanged(Some(&id), 403, "forbidden_role", || {
        t.post(
            format!("/v1/requests/{id}/approve"),
            &w.requester,
            json!({ "code": "123456" }),
        )
    })
    .await;
}

async fn a_call_without_a_valid_token_is_refused(b: Backend) {
    let w = World::new(b).await;
    let t = &w.t;
    let r = t.call("GET", "/v1/credentials", None, None).await;
    r.refused(401, "token_missing");
    t.assert_refused_and_unchanged(None, 401, "token_malformed", || {
        t.get("/v1/credentials", "not-a-jwt")
    })
    .await;
    let (tok, _) = t
        .app
        .tokens
        .issue("oncall", &[Role::Requester], 600, t.now_secs())
        .unwrap();
    t.advance_mins(12);
    t.assert_refused_and_unchanged(None, 401, "token_expired", || {
        t.get("/v1/credentials", &tok)
    })
    .await;
    // Signed by another key.
    let other = breakglass::auth::TokenService::new(
        &breakglass::crypto::signing::SigningKey::generate(),
        "breakglass",
        "breakglass-api",
        86400,
    );
    let (forged, _) = other
        .issue("root-admin", &[Role::Admin], 600, t.now_secs())
        .unwrap();
    t.assert_refused_and_unchanged(None, 401, "token_bad_signature", || {
        t.get("/v1/credentials", &forged)
    })
    .await;
    // Health endpoints need no token.
    assert_eq!(t.call("GET", "/healthz", None, None).await.status, 200);
    assert_eq!(t.call("GET", "/readyz", None, None).await.status, 200);
}

async fn malformed_and_unknown_input_gets_a_precise_error(b: Backend) {
    let w = World::new(b).await;
    let t = &w.t;
    let before = t.state(None).await;
    let n = t.audit().await.len();
    // Not JSON, wrong shape, unknown field.
    let r = t
        .call("POST", "/v1/requests", Some(&w.requester), None)
        .await;
    assert_eq!(r.status, 415, "{:?}", r);
    let res = reqwest::Client::new()
        .post(format!("{}/v1/requests", t.base))
        .bearer_auth(&w.requester)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 400);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "malformed_json");
    t.post("/v1/requests", &w.requester, json!({ "credential": 5 }))
        .await
        .refused(422, "invalid_body");
    t.post(
        "/v1/requests",
        &w.requester,
        json!({ "credential": "aws-prod-root", "reason": "x", "extra": 1 }),
    )
    .await
    .refused(422, "invalid_body");
    assert_eq!(
        t.audit().await.len(),
        n,
        "a body that never reached a use case is not an action"
    );
    assert_eq!(t.state(None).await, before);

    t.assert_refused_and_unchanged(None, 404, "credential_not_found", || {
        t.post(
            "/v1/requests",
            &w.requester,
            json!({ "credential": "nope", "reason": "x" }),
        )
    })
    .await;
    t.assert_refused_and_unchanged(None, 422, "invalid_reason", || {
        t.post(
            "/v1/requests",
            &w.requester,
            json!({ "credential": "aws-prod-root", "reason": "   " }),
        )
    })
    .await;
    t.assert_refused_and_unchanged(None, 404, "request_not_found", || {
        t.get("/v1/requests/not-a-uuid", &w.requester)
    })
    .await;
    t.assert_refused_and_unchanged(None, 404, "request_not_found", || {
        t.post(
            format!("/v1/requests/{}/approve", uuid::Uuid::new_v4()),
            &w.ann,
            json!({ "code": "123456" }),
        )
    })
    .await;
    t.assert_refused_and_unchanged(None, 422, "invalid_account", || {
        t.post(
            "/v1/credentials",
            &w.admin,
            json!({ "name": "x", "account_id": "12", "policy": "default", "fields": { "a": "b" } }),
        )
    })
    .await;
    t.assert_refused_and_unchanged(None, 422, "unknown_policy", || {
        t.post(
            "/v1/credentials",
            &w.admin,
            json!({ "name": "x", "account_id": "123456789012", "policy": "nope", "fields": { "a": "b" } }),
        )
    })
    .await;
    t.assert_refused_and_unchanged(None, 422, "invalid_fields", || {
        t.post(
            "/v1/credentials",
            &w.admin,
            json!({ "name": "x", "account_id": "123456789012", "policy": "default", "fields": {} }),
        )
    })
    .await;
    t.assert_refused_and_unchanged(None, 409, "credential_exists", || {
        t.post(
            "/v1/credentials",
            &w.admin,
            json!({ "name": "aws-prod-root", "account_id": "123456789012", "policy": "default", "fields": { "a": "b" } }),
        )
    })
    .await;
    t.assert_refused_and_unchanged(None, 409, "custodian_exists", || {
        t.post(
            "/v1/custodians",
            &w.admin,
            json!({ "name": "ann", "groups": ["sre"] }),
        )
    })
    .await;
    t.assert_refused_and_unchanged(None, 422, "invalid_name", || {
        t.post(
            "/v1/custodians",
            &w.admin,
            json!({ "name": "Robert'); DROP TABLE", "groups": ["sre"] }),
        )
    })
    .await;
    let r = t.get("/v1/nothing-here", &w.admin).await;
    r.refused(404, "not_found");
}

async fn an_admin_has_no_bypass(b: Backend) {
    let w = World::new(b).await;
    // An admin who is also a requester and a custodian still needs the quorum.
    let boss =
        w.t.enrolled_custodian(
            &w.admin,
            "boss",
            &["sre", "security"],
            &[Role::Admin, Role::Requester],
        )
        .await;
    w.t.next_step();
    let r =
        w.t.post(
            "/v1/requests",
            &boss,
            json!({ "credential": "aws-prod-root", "reason": "because" }),
        )
        .await
        .ok();
    let id = r["id"].as_str().unwrap().to_string();
    w.t.assert_refused_and_unchanged(Some(&id), 403, "self_approval", || {
        w.approve(&id, "boss", &boss)
    })
    .await;
    w.t.assert_refused_and_unchanged(Some(&id), 409, "request_not_approved", || {
        w.t.post(format!("/v1/requests/{id}/release"), &boss, json!({}))
    })
    .await;
}
