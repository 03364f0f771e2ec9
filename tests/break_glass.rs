//! The whole break-glass story over HTTP, on SQLite and on PostgreSQL.

mod common;

use breakglass::domain::Role;
use common::{Backend, TestApp, World, MFA_SEED, PASSWORD};
use serde_json::json;

both_backends!(
    a_full_break_glass_releases_the_credential_once_and_audits_every_step,
    the_request_is_approved_exactly_when_the_quorum_is_met,
    a_custodian_in_two_groups_counts_once,
    one_denial_vetoes_under_the_default_policy,
    a_denial_does_not_end_a_request_under_a_policy_without_veto,
    rotation_stores_a_new_version_and_clears_exposed,
    a_deposit_under_an_unsatisfiable_policy_is_refused_with_the_reason,
    enrolment_returns_a_standard_otpauth_uri_and_activates_only_after_confirmation,
    a_wrong_code_counts_toward_lockout_and_the_lockout_ends,
    a_revoked_token_is_refused,
    a_code_only_mfa_seed_is_released_as_its_current_code_and_never_as_the_seed,
    a_console_session_lives_until_its_first_deadline_on_any_server_of_the_database,
);

async fn a_full_break_glass_releases_the_credential_once_and_audits_every_step(b: Backend) {
    let w = World::new(b).await;
    let t = &w.t;

    // Arrange: a request under "2 of sre AND 1 of security".
    let id = w.request().await;
    let r = t.get(format!("/v1/requests/{id}"), &w.requester).await.ok();
    assert_eq!(r["state"], "pending");
    assert_eq!(r["quorum"], "2 of sre AND 1 of security");

    // Act: three custodians approve with codes from oathtool.
    w.approve(&id, "ann", &w.ann).await.ok();
    w.approve(&id, "sec", &w.sec).await.ok();
    let r = w.approve(&id, "bob", &w.bob).await.ok();
    assert_eq!(r["state"], "approved");
    let released = t
        .post(
            format!("/v1/requests/{id}/release"),
            &w.requester,
            json!({}),
        )
        .await
        .ok();

    // Assert: the plaintext, once; then exposed; then never again.
    assert_eq!(released["fields"]["password"], PASSWORD);
    assert_eq!(released["fields"]["mfa_seed"], MFA_SEED);
    assert_eq!(released["version"], 1);
    assert_eq!(released["account_id"], "123456789012");
    let c = t.get("/v1/credentials/aws-prod-root", &w.admin).await.ok();
    assert_eq!(c["exposed"], true);
    assert!(c["last_released_at"].is_string());
    let again = t
        .post(
            format!("/v1/requests/{id}/release"),
            &w.requester,
            json!({}),
        )
        .await;
    again.refused(409, "request_released");
    let r = t.get(format!("/v1/requests/{id}"), &w.requester).await.ok();
    assert_eq!(r["state"], "released");

    // Every step is in the chain, in order, and the chain verifies.
    let actions: Vec<(String, String)> = t
        .audit()
        .await
        .iter()
        .map(|e| (e.action.clone(), e.outcome.clone()))
        .collect();
    let pos = |a: &str, o: &str| {
        actions
            .iter()
            .position(|(x, y)| x == a && y == o)
            .unwrap_or_else(|| panic!("{a}/{o} not audited in {actions:?}"))
    };
    assert!(pos("credential.deposit", "success") < pos("request.create", "success"));
    assert!(pos("request.create", "success") < pos("request.approve", "success"));
    assert!(pos("request.approved", "success") < pos("request.release", "success"));
    assert!(pos("request.release", "success") < pos("credential.exposed", "success"));
    assert!(pos("request.release", "success") < pos("request.release", "refused"));
    let v = t.post("/v1/audit/verify", &w.auditor, json!({})).await.ok();
    assert_eq!(v["ok"], true, "{v}");
}

