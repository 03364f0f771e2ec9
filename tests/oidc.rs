//! Sign-in through an OpenID Connect provider: a real, independent provider
//! (a small Python server on PyJWT) serves discovery and JWKS, signs tokens
//! with RS256, ES256 and EdDSA keys, and rotates them mid-test. Every attack
//! on the token is refused with its own 401 and audited, for every class of
//! endpoint; a role matrix covers every endpoint; with the provider down,
//! its tokens are refused and the local issuer is the audited fallback.

mod common;

use base64::Engine;
use breakglass::domain::Role;
use common::provider::Provider;
use common::{Backend, TestApp, World};
use serde_json::{json, Value};

both_backends!(
    every_attack_on_a_token_is_refused_and_audited_for_every_class_of_endpoint,
    the_role_matrix_holds_for_every_endpoint,
);

const ADMINS: &str = "bg-admins";
const ONCALL: &str = "oncall";
const CUSTODIANS: &str = "bg-custodians";
const AUDITORS: &str = "security-audit";

async fn start(b: Backend, p: &Provider) -> TestApp {
    let issuer = p.url.clone();
    TestApp::start_configured(b, &move |c| {
        c.oidc = vec![breakglass::oidc::OidcConfig {
            client: None,
            issuer: issuer.clone(),
            audience: "breakglass".into(),
            algorithms: vec![
                jsonwebtoken::Algorithm::RS256,
                jsonwebtoken::Algorithm::ES256,
                jsonwebtoken::Algorithm::EdDSA,
            ],
            subject_claim: "sub".into(),
            roles_claim: "groups".into(),
            roles: [
                (Role::Admin, vec![ADMINS.to_string()]),
                (Role::Requester, vec![ONCALL.to_string()]),
                (Role::Custodian, vec![CUSTODIANS.to_string()]),
                (Role::Auditor, vec![AUDITORS.to_string()]),
            ]
            .into_iter()
            .collect(),
            custodian_groups: [
                ("sre".to_string(), vec!["idp-sre".to_string()]),
                ("security".to_string(), vec!["idp-security".to_string()]),
            ]
            .into_iter()
            .collect(),
            timeout: std::time::Duration::from_secs(2),
            min_refresh: std::time::Duration::ZERO,
        }];
    })
    .await
}

fn b64(v: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v)
}

