//! Security keys and passkeys at the API, with software authenticators
//! (`webauthn-authenticator-rs`: a passkey, and a token whose state can be
//! copied, as a cloned key's would be), on both databases: registration,
//! approval, the release's re-verification, replays, counter regression,
//! a policy that requires a key, and what a lost key needs.

mod common;

use breakglass::config::Config;
use common::{Backend, TestApp, World, PUBLIC_URL_OF_THIS_SERVER};
use serde_json::{json, Value};
use webauthn_authenticator_rs::softpasskey::SoftPasskey;
use webauthn_authenticator_rs::softtoken::SoftToken;
use webauthn_authenticator_rs::{AuthenticatorBackend, WebauthnAuthenticator};
use webauthn_rs::prelude::{CreationChallengeResponse, RequestChallengeResponse, Url};
use webauthn_rs_proto::UserVerificationPolicy;

both_backends!(
    a_key_registers_approves_and_its_approval_is_proved_at_release,
    a_replayed_or_misdirected_assertion_is_refused,
    a_counter_that_goes_backwards_is_refused_and_alerted,
    a_policy_that_requires_a_key_refuses_totp,
    a_second_key_needs_the_first_and_a_removed_last_key_needs_the_quorum,
    a_key_registers_only_if_its_attestation_chains_to_an_allowed_root,
);

/// A policy whose SREs must approve with a key; security may use either.
const KEYED_POLICY: &str = r#"
[[policy]]
name = "keyed"
description = "tests: SREs approve with a security key"
require = [{ group = "sre", count = 1, presence = "webauthn" }, { group = "security", count = 1 }]
"#;

fn with_keys(c: &mut Config) {
    c.settings.console.public_url = Some(PUBLIC_URL_OF_THIS_SERVER.into());
    std::fs::write(c.policies_dir.join("keyed.toml"), KEYED_POLICY).unwrap();
}

async fn world(backend: Backend) -> World {
    World::with(TestApp::start_configured(backend, &with_keys).await).await
}

fn origin(t: &TestApp) -> Url {
    Url::parse(&t.base.replace("127.0.0.1", "localhost")).unwrap()
}

/// Register a key named `name` for the custodian whose token is `token`,
/// confirming with `confirm` when the server asks for an existing key.
async fn register(
    t: &TestApp,
    token: &str,
    who: &str,
    name: &str,
    key: &mut dyn AuthenticatorBackend,
    confirm: Option<&mut dyn AuthenticatorBackend>,
) -> Value {
    let mut c = t
        .post(
            "/v1/webauthn/keys",
            token,
            json!({ "name": name, "code": t.code(who) }),
        )
        .await
        .ok();
    if c["kind"] == "confirm" {
        let confirm = confirm.expect("the server asks an existing key to confirm");
        let rcr: RequestChallengeResponse = serde_json::from_value(c["options"].clone()).unwrap();
        let a = confirm.do_authentication(origin(t), rcr).unwrap();
        c = t
            .post(
                "/v1/webauthn/keys/confirm",
                token,
                json!({ "ceremony": c["ceremony"], "credential": a }),
            )
            .await
            .ok();
    }
    assert_eq!(c["kind"], "register", "{c}");
    let ccr: CreationChallengeResponse = serde_json::from_value(c["options"].clone()).unwrap();
    let reg = key.do_registration(origin(t), ccr).unwrap();
    t.post(
        "/v1/webauthn/keys/register",
        token,
        json!({ "ceremony": c["ceremony"], "credential": reg }),
    )
    .await
    .ok()
}

/// Start a decision ceremony; the authenticator's response to it.
async fn sign(
    t: &TestApp,
    token: &str,
    id: &str,
    decision: &str,
    key: &mut dyn AuthenticatorBackend,
) -> (String, Value) {
    let c = t
        .post(
            format!("/v1/requests/{id}/webauthn"),
            token,
            json!({ "decision": decision }),
        )
        .await
        .ok();
    let rcr: RequestChallengeResponse = serde_json::from_value(c["options"].clone()).unwrap();
    let a = key.do_authentication(origin(t), rcr).unwrap();
    (
        c["ceremony"].as_str().unwrap().to_string(),
        serde_json::to_value(a).unwrap(),
    )
}

async fn send(
    t: &TestApp,
    token: &str,
    id: &str,
    decision: &str,
    c: &str,
    a: &Value,
) -> common::Resp {
    t.post(
        format!("/v1/requests/{id}/webauthn/{decision}"),
        token,
        json!({ "ceremony": c, "credential": a, "reason": "not now" }),
    )
    .await
}