async fn the_request_is_approved_exactly_when_the_quorum_is_met(b: Backend) {
    let w = World::new(b).await;
    let id = w.request().await;
    // Two SREs are not "2 of sre AND 1 of security"...
    assert_eq!(w.approve(&id, "ann", &w.ann).await.ok()["state"], "pending");
    let r = w.approve(&id, "bob", &w.bob).await.ok();
    assert_eq!(r["state"], "pending");
    assert_eq!(r["approvals"], 2);
    // ...and a third SRE cannot count: refused, so the record holds exactly
    // the approvals the policy needed.
    w.t.assert_refused_and_unchanged(Some(&id), 409, "approval_not_needed", || {
        w.approve(&id, "cat", &w.cat)
    })
    .await;
    let msg = w.approve(&id, "cat", &w.cat).await.body["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(msg.contains("waiting for a custodian of security"), "{msg}");
    // The release is refused until the quorum is met.
    w.t.post(
        format!("/v1/requests/{id}/release"),
        &w.requester,
        json!({}),
    )
    .await
    .refused(409, "request_not_approved");
    let r = w.approve(&id, "sec", &w.sec).await.ok();
    assert_eq!(r["state"], "approved");
    assert_eq!(r["approvals"], 3);
    assert!(r["release_deadline"].is_string());
}

async fn a_custodian_in_two_groups_counts_once(b: Backend) {
    let w = World::new(b).await;
    let dual =
        w.t.enrolled_custodian(&w.admin, "dual", &["sre", "security"], &[])
            .await;
    w.t.next_step();
    let id = w.request().await;
    w.approve(&id, "dual", &dual).await.ok();
    let r = w.approve(&id, "ann", &w.ann).await.ok();
    // dual + ann cover at most one sre and one security: a third person is needed.
    assert_eq!(r["state"], "pending");
    let r = w.approve(&id, "bob", &w.bob).await.ok();
    assert_eq!(r["state"], "approved");
}

async fn one_denial_vetoes_under_the_default_policy(b: Backend) {
    let w = World::new(b).await;
    let id = w.request().await;
    w.approve(&id, "ann", &w.ann).await.ok();
    let code = w.t.code("sec");
    let r =
        w.t.post(
            format!("/v1/requests/{id}/deny"),
            &w.sec,
            json!({ "code": code, "reason": "not an incident" }),
        )
        .await
        .ok();
    assert_eq!(r["state"], "denied");
    w.approve(&id, "bob", &w.bob)
        .await
        .refused(409, "request_denied");
    w.t.post(
        format!("/v1/requests/{id}/release"),
        &w.requester,
        json!({}),
    )
    .await
    .refused(409, "request_denied");
}

async fn a_denial_does_not_end_a_request_under_a_policy_without_veto(b: Backend) {
    let w = World::new(b).await;
    w.t.post(
        "/v1/credentials",
        &w.admin,
        json!({ "name": "staging-root", "account_id": "210987654321", "policy": "one-sre", "fields": { "password": "p" } }),
    )
    .await
    .ok();
    let id =
        w.t.post(
            "/v1/requests",
            &w.requester,
            json!({ "credential": "staging-root", "reason": "debug" }),
        )
        .await
        .ok()["id"]
            .as_str()
            .unwrap()
            .to_string();
    let code = w.t.code("ann");
    let r =
        w.t.post(
            format!("/v1/requests/{id}/deny"),
            &w.ann,
            json!({ "code": code, "reason": "hmm" }),
        )
        .await
        .ok();
    assert_eq!(r["state"], "pending");
    // The custodian who denied cannot now approve...
    w.t.next_step();
    w.approve(&id, "ann", &w.ann)
        .await
        .refused(409, "already_decided");
    // ...but another can, and one SRE is the quorum.
    assert_eq!(
        w.approve(&id, "bob", &w.bob).await.ok()["state"],
        "approved"
    );
}

async fn rotation_stores_a_new_version_and_clears_exposed(b: Backend) {
    let w = World::new(b).await;
    let id = w.approved_request().await;
    w.t.post(
        format!("/v1/requests/{id}/release"),
        &w.requester,
        json!({}),
    )
    .await
    .ok();
    assert_eq!(
        w.t.get("/v1/credentials/aws-prod-root", &w.admin)
            .await
            .ok()["exposed"],
        true
    );

    let c =
        w.t.post(
            "/v1/credentials/aws-prod-root/versions",
            &w.admin,
            json!({ "fields": { "password": "rotated-1" } }),
        )
        .await
        .ok();
    assert_eq!(c["current_version"], 2);
    assert_eq!(c["exposed"], false);
    assert_eq!(c["versions"].as_array().unwrap().len(), 2);

    // The next break-glass releases version 2.
    let id = w.approved_request().await;
    let r =
        w.t.post(
            format!("/v1/requests/{id}/release"),
            &w.requester,
            json!({}),
        )
        .await
        .ok();
    assert_eq!(r["version"], 2);
    assert_eq!(r["fields"]["password"], "rotated-1");
    assert!(r["fields"].get("mfa_seed").is_none());
}

async fn a_deposit_under_an_unsatisfiable_policy_is_refused_with_the_reason(b: Backend) {
    let w = World::new(b).await;
    w.t.assert_refused_and_unchanged(None, 422, "policy_unsatisfiable", || {
        w.t.post(
            "/v1/credentials",
            &w.admin,
            json!({ "name": "db-root", "account_id": "123456789012", "policy": "needs-dba", "fields": { "password": "x" } }),
        )
    })
    .await;
    let r = w
        .t
        .post(
            "/v1/credentials",
            &w.admin,
            json!({ "name": "db-root", "account_id": "123456789012", "policy": "needs-dba", "fields": { "password": "x" } }),
        )
        .await;
    let msg = r.body["error"]["message"].as_str().unwrap();
    assert!(msg.contains("needs 1 of dba; enrolled: dba 0"), "{msg}");
    let list = w.t.get("/v1/credentials", &w.admin).await.ok();
    assert_eq!(list.as_array().unwrap().len(), 1);
}

async fn enrolment_returns_a_standard_otpauth_uri_and_activates_only_after_confirmation(
    b: Backend,
) {
    let t = TestApp::start(b).await;
    let admin = t.token("root-admin", &[Role::Admin]);
    t.post(
        "/v1/custodians",
        &admin,
        json!({ "name": "dana", "groups": ["sre"] }),
    )
    .await
    .ok();
    let dana = t.token("dana", &[Role::Custodian]);
    let e = t
        .post("/v1/custodians/dana/enroll", &dana, json!({}))
        .await
        .ok();
    let uri = e["otpauth_uri"].as_str().unwrap();
    assert!(uri.starts_with("otpauth://totp/"), "{uri}");
    assert!(
        uri.contains("digits=6") && uri.contains("period=30") && uri.contains("algorithm=SHA1"),
        "{uri}"
    );
    let secret = common::secret_of(uri);
    assert_eq!(secret.len(), 32, "a 160-bit secret is 32 base32 characters");

    let list = t.get("/v1/custodians", &admin).await.ok();
    assert_eq!(list[0]["status"], "pending");

    // Someone else's token cannot confirm (or enrol) dana.
    let eve = t.token("eve", &[Role::Custodian]);
    t.assert_refused_and_unchanged(None, 403, "not_self", || {
        t.post(
            "/v1/custodians/dana/confirm",
            &eve,
            json!({ "code": "000000" }),
        )
    })
    .await;

    t.secrets.lock().unwrap().insert("dana".into(), secret);
    let code = t.code("dana");
    let c = t
        .post(
            "/v1/custodians/dana/confirm",
            &dana,
            json!({ "code": code }),
        )
        .await
        .ok();
    assert_eq!(c["status"], "active");
    // The seed is never returned again.
    t.assert_refused_and_unchanged(None, 409, "already_enrolled", || {
        t.post("/v1/custodians/dana/enroll", &dana, json!({}))
    })
    .await;
    let list = t.get("/v1/custodians", &admin).await.ok();
    assert!(!list.to_string().contains(&common::secret_of(uri)));
}

async fn a_wrong_code_counts_toward_lockout_and_the_lockout_ends(b: Backend) {
    let w = World::new(b).await;
    let t = &w.t;
    let id = w.request().await;
    for _ in 0..5 {
        let code = t.wrong_code("ann");
        t.post(
            format!("/v1/requests/{id}/approve"),
            &w.ann,
            json!({ "code": code }),
        )
        .await
        .refused(401, "invalid_totp");
    }
    assert!(t
        .audit()
        .await
        .iter()
        .any(|e| e.action == "custodian.lockout" && e.target == "custodian:ann"));
    // Locked: even the right code is refused, and is not spent.
    t.assert_refused_and_unchanged(Some(&id), 423, "custodian_locked", || {
        w.approve(&id, "ann", &w.ann)
    })
    .await;
    // Sixteen minutes later the lockout is over.
    t.advance_mins(16);
    assert_eq!(w.approve(&id, "ann", &w.ann).await.ok()["approvals"], 1);
}

async fn a_revoked_token_is_refused(b: Backend) {
    let w = World::new(b).await;
    let (tok, claims) =
        w.t.app
            .tokens
            .issue("oncall2", &[Role::Requester], 3600, w.t.now_secs())
            .unwrap();
    w.t.get("/v1/whoami", &tok).await.ok();
    w.t.post("/v1/tokens/revoke", &w.admin, json!({ "jti": claims.jti }))
        .await
        .ok();
    w.t.assert_refused_and_unchanged(None, 401, "token_revoked", || w.t.get("/v1/whoami", &tok))
        .await;
}

async fn a_code_only_mfa_seed_is_released_as_its_current_code_and_never_as_the_seed(b: Backend) {
    let w = World::new(b).await;
    let t = &w.t;
    // A code-only field must hold a TOTP seed.
    t.post(
        "/v1/credentials",
        &w.admin,
        json!({ "name": "mfa-root", "account_id": "210987654321", "policy": "one-sre",
                "fields": { "password": "p", "mfa_seed": "not a seed!" }, "code_only": ["mfa_seed"] }),
    )
    .await
    .refused(422, "invalid_fields");
    t.post(
        "/v1/credentials",
        &w.admin,
        json!({ "name": "mfa-root", "account_id": "210987654321", "policy": "one-sre",
                "fields": { "password": "p", "mfa_seed": MFA_SEED }, "code_only": ["mfa_seed"] }),
    )
    .await
    .ok();
    let id = t
        .post(
            "/v1/requests",
            &w.requester,
            json!({ "credential": "mfa-root", "reason": "root MFA needed" }),
        )
        .await
        .ok()["id"]
        .as_str()
        .unwrap()
        .to_string();
    t.post(
        format!("/v1/requests/{id}/approve"),
        &w.ann,
        json!({ "code": t.code("ann") }),
    )
    .await
    .ok();
    let r = t
        .post(
            format!("/v1/requests/{id}/release"),
            &w.requester,
            json!({}),
        )
        .await
        .ok();
    // The code oathtool computes from the same seed at the service's time.
    assert_eq!(
        r["fields"]["mfa_seed"],
        common::oathtool(MFA_SEED, t.clock_ms())
    );
    assert_eq!(r["fields"]["password"], "p");
    assert_eq!(r["codes"], json!(["mfa_seed"]));
    assert!(r["codes_valid_until"].as_str().is_some());
    assert!(!r.to_string().contains(MFA_SEED));
    let all = serde_json::to_string(&t.audit().await).unwrap();
    assert!(!all.contains(MFA_SEED));
}

/// The console's session store: a session written by one server is read by
/// another on the same database; use moves the idle deadline but never past
/// the absolute one; sign-out ends one session, revocation every session of
/// a person; an ended or expired session is never touched back to life.
async fn a_console_session_lives_until_its_first_deadline_on_any_server_of_the_database(
    b: Backend,
) {
    use breakglass::domain::states::SignInMethod;
    use breakglass::store::ConsoleSessionRow;

    let t = TestApp::start(b).await;
    let other = t.successor(None).await;
    let now = t.now_secs();
    let session = |id: &str, subject: &str| ConsoleSessionRow {
        id_hash: id.into(),
        subject: subject.into(),
        identity: json!({ "subject": subject }).to_string(),
        method: SignInMethod::Oidc,
        created_at: now,
        last_seen_at: now,
        idle_until: now + 600,
        expires_at: now + 1000,
        ended_at: None,
        ended_by: None,
    };
    let mut tx = t.app.store.begin().await.unwrap();
    for (id, who) in [("a1", "ann"), ("a2", "ann"), ("b1", "bob")] {
        tx.insert_console_session(&session(id, who)).await.unwrap();
    }
    tx.commit().await.unwrap();

    let mut tx = other.app.store.begin().await.unwrap();
    let a1 = tx.console_session("a1").await.unwrap().unwrap();
    assert_eq!(
        (a1.subject.as_str(), a1.method),
        ("ann", SignInMethod::Oidc)
    );
    assert!(a1.is_live(now) && !a1.is_live(now + 600));
    assert!(tx.console_session("nobody").await.unwrap().is_none());
    // Use at +500 asks for +1100: the idle deadline stops at the absolute one.
    assert!(tx
        .touch_console_session("a1", now + 500, now + 1100)
        .await
        .unwrap());
    let a1 = tx.console_session("a1").await.unwrap().unwrap();
    assert_eq!((a1.last_seen_at, a1.idle_until), (now + 500, now + 1000));
    assert!(a1.is_live(now + 999) && !a1.is_live(now + 1000));
    // Idle past its deadline, a2 cannot be touched back to life.
    assert!(!tx
        .touch_console_session("a2", now + 600, now + 900)
        .await
        .unwrap());
    assert!(tx.end_console_session("b1", now + 1, "bob").await.unwrap());
    assert!(!tx.end_console_session("b1", now + 2, "bob").await.unwrap());
    assert!(!tx
        .touch_console_session("b1", now + 3, now + 500)
        .await
        .unwrap());
    tx.commit().await.unwrap();

    let mut tx = t.app.store.begin().await.unwrap();
    let b1 = tx.console_session("b1").await.unwrap().unwrap();
    assert_eq!(
        (b1.ended_at, b1.ended_by.as_deref()),
        (Some(now + 1), Some("bob"))
    );
    assert!(!b1.is_live(now + 1));
    let live: Vec<_> = tx.console_sessions_of("ann", now + 1).await.unwrap();
    assert_eq!(live.len(), 2);
    assert_eq!(
        tx.end_console_sessions_of("ann", now + 2, "admin")
            .await
            .unwrap(),
        2
    );
    assert!(tx
        .console_sessions_of("ann", now + 3)
        .await
        .unwrap()
        .is_empty());
    assert!(!tx
        .touch_console_session("a1", now + 3, now + 500)
        .await
        .unwrap());
    assert_eq!(tx.purge_console_sessions(now + 1001).await.unwrap(), 3);
    assert!(tx.console_session("a1").await.unwrap().is_none());
    tx.commit().await.unwrap();

    // The table refuses an idle deadline past the absolute one.
    let mut tx = t.app.store.begin().await.unwrap();
    let late = ConsoleSessionRow {
        idle_until: now + 1001,
        ..session("c1", "cat")
    };
    assert!(tx.insert_console_session(&late).await.is_err());
    tx.rollback().await.unwrap();
}