fn parts(token: &str) -> (Value, Value, String) {
    let p: Vec<&str> = token.split('.').collect();
    let dec = |s: &str| {
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(s)
                .unwrap(),
        )
        .unwrap()
    };
    (dec(p[0]), dec(p[1]), p[2].to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_of_each_algorithm_sign_in_map_groups_to_roles_and_follow_a_key_rotation() {
    let p = Provider::start();
    let w = World::with(start(Backend::Sqlite, &p).await).await;
    let t = &w.t;
    for alg in ["RS256", "ES256", "EdDSA"] {
        let tok = p
            .token(t, "ann", &[CUSTODIANS, AUDITORS], alg, json!({}))
            .await;
        let v = t.get("/v1/whoami", &tok).await.ok();
        assert_eq!(v["subject"], "ann", "{alg}: {v}");
        let roles: Vec<&str> = v["roles"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap())
            .collect();
        let mut roles = roles;
        roles.sort();
        assert_eq!(roles, ["auditor", "custodian"], "{alg}");
    }
    // The provider's people take part in a break-glass: a requester and
    // three custodians signed in through the provider, TOTP as usual.
    let oncall = p.token(t, "oncall", &[ONCALL], "ES256", json!({})).await;
    let id = t
        .post(
            "/v1/requests",
            &oncall,
            json!({ "credential": "aws-prod-root", "reason": "prod is down" }),
        )
        .await
        .ok()["id"]
        .as_str()
        .unwrap()
        .to_string();
    // Bob has left the SRE team in the provider: his custodian record
    // still says sre, but he can no longer approve as one.
    let bob_gone = p.token(t, "bob", &[CUSTODIANS], "EdDSA", json!({})).await;
    t.post(
        format!("/v1/requests/{id}/approve"),
        &bob_gone,
        json!({ "code": t.code("bob") }),
    )
    .await
    .refused(403, "not_eligible");
    for (name, group) in [
        ("ann", "idp-sre"),
        ("bob", "idp-sre"),
        ("sec", "idp-security"),
    ] {
        let tok = p
            .token(t, name, &[CUSTODIANS, group], "EdDSA", json!({}))
            .await;
        t.post(
            format!("/v1/requests/{id}/approve"),
            &tok,
            json!({ "code": t.code(name) }),
        )
        .await
        .ok();
    }
    t.next_step();
    let r = t
        .post(format!("/v1/requests/{id}/release"), &oncall, json!({}))
        .await
        .ok();
    assert_eq!(r["fields"]["password"], common::PASSWORD);

    // The provider rotates its RS256 key: new tokens are accepted without a
    // restart, tokens signed with the retired key are not.
    let old = p.token(t, "audrey", &[AUDITORS], "RS256", json!({})).await;
    t.get("/v1/whoami", &old).await.ok();
    let new_kid = p.post("/rotate", json!({ "alg": "RS256" })).await["kid"]
        .as_str()
        .unwrap()
        .to_string();
    let new = p.token(t, "audrey", &[AUDITORS], "RS256", json!({})).await;
    assert_eq!(parts(&new).0["kid"], new_kid.as_str());
    t.get("/v1/whoami", &new).await.ok();
    t.get("/v1/whoami", &old)
        .await
        .refused(401, "token_unknown_key");

    // Local tokens used by the World's set-up (the admin, the custodians'
    // enrolment) are audited as fallback sign-ins; the provider's users
    // who never used one (oncall, audrey) are not.
    let events = t.audit().await;
    let fallback: Vec<&str> = events
        .iter()
        .filter(|e| e.action == "auth.fallback")
        .map(|e| e.actor.as_str())
        .collect();
    assert!(fallback.contains(&"root-admin"), "{fallback:?}");
    assert!(
        !fallback.contains(&"oncall") && !fallback.contains(&"audrey"),
        "{fallback:?}"
    );
}

/// Every attack, as a token, and the code it must get.
async fn attacks(
    p: &Provider,
    t: &TestApp,
    sub: &str,
    group: &str,
) -> Vec<(&'static str, String, &'static str)> {
    let good = p.token(t, sub, &[group], "RS256", json!({})).await;
    let (header, claims, sig) = parts(&good);
    let mut out = Vec::new();
    // alg: none, unsigned.
    let mut h = header.clone();
    h["alg"] = json!("none");
    out.push((
        "alg none",
        format!(
            "{}.{}.",
            b64(h.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        ),
        "token_wrong_algorithm",
    ));
    // HS256 signed with the provider's public key as the secret.
    let pem = p.public_pem("RS256").await;
    let mut hs = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    hs.kid = header["kid"].as_str().map(str::to_owned);
    let forged = jsonwebtoken::encode(
        &hs,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(pem.as_bytes()).unwrap(),
    )
    .unwrap();
    out.push(("HS256 with the public key", forged, "token_wrong_algorithm"));
    out.push((
        "expired",
        p.token(t, sub, &[group], "ES256", json!({ "exp_in": -3600 }))
            .await,
        "token_expired",
    ));
    out.push((
        "not yet valid",
        p.token(t, sub, &[group], "ES256", json!({ "nbf_in": 3600 }))
            .await,
        "token_not_yet_valid",
    ));
    out.push((
        "wrong issuer",
        p.token(
            t,
            sub,
            &[group],
            "EdDSA",
            json!({ "iss": "https://evil.example" }),
        )
        .await,
        "token_wrong_issuer",
    ));
    out.push((
        "wrong audience",
        p.token(t, sub, &[group], "EdDSA", json!({ "aud": "another-api" }))
            .await,
        "token_wrong_audience",
    ));
    out.push((
        "unknown kid",
        p.token(t, sub, &[group], "RS256", json!({ "kid": "rs256-unknown" }))
            .await,
        "token_unknown_key",
    ));
    let mut c = claims.clone();
    c["groups"] = json!([ADMINS, ONCALL, CUSTODIANS, AUDITORS]);
    out.push((
        "tampered payload",
        format!(
            "{}.{}.{sig}",
            b64(header.to_string().as_bytes()),
            b64(c.to_string().as_bytes())
        ),
        "token_bad_signature",
    ));
    let mut bad_sig = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&sig)
        .unwrap();
    bad_sig[10] ^= 1;
    let g: Vec<&str> = good.split('.').collect();
    out.push((
        "tampered signature",
        format!("{}.{}.{}", g[0], g[1], b64(&bad_sig)),
        "token_bad_signature",
    ));
    out.push((
        "no mapped role",
        p.token(t, sub, &["interns"], "ES256", json!({})).await,
        "token_no_role",
    ));
    out
}

async fn every_attack_on_a_token_is_refused_and_audited_for_every_class_of_endpoint(b: Backend) {
    let p = Provider::start();
    let w = World::with(start(b, &p).await).await;
    let t = &w.t;
    let id = w.request().await;
    let classes: Vec<(&str, &str, &str, String, Value)> = vec![
        (
            "admin",
            ADMINS,
            "POST",
            "/v1/custodians".into(),
            json!({ "name": "zed", "groups": ["sre"] }),
        ),
        (
            "requester",
            ONCALL,
            "POST",
            "/v1/requests".into(),
            json!({ "credential": "aws-prod-root", "reason": "x" }),
        ),
        (
            "custodian",
            CUSTODIANS,
            "POST",
            format!("/v1/requests/{id}/approve"),
            json!({ "code": "123456" }),
        ),
        (
            "auditor",
            AUDITORS,
            "GET",
            "/v1/audit/events".into(),
            Value::Null,
        ),
    ];
    let before = t.state(Some(&id)).await;
    let mut expected = 0;
    for (class, group, method, path, body) in &classes {
        for (attack, token, code) in attacks(&p, t, "ann", group).await {
            let body = (!body.is_null()).then(|| body.clone());
            let r = t.call(method, path.clone(), Some(&token), body).await;
            assert_eq!(
                (r.status, r.code()),
                (401, code),
                "{class} / {attack}: {}",
                r.body
            );
            expected += 1;
        }
    }
    assert_eq!(
        t.state(Some(&id)).await,
        before,
        "no attack changed anything"
    );
    // Each refusal is counted: the first of each code (from this address,
    // this minute) at once, all of them in the minute's summaries.
    t.clock.advance_secs(61);
    t.app.flush_auth_refusals(false).await.unwrap();
    let events = t.audit().await;
    let refused: Vec<_> = events
        .iter()
        .filter(|e| e.action == "auth.token" && e.outcome == "refused")
        .collect();
    let codes: std::collections::BTreeSet<_> = refused.iter().map(|e| e.code.clone()).collect();
    assert_eq!(refused.len(), codes.len(), "one event per code");
    let counted: i64 = events
        .iter()
        .filter(|e| e.action == "auth.refused_summary")
        .map(|e| e.details["attempts"].as_i64().unwrap())
        .sum();
    assert_eq!(counted, expected);
    for code in [
        "token_wrong_algorithm",
        "token_expired",
        "token_not_yet_valid",
        "token_wrong_issuer",
        "token_wrong_audience",
        "token_unknown_key",
        "token_bad_signature",
        "token_no_role",
    ] {
        assert!(
            refused.iter().any(|e| e.code.as_deref() == Some(code)),
            "{code} not audited"
        );
    }
}

async fn the_role_matrix_holds_for_every_endpoint(b: Backend) {
    let p = Provider::start();
    let w = World::with(start(b, &p).await).await;
    let t = &w.t;
    let id = w.request().await;
    let uuid = "3f2a9c01-d4e5-4b6a-8c7d-0e1f2a3b4c5d";
    use Role::*;
    let all = [Admin, Requester, Custodian, Auditor];
    let endpoints: Vec<(&str, String, Value, Vec<Role>)> = vec![
        ("GET", "/v1/whoami".into(), Value::Null, all.to_vec()),
        (
            "POST",
            "/v1/custodians".into(),
            json!({ "name": "zed", "groups": ["sre"] }),
            vec![Admin],
        ),
        (
            "GET",
            "/v1/custodians".into(),
            Value::Null,
            vec![Admin, Auditor, Custodian],
        ),
        (
            "POST",
            "/v1/custodians/zed/enroll".into(),
            json!({}),
            vec![Custodian],
        ),
        (
            "POST",
            "/v1/custodians/zed/confirm".into(),
            json!({ "code": "123456" }),
            vec![Custodian],
        ),
        (
            "POST",
            "/v1/credentials".into(),
            json!({ "name": "aws-prod-root", "account_id": "123456789012", "policy": "default", "fields": { "password": "x" } }),
            vec![Admin],
        ),
        ("GET", "/v1/credentials".into(), Value::Null, all.to_vec()),
        (
            "GET",
            "/v1/credentials/aws-prod-root".into(),
            Value::Null,
            all.to_vec(),
        ),
        (
            "POST",
            "/v1/credentials/nope/versions".into(),
            json!({ "fields": { "password": "x" } }),
            vec![Admin],
        ),
        ("GET", "/v1/policies".into(), Value::Null, all.to_vec()),
        (
            "POST",
            "/v1/requests".into(),
            json!({ "credential": "nope", "reason": "matrix" }),
            vec![Requester],
        ),
        ("GET", "/v1/requests".into(), Value::Null, all.to_vec()),
        (
            "GET",
            format!("/v1/requests/{id}"),
            Value::Null,
            all.to_vec(),
        ),
        (
            "POST",
            format!("/v1/requests/{uuid}/approve"),
            json!({ "code": "123456" }),
            vec![Custodian],
        ),
        (
            "POST",
            format!("/v1/requests/{uuid}/deny"),
            json!({ "code": "123456", "reason": "no" }),
            vec![Custodian],
        ),
        (
            "POST",
            format!("/v1/requests/{uuid}/release"),
            json!({}),
            vec![Requester],
        ),
        ("GET", "/v1/audit/events".into(), Value::Null, vec![Auditor]),
        ("POST", "/v1/audit/verify".into(), json!({}), vec![Auditor]),
        (
            "GET",
            "/v1/audit/checkpoints".into(),
            Value::Null,
            vec![Auditor],
        ),
        (
            "POST",
            "/v1/audit/checkpoints".into(),
            json!({}),
            vec![Auditor, Admin],
        ),
        (
            "GET",
            "/v1/audit/export?format=ocsf".into(),
            Value::Null,
            vec![Auditor],
        ),
        ("GET", "/v1/audit/sink".into(), Value::Null, vec![Auditor]),
        (
            "POST",
            "/v1/tokens/revoke".into(),
            json!({ "jti": uuid }),
            vec![Admin],
        ),
        (
            "POST",
            "/v1/recovery/shares/check".into(),
            json!({ "set_id": "x", "index": 1, "commitment": "00" }),
            vec![Custodian],
        ),
        (
            "POST",
            format!("/v1/requests/{uuid}/recovery"),
            json!({}),
            vec![Requester],
        ),
        (
            "GET",
            format!("/v1/recovery/sessions/{uuid}"),
            Value::Null,
            vec![Requester, Custodian, Auditor],
        ),
        (
            "POST",
            format!("/v1/recovery/sessions/{uuid}/shares"),
            json!({ "code": "123456", "sealed_share": "AAAA" }),
            vec![Custodian],
        ),
        (
            "POST",
            format!("/v1/recovery/sessions/{uuid}/release"),
            json!({}),
            vec![Requester],
        ),
    ];
    let group_of = |r: Role| match r {
        Admin => ADMINS,
        Requester => ONCALL,
        Custodian => CUSTODIANS,
        Auditor => AUDITORS,
    };
    let mut tokens = Vec::new();
    for r in all {
        tokens.push((
            r,
            p.token(
                t,
                &format!("mx-{r}"),
                &[group_of(r)],
                "ES256",
                json!({ "exp_in": 3600 }),
            )
            .await,
        ));
    }
    let mut cells = 0;
    for (method, path, body, allowed) in &endpoints {
        let body = (!body.is_null()).then(|| body.clone());
        // No token: 401 everywhere under /v1.
        let r = t.call(method, path.clone(), None, body.clone()).await;
        assert_eq!(
            (r.status, r.code()),
            (401, "token_missing"),
            "{method} {path} without a token"
        );
        for (role, token) in &tokens {
            let r = t
                .call(method, path.clone(), Some(token), body.clone())
                .await;
            let denied = r.status == 403 && r.code() == "forbidden_role";
            assert_eq!(
                denied,
                !allowed.contains(role),
                "{method} {path} as {role}: {} {}",
                r.status,
                r.body
            );
            assert!(r.status < 500, "{method} {path} as {role}: {}", r.body);
            cells += 1;
        }
    }
    assert_eq!(cells, endpoints.len() * 4);
    // Public endpoints need no token.
    for path in [
        "/healthz",
        "/openapi.json",
        "/.well-known/breakglass-audit-key",
    ] {
        assert_eq!(t.call("GET", path, None, None).await.status, 200, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_provider_down_its_tokens_are_refused_and_local_tokens_are_the_audited_fallback() {
    let mut p = Provider::start();
    let t = start(Backend::Sqlite, &p).await;
    let oidc_token = p.token(&t, "audrey", &[AUDITORS], "RS256", json!({})).await;
    // The provider goes down before this server ever fetched its keys.
    p.stop();
    t.get("/v1/whoami", &oidc_token)
        .await
        .refused(401, "token_issuer_unreachable");
    // The local issuer still signs in, and each fallback token is audited
    // once, by whom and as a fallback.
    let local = t.token("audrey", &[Role::Auditor]);
    t.get("/v1/whoami", &local).await.ok();
    t.get("/v1/audit/events", &local).await.ok();
    let events = t.audit().await;
    let fallbacks: Vec<_> = events
        .iter()
        .filter(|e| e.action == "auth.fallback")
        .collect();
    assert_eq!(fallbacks.len(), 1);
    assert_eq!(fallbacks[0].actor, "audrey");
    assert_eq!(fallbacks[0].details["subject"], "audrey");
    assert!(
        events
            .iter()
            .any(|e| e.action == "auth.token"
                && e.code.as_deref() == Some("token_issuer_unreachable"))
    );
}