async fn a_key_registers_approves_and_its_approval_is_proved_at_release(backend: Backend) {
    let w = world(backend).await;
    let t = &w.t;
    let mut key = SoftPasskey::new(true);
    let k = register(t, &w.ann, "ann", "blue", &mut key, None).await;
    assert_eq!(k["name"], "blue");
    let listed = t.get("/v1/webauthn/keys", &w.ann).await.ok();
    assert_eq!(listed.as_array().unwrap().len(), 1);

    let id = w.request().await;
    let (c, a) = sign(t, &w.ann, &id, "approve", &mut key).await;
    let r = send(t, &w.ann, &id, "approve", &c, &a).await.ok();
    assert_eq!(r["decisions"][0]["presence"], "webauthn");
    assert_eq!(r["approvals"], 1);
    w.approve(&id, "bob", &w.bob).await.ok();
    let r = w.approve(&id, "sec", &w.sec).await.ok();
    assert_eq!(r["state"], "approved");

    // The approval's event keeps the assertion; the signed challenge is
    // the hash of what it approves.
    let ev = t
        .audit()
        .await
        .into_iter()
        .find(|e| e.action == "request.approve" && e.actor == "ann")
        .unwrap();
    assert_eq!(ev.details["presence"], "webauthn");
    let kept = &ev.details["webauthn"];
    assert_eq!(kept["credential_id"], k["credential_id"]);
    let purpose = breakglass::app::webauthn::decision_purpose(
        &id,
        breakglass::domain::states::Decision::Approve,
        "ann",
        kept["nonce"].as_str().unwrap(),
    );
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let client: Value = serde_json::from_slice(
        &b64.decode(kept["client_data_json"].as_str().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        client["challenge"],
        b64.encode(breakglass::app::webauthn::challenge_of(&purpose))
    );

    // A database writer who swaps the stored key for one of their own
    // (here: another passkey's record) cannot make the release accept it.
    let mut other = SoftPasskey::new(true);
    t.next_step();
    register(t, &w.bob, "bob", "bobs", &mut other, None).await;
    let cid = k["credential_id"].as_str().unwrap();
    t.raw_sql(&format!(
        "CREATE TABLE kept AS SELECT passkey FROM webauthn_keys WHERE credential_id = '{cid}'; \
         UPDATE webauthn_keys SET passkey = (SELECT passkey FROM webauthn_keys WHERE custodian = 'bob') WHERE credential_id = '{cid}'"
    ))
    .await;
    t.post(
        format!("/v1/requests/{id}/release"),
        &w.requester,
        json!({}),
    )
    .await
    .refused(409, "quorum_unproven");
    t.raw_sql(&format!(
        "UPDATE webauthn_keys SET passkey = (SELECT passkey FROM kept) WHERE credential_id = '{cid}'; DROP TABLE kept"
    ))
    .await;
    let out = t
        .post(
            format!("/v1/requests/{id}/release"),
            &w.requester,
            json!({}),
        )
        .await
        .ok();
    assert_eq!(out["fields"]["password"], common::PASSWORD);
    assert!(t.verify().await);

    // An auditor re-verifies the key approval offline, from an export and
    // the published audit key, with an independent WebAuthn library.
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("audit-key.json");
    let published = t.get("/.well-known/breakglass-audit-key", "").await.ok();
    std::fs::write(&key, published.to_string()).unwrap();
    let export = reqwest::Client::new()
        .get(format!("{}/v1/audit/export", t.base))
        .bearer_auth(&w.auditor)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let file = dir.path().join("export.jsonl");
    std::fs::write(&file, &export).unwrap();
    let (code, said) = verify_py(&key, &file);
    assert_eq!(code, 0, "{said}");
    assert!(said.contains("1 security-key decisions verified"), "{said}");
    // An edited approval is named: its signature, or its nonce (the
    // challenge then binds nothing of this request).
    for (field, to) in [("signature", "AAAA"), ("nonce", "bm90LXRoZS1ub25jZQ")] {
        let edited: Vec<String> = export
            .lines()
            .map(|l| {
                let mut v: Value = serde_json::from_str(l).unwrap();
                if v["action"] == "request.approve" && v["actor"] == "ann" {
                    v["details"]["webauthn"][field] = json!(to);
                }
                if v.is_object() {
                    v.to_string()
                } else {
                    l.to_string()
                }
            })
            .collect();
        std::fs::write(&file, edited.join("\n") + "\n").unwrap();
        let (code, said) = verify_py(&key, &file);
        assert_eq!(code, 1, "{said}");
        assert!(
            said.contains(&format!(
                "the security-key approve by ann in event {} does not verify",
                ev.seq
            )),
            "{said}"
        );
    }
}

fn verify_py(key: &std::path::Path, file: &std::path::Path) -> (i32, String) {
    let out = std::process::Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/verify_audit.py"
        ))
        .arg("--public-key")
        .arg(key)
        .arg(file)
        .output()
        .expect("python3 with cryptography and fido2 (scripts/test installs them)");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

async fn a_replayed_or_misdirected_assertion_is_refused(backend: Backend) {
    let w = world(backend).await;
    let t = &w.t;
    let mut key = SoftPasskey::new(true);
    register(t, &w.ann, "ann", "blue", &mut key, None).await;
    let mut unverified = SoftPasskey::new(true);
    register(t, &w.bob, "bob", "bobs", &mut unverified, None).await;
    let id = w.request().await;
    let other = w.request().await;

    // Started to deny, sent to approve: refused, and the ceremony is used.
    let (c, a) = sign(t, &w.ann, &id, "deny", &mut key).await;
    let before = t.state(Some(&id)).await;
    send(t, &w.ann, &id, "approve", &c, &a)
        .await
        .refused(409, "ceremony_wrong_decision");
    send(t, &w.ann, &id, "deny", &c, &a)
        .await
        .refused(409, "ceremony_used");
    // For another request's endpoint.
    let (c, a) = sign(t, &w.ann, &id, "approve", &mut key).await;
    send(t, &w.ann, &other, "approve", &c, &a)
        .await
        .refused(409, "ceremony_wrong_request");
    // An assertion made for one ceremony, sent with another (of the other
    // request): its challenge binds the first.
    let (c_other, _) = sign(t, &w.ann, &other, "approve", &mut key).await;
    send(t, &w.ann, &other, "approve", &c_other, &a)
        .await
        .refused(401, "assertion_not_bound");
    // Another custodian's session cannot finish ann's ceremony.
    let (c, a) = sign(t, &w.ann, &id, "approve", &mut key).await;
    send(t, &w.bob, &id, "approve", &c, &a)
        .await
        .refused(403, "ceremony_other_session");
    // An expired ceremony.
    let (c, a) = sign(t, &w.ann, &id, "approve", &mut key).await;
    t.advance_mins(6);
    send(t, &w.ann, &id, "approve", &c, &a)
        .await
        .refused(410, "ceremony_expired");
    // A key that signs without verifying its user (the request told it
    // user verification is not needed): validly signed, and refused.
    let c = t
        .post(
            format!("/v1/requests/{id}/webauthn"),
            &w.bob,
            json!({ "decision": "approve" }),
        )
        .await
        .ok();
    let mut rcr: RequestChallengeResponse = serde_json::from_value(c["options"].clone()).unwrap();
    rcr.public_key.user_verification = UserVerificationPolicy::Discouraged_DO_NOT_USE;
    let a = unverified.do_authentication(origin(t), rcr).unwrap();
    send(
        t,
        &w.bob,
        &id,
        "approve",
        c["ceremony"].as_str().unwrap(),
        &json!(a),
    )
    .await
    .refused(401, "user_not_verified");
    // Garbage for a credential.
    let (c, _) = sign(t, &w.ann, &id, "approve", &mut key).await;
    send(t, &w.ann, &id, "approve", &c, &json!({ "id": 1 }))
        .await
        .refused(422, "assertion_malformed");
    // Nothing was decided by any of them.
    assert_eq!(t.state(Some(&id)).await, before);
    // Unknown ceremonies.
    send(t, &w.ann, &id, "approve", "not-a-uuid", &json!({}))
        .await
        .refused(404, "ceremony_unknown");
}

async fn a_counter_that_goes_backwards_is_refused_and_alerted(backend: Backend) {
    let w = world(backend).await;
    let t = &w.t;
    let (mut token, _ca) = SoftToken::new(true).unwrap();
    register(t, &w.ann, "ann", "token", &mut token, None).await;
    // A copy of the key as it is now (what cloning it would give).
    let copy = token.to_cbor().unwrap();
    let id = w.request().await;
    let (c, a) = sign(t, &w.ann, &id, "approve", &mut token).await;
    send(t, &w.ann, &id, "approve", &c, &a).await.ok();

    let other = w.request().await;
    let mut clone = SoftToken::from_cbor(&copy).unwrap();
    let (c, a) = sign(t, &w.ann, &other, "approve", &mut clone).await;
    let before = t.state(Some(&other)).await;
    send(t, &w.ann, &other, "approve", &c, &a)
        .await
        .refused(401, "counter_regressed");
    assert_eq!(t.state(Some(&other)).await, before);
    let alerted = t
        .audit()
        .await
        .into_iter()
        .any(|e| e.action == "webauthn.counter_regressed" && e.target == "custodian:ann");
    assert!(
        alerted,
        "the regression is audited (alert channels select it)"
    );
    // The genuine key goes on.
    let (c, a) = sign(t, &w.ann, &other, "approve", &mut token).await;
    send(t, &w.ann, &other, "approve", &c, &a).await.ok();
}

async fn a_policy_that_requires_a_key_refuses_totp(backend: Backend) {
    let w = world(backend).await;
    let t = &w.t;
    t.post(
        "/v1/credentials",
        &w.admin,
        json!({ "name": "keyed-root", "account_id": "210987654321", "policy": "keyed",
                "fields": { "password": "keyed-password-1" } }),
    )
    .await
    .ok();
    let id = t
        .post(
            "/v1/requests",
            &w.requester,
            json!({ "credential": "keyed-root", "reason": "prod is down" }),
        )
        .await
        .ok()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let before = t.state(Some(&id)).await;
    let r = w.approve(&id, "bob", &w.bob).await;
    r.refused(403, "presence_required");
    assert!(r.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("security key"));
    assert_eq!(t.state(Some(&id)).await, before);
    let mut key = SoftPasskey::new(true);
    register(t, &w.ann, "ann", "blue", &mut key, None).await;
    let (c, a) = sign(t, &w.ann, &id, "approve", &mut key).await;
    send(t, &w.ann, &id, "approve", &c, &a).await.ok();
    // Security may use a TOTP code.
    let r = w.approve(&id, "sec", &w.sec).await.ok();
    assert_eq!(r["state"], "approved");
    t.next_step();
    let out = t
        .post(
            format!("/v1/requests/{id}/release"),
            &w.requester,
            json!({}),
        )
        .await
        .ok();
    assert_eq!(out["fields"]["password"], "keyed-password-1");
}

async fn a_second_key_needs_the_first_and_a_removed_last_key_needs_the_quorum(backend: Backend) {
    let w = world(backend).await;
    let t = &w.t;
    // A first key needs a TOTP code.
    t.post("/v1/webauthn/keys", &w.ann, json!({ "name": "blue" }))
        .await
        .refused(422, "invalid_totp_format");
    let mut blue = SoftPasskey::new(true);
    register(t, &w.ann, "ann", "blue", &mut blue, None).await;
    t.next_step();
    // A second one is confirmed by the first.
    let mut green = SoftPasskey::new(true);
    let g = register(t, &w.ann, "ann", "green", &mut green, Some(&mut blue)).await;
    t.post("/v1/webauthn/keys", &w.ann, json!({ "name": "green" }))
        .await
        .refused(409, "key_name_taken");
    // Removing keys: each never signs again; with none left, a new one is
    // refused until the quorum approves it.
    let keys = t.get("/v1/webauthn/keys", &w.ann).await.ok();
    for k in keys.as_array().unwrap() {
        let cid = k["credential_id"].as_str().unwrap();
        let r = t
            .post(format!("/v1/webauthn/keys/{cid}/remove"), &w.ann, json!({}))
            .await
            .ok();
        assert!(r["removed_at"].is_string());
    }
    let cid = g["credential_id"].as_str().unwrap();
    t.post(format!("/v1/webauthn/keys/{cid}/remove"), &w.ann, json!({}))
        .await
        .refused(403, "key_removed");
    t.next_step();
    t.post(
        "/v1/webauthn/keys",
        &w.ann,
        json!({ "name": "new", "code": t.code("ann") }),
    )
    .await
    .refused(409, "key_reset_required");
    // Another custodian cannot remove ann's keys.
    t.post(format!("/v1/webauthn/keys/{cid}/remove"), &w.bob, json!({}))
        .await
        .refused(404, "key_not_found");

    // The quorum of ann's strictest policy (default: 2 of sre AND 1 of
    // security, ann not counting) allows one new key.
    let reset = t
        .post(
            "/v1/custodians/ann/key-reset",
            &w.ann,
            json!({ "reason": "both keys lost with my bag" }),
        )
        .await
        .ok();
    assert_eq!(reset["policy"], "default");
    assert_eq!(reset["state"], "pending");
    let rid = reset["id"].as_str().unwrap();
    let decide = |who: &'static str, token: &str| {
        let token = token.to_string();
        let code = t.code(who);
        async move {
            t.post(
                format!("/v1/key-resets/{rid}/approve"),
                &token,
                json!({ "code": code }),
            )
            .await
        }
    };
    decide("ann", &w.ann).await.refused(403, "self_approval");
    decide("bob", &w.bob).await.ok();
    t.post(
        "/v1/webauthn/keys",
        &w.ann,
        json!({ "name": "new", "code": t.code("ann") }),
    )
    .await
    .refused(409, "key_reset_required");
    decide("cat", &w.cat).await.ok();
    let done = decide("sec", &w.sec).await.ok();
    assert_eq!(done["state"], "approved");
    assert!(done["register_until"].is_string());
    t.next_step();
    let mut fresh = SoftPasskey::new(true);
    let k = register(t, &w.ann, "ann", "fresh", &mut fresh, None).await;
    assert_eq!(k["name"], "fresh");
    let events = t.audit().await;
    let registered = events
        .iter()
        .rev()
        .find(|e| e.action == "webauthn.register")
        .unwrap();
    assert_eq!(registered.details["authorized_by"], format!("reset:{rid}"));
    assert!(events.iter().any(|e| e.action == "key_reset.approved"));
    // Used once: with the new key removed, the next one needs a new reset.
    let cid = k["credential_id"].as_str().unwrap();
    t.post(format!("/v1/webauthn/keys/{cid}/remove"), &w.ann, json!({}))
        .await
        .ok();
    t.next_step();
    t.post(
        "/v1/webauthn/keys",
        &w.ann,
        json!({ "name": "again", "code": t.code("ann") }),
    )
    .await
    .refused(409, "key_reset_required");
    let listed = t.get("/v1/key-resets", &w.auditor).await.ok();
    assert_eq!(listed[0]["state"], "used");
    // A denial vetoes the next one.
    let reset = t
        .post(
            "/v1/custodians/ann/key-reset",
            &w.admin,
            json!({ "reason": "lost again" }),
        )
        .await
        .ok();
    let rid = reset["id"].as_str().unwrap();
    let denied = t
        .post(
            format!("/v1/key-resets/{rid}/deny"),
            &w.bob,
            json!({ "code": t.code("bob"), "reason": "call me first" }),
        )
        .await
        .ok();
    assert_eq!(denied["state"], "denied");
}

/// The PEM of a software token's attestation root.
fn root_pem(ca: webauthn_rs::prelude::AttestationCa) -> String {
    use base64::Engine;
    let v = serde_json::to_value(ca).unwrap();
    let der = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(v["ca"].as_str().unwrap())
        .unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        lines.join("\n")
    )
}

async fn a_key_registers_only_if_its_attestation_chains_to_an_allowed_root(backend: Backend) {
    let (mut allowed, ca) = SoftToken::new(true).unwrap();
    let (mut other, _) = SoftToken::new(true).unwrap();
    let mut builder = webauthn_rs::prelude::AttestationCaListBuilder::new();
    builder
        .insert_device_x509(
            ca,
            uuid::Uuid::nil(),
            "test token".into(),
            Default::default(),
        )
        .unwrap();
    let list = builder.build();
    let root = list.cas().values().next().unwrap().clone();
    let dir = tempfile::tempdir().unwrap();
    let pem = dir.path().join("roots.pem");
    std::fs::write(&pem, root_pem(root)).unwrap();
    let tweak = move |c: &mut Config| {
        with_keys(c);
        c.settings.webauthn_attestation_roots =
            breakglass::config::Config::attestation_roots_of(&pem).unwrap();
    };
    let w = World::with(TestApp::start_configured(backend, &tweak).await).await;
    let t = &w.t;
    for (who, token, key) in [
        ("bob", &w.bob, &mut other as &mut dyn AuthenticatorBackend),
        ("cat", &w.cat, &mut SoftPasskey::new(true)),
    ] {
        let c = t
            .post(
                "/v1/webauthn/keys",
                token,
                json!({ "name": "k", "code": t.code(who) }),
            )
            .await
            .ok();
        let ccr: CreationChallengeResponse = serde_json::from_value(c["options"].clone()).unwrap();
        // The software passkey cannot attest at all: nothing to send then.
        if let Ok(reg) = key.do_registration(origin(t), ccr) {
            t.post(
                "/v1/webauthn/keys/register",
                token,
                json!({ "ceremony": c["ceremony"], "credential": reg }),
            )
            .await
            .refused(403, "attestation_untrusted");
        }
        assert!(t
            .get("/v1/webauthn/keys", token)
            .await
            .ok()
            .as_array()
            .unwrap()
            .is_empty());
    }
    let k = register(t, &w.ann, "ann", "approved", &mut allowed, None).await;
    assert_eq!(k["name"], "approved");
}
