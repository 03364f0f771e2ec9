//! Hostile input from people who hold a token: malformed codes, control
//! characters, ambiguous bodies. Each is refused with its own code, changes
//! nothing, and is audited.

mod common;

use breakglass::domain::Role;
use common::{Backend, World};
use serde_json::json;

both_backends!(
    malformed_totp_codes_are_refused_as_malformed_and_never_count_toward_lockout,
    control_and_bidi_characters_are_refused_everywhere_and_the_refusal_is_audited,
    the_cli_escapes_what_it_prints_from_the_server,
    a_key_given_twice_and_an_out_of_range_limit_are_refused,
    an_unauthenticated_flood_costs_a_bounded_number_of_rows_and_every_attempt_is_counted,
);

/// The characters a hostile string carries, each as it is sent in a JSON
/// string and in a URL.
const HOSTILE: [(&str, &str); 6] = [
    ("\u{0}", "%00"),
    ("\u{1b}[2K", "%1B%5B2K"),
    ("\u{85}", "%C2%85"),
    ("\u{202e}", "%E2%80%AE"),
    ("\u{2066}", "%E2%81%A6"),
    ("\u{7f}", "%7F"),
];

/// Every string a caller names or explains something with, in a body, a
/// path or a query, with `bad` in it, refused with `invalid_characters`,
/// nothing changed, and the refusal audited as the caller.
async fn control_and_bidi_characters_are_refused_everywhere_and_the_refusal_is_audited(b: Backend) {
    let w = World::new(b).await;
    let t = &w.t;
    let id = w.request().await;
    let root = t.token("rooty", &[Role::Admin, Role::Requester, Role::Auditor]);
    for (raw, url) in HOSTILE {
        let bad = format!("x{raw}y");
        let seg = format!("x{url}y");
        let bodies: Vec<(&str, String, serde_json::Value)> = vec![
            (
                &w.admin,
                "/v1/custodians".into(),
                json!({ "name": bad, "groups": ["sre"] }),
            ),
            (
                &w.admin,
                "/v1/custodians".into(),
                json!({ "name": "fine", "groups": [bad] }),
            ),
            (
                &w.admin,
                "/v1/credentials".into(),
                json!({ "name": bad, "account_id": "123456789012", "policy": "default", "fields": { "password": "p" } }),
            ),
            (
                &w.admin,
                "/v1/credentials".into(),
                json!({ "name": "fine", "account_id": bad, "policy": "default", "fields": { "password": "p" } }),
            ),
            (
                &w.admin,
                "/v1/credentials".into(),
                json!({ "name": "fine", "account_id": "123456789012", "policy": bad, "fields": { "password": "p" } }),
            ),
            (
                &w.admin,
                "/v1/credentials".into(),
                json!({ "name": "fine", "account_id": "123456789012", "policy": "default", "fields": { bad.clone(): "p" } }),
            ),
            (
                &w.requester,
                "/v1/requests".into(),
                json!({ "credential": bad, "reason": "r" }),
            ),
            (
                &w.requester,
                "/v1/requests".into(),
                json!({ "credential": "aws-prod-root", "reason": bad }),
            ),
            (
                &w.requester,
                "/v1/requests".into(),
                json!({ "credential": "aws-prod-root", "reason": "r", "ticket": bad }),
            ),
            (
                &w.bob,
                format!("/v1/requests/{id}/deny"),
                json!({ "code": "123456", "reason": bad }),
            ),
            (&w.admin, "/v1/tokens/revoke".into(), json!({ "jti": bad })),
            (
                &w.ann,
                "/v1/recovery/shares/check".into(),
                json!({ "set_id": bad, "index": 1, "commitment": "c" }),
            ),
            (
                &w.admin,
                "/v1/policy-changes".into(),
                json!({ "credential": "aws-prod-root", "to_policy": "one-sre", "reason": bad }),
            ),
            (
                &w.admin,
                "/v1/policy-changes".into(),
                json!({ "credential": bad, "to_policy": "one-sre", "reason": "r" }),
            ),
            (
                &w.admin,
                "/v1/policy-changes".into(),
                json!({ "policy_toml": format!("[[policy]]\nname = \"{bad}\""), "reason": "r" }),
            ),
        ];
        for (token, path, body) in bodies {
            t.assert_refused_and_unchanged(Some(&id), 422, "invalid_characters", || {
                t.post(path.clone(), token, body.clone())
            })
            .await;
        }
        let posts: Vec<(&str, String)> = vec![
            (&w.bob, format!("/v1/requests/{seg}/approve")),
            (&w.bob, format!("/v1/requests/{seg}/deny")),
            (&w.requester, format!("/v1/requests/{seg}/release")),
            (&w.requester, format!("/v1/requests/{seg}/recovery")),
            (&w.bob, format!("/v1/custodians/{seg}/enroll")),
            (&w.bob, format!("/v1/custodians/{seg}/confirm")),
            (&w.admin, format!("/v1/credentials/{seg}/versions")),
            (&w.admin, format!("/v1/credentials/{seg}/rotate-keys")),
            (&w.bob, format!("/v1/policy-changes/{seg}/approve")),
            (&w.admin, format!("/v1/alerts/{seg}/retry")),
            (&w.bob, format!("/v1/recovery/sessions/{seg}/shares")),
            (&w.requester, format!("/v1/recovery/sessions/{seg}/release")),
        ];
        for (token, path) in posts {
            t.assert_refused_and_unchanged(Some(&id), 422, "invalid_characters", || {
                t.post(path.clone(), token, json!({ "code": "123456", "reason": "r", "fields": { "p": "v" }, "sealed_share": "x" }))
            })
            .await;
        }
        let gets = [
            format!("/v1/requests/{seg}"),
            format!("/v1/credentials/{seg}"),
            format!("/v1/recovery/sessions/{seg}"),
            format!("/v1/audit/events?actor={seg}"),
            format!("/v1/audit/events?action={seg}"),
            format!("/v1/audit/events?credential={seg}"),
            format!("/v1/audit/export?format={seg}"),
            format!("/v1/alerts?state={seg}"),
            format!("/v1/requests?{seg}=1"),
        ];
        for path in gets {
            t.assert_refused_and_unchanged(Some(&id), 422, "invalid_characters", || {
                t.get(path.clone(), &root)
            })
            .await;
        }
    }
    // Each refusal names the caller, and the log holds no raw hostile
    // character: it verifies, and reads back the same on both databases.
    let refused: Vec<_> = t
        .audit()
        .await
        .into_iter()
        .filter(|e| e.code.as_deref() == Some("invalid_characters"))
        .collect();
    assert_eq!(refused.len(), HOSTILE.len() * 36);
    assert!(refused.iter().all(|e| e.actor != "anonymous"));
    for e in &refused {
        let text = serde_json::to_string(e).unwrap();
        assert!(
            !text.contains('\u{1b}') && !text.contains('\u{202e}'),
            "{text}"
        );
    }
    assert!(t.verify().await);
}

const MALFORMED_CODES: [&str; 7] = [
    "12345",
    "1234567",
    "abcdef",
    "12 345",
    "",
    "１２３４５６",
    "12345\u{0}",
];

async fn malformed_totp_codes_are_refused_as_malformed_and_never_count_toward_lockout(b: Backend) {
    let w = World::new(b).await;
    let t = &w.t;
    let id = w.request().await;
    // Approve and deny a request.
    for bad in MALFORMED_CODES {
        t.assert_refused_and_unchanged(Some(&id), 422, "invalid_totp_format", || {
            t.post(
                format!("/v1/requests/{id}/approve"),
                &w.bob,
                json!({ "code": bad }),
            )
        })
        .await;
        t.assert_refused_and_unchanged(Some(&id), 422, "invalid_totp_format", || {
            t.post(
                format!("/v1/requests/{id}/deny"),
                &w.bob,
                json!({ "code": bad, "reason": "no" }),
            )
        })
        .await;
    }
    // Confirm an enrolment.
    t.post(
        "/v1/custodians",
        &w.admin,
        json!({ "name": "dan", "groups": ["sre"] }),
    )
    .await
    .ok();
    let dan = t.token("dan", &[Role::Custodian]);
    t.post("/v1/custodians/dan/enroll", &dan, json!({}))
        .await
        .ok();
    for bad in MALFORMED_CODES {
        t.assert_refused_and_unchanged(None, 422, "invalid_totp_format", || {
            t.post("/v1/custodians/dan/confirm", &dan, json!({ "code": bad }))
        })
        .await;
    }
    // Decide a policy change.
    let change = t
        .post(
            "/v1/policy-changes",
            &w.admin,
            json!({ "policy_toml": "[[policy]]\nname = \"default\"\ndescription = \"x\"\nrequire = [{ group = \"sre\", count = 1 }]\n", "reason": "test" }),
        )
        .await
        .ok();
    let change = change["id"].as_str().unwrap().to_string();
    for bad in MALFORMED_CODES {
        for verb in ["approve", "deny"] {
            t.assert_refused_and_unchanged(None, 422, "invalid_totp_format", || {
                t.post(
                    format!("/v1/policy-changes/{change}/{verb}"),
                    &w.bob,
                    json!({ "code": bad, "reason": "no" }),
                )
            })
            .await;
        }
    }
    // Far more malformed codes than the lockout allows, and bob is neither
    // locked out nor closer to it: his next code works.
    let mut tx = t.app.store.begin_read().await.unwrap();
    let bob = tx.custodian("bob").await.unwrap().unwrap();
    let failures = tx.count_totp_failures("bob", 0).await.unwrap();
    tx.rollback().await.unwrap();
    assert_eq!((bob.locked_until, failures), (None, 0));
    w.approve(&id, "bob", &w.bob).await.ok();

    // A wrong (well-formed) code says how many tries are left.
    let r = t
        .post(
            format!("/v1/requests/{id}/approve"),
            &w.ann,
            json!({ "code": t.wrong_code("ann") }),
        )
        .await;
    r.refused(401, "invalid_totp");
    let message = r.body["error"]["message"].as_str().unwrap();
    assert!(message.contains("4 tries left"), "{message}");
    for left in ["3 tries left", "2 tries left", "1 try left"] {
        let r = t
            .post(
                format!("/v1/requests/{id}/approve"),
                &w.ann,
                json!({ "code": t.wrong_code("ann") }),
            )
            .await;
        let message = r.body["error"]["message"].as_str().unwrap();
        assert!(message.contains(left), "{message}");
    }
    let r = t
        .post(
            format!("/v1/requests/{id}/approve"),
            &w.ann,
            json!({ "code": t.wrong_code("ann") }),
        )
        .await;
    r.refused(401, "invalid_totp");
    let message = r.body["error"]["message"].as_str().unwrap();
    assert!(message.contains("locked out until"), "{message}");
}

/// A reason that a database writer filled with escape codes (the API
/// refuses them) is printed escaped: it cannot repaint the credential name
/// or the decision a custodian sees.
async fn the_cli_escapes_what_it_prints_from_the_server(b: Backend) {
    let w = World::new(b).await;
    let t = &w.t;
    let id = w.request().await;
    let esc = match b {
        Backend::Sqlite => "char(27)",
        Backend::Postgres => "chr(27)",
    };
    let rlo = match b {
        Backend::Sqlite => "char(8238)",
        Backend::Postgres => "chr(8238)",
    };
    t.raw_sql(&format!(
        "UPDATE requests SET reason = 'fine' || {esc} || '[1A' || {esc} || '[2K' || 'aws-dev-sandbox' || {rlo} || 'x', \
         credential_name = 'aws-prod-root' || {esc} || '[8m' WHERE id = '{id}'"
    ))
    .await;
    for json in [false, true] {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_breakglass"));
        cmd.args([
            "--server", &t.base, "--token", &w.bob, "request", "show", &id,
        ]);
        if json {
            cmd.arg("--json");
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert!(
            !stdout.contains('\u{1b}') && !stdout.contains('\u{202e}'),
            "raw control characters printed: {stdout:?}"
        );
        if json {
            let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
            assert!(
                v["reason"].as_str().unwrap().contains('\u{1b}'),
                "same value"
            );
        } else {
            assert!(stdout.contains("\\u{001b}[2K"), "{stdout}");
        }
    }
}

async fn a_key_given_twice_and_an_out_of_range_limit_are_refused(b: Backend) {
    let w = World::new(b).await;
    let t = &w.t;
    let id = w.request().await;
    // serde would keep the last "password"; the edge keeps neither.
    let raw = r#"{"name":"twice","account_id":"123456789012","policy":"default","fields":{"password":"first","password":"second"}}"#;
    t.assert_refused_and_unchanged(Some(&id), 422, "duplicate_key", || {
        t.post_raw("/v1/credentials", &w.admin, raw)
    })
    .await;
    let raw = r#"{"credential":"aws-prod-root","reason":"one","reason":"two"}"#;
    t.assert_refused_and_unchanged(Some(&id), 422, "duplicate_key", || {
        t.post_raw("/v1/requests", &w.requester, raw)
    })
    .await;
    // Page sizes are refused outside their range, not clamped.
    for (path, token) in [
        ("/v1/requests?limit=0", &w.requester),
        ("/v1/requests?limit=501", &w.requester),
        ("/v1/requests?limit=-5", &w.requester),
        ("/v1/audit/events?limit=0", &w.auditor),
        ("/v1/audit/events?limit=1001", &w.auditor),
        ("/v1/audit/checkpoints?limit=100000", &w.auditor),
    ] {
        t.assert_refused_and_unchanged(Some(&id), 422, "invalid_limit", || t.get(path, token))
            .await;
    }
    t.assert_refused_and_unchanged(Some(&id), 422, "invalid_max_steps", || {
        t.post(
            "/v1/credentials/aws-prod-root/rotate-keys",
            &w.admin,
            json!({ "max_steps": 9 }),
        )
    })
    .await;
    // At the bounds, accepted.
    t.get("/v1/requests?limit=500", &w.requester).await.ok();
    t.get("/v1/audit/events?limit=1000", &w.auditor).await.ok();
}

/// 5 addresses × 200 bad tokens, two kinds of refusal: the review saw
/// 4,000 chained rows for 4,000 attempts. Now: the first refusal of each
/// address and code within the budget at once, the rest in one summary per
/// address, code and minute; every attempt counted; a caller with a valid
/// token unaffected throughout.
async fn an_unauthenticated_flood_costs_a_bounded_number_of_rows_and_every_attempt_is_counted(
    b: Backend,
) {
    let t = common::TestApp::start_configured(b, &|c| {
        c.settings.limits.auth_refusal_events_per_minute = 4;
    })
    .await;
    let admin = t.token("root-admin", &[Role::Admin]);
    let before = t.audit().await.len();
    let foreign = breakglass::auth::TokenService::new(
        &breakglass::crypto::signing::SigningKey::generate(),
        "breakglass",
        "breakglass-api",
        86400,
    )
    .issue("mallory", &[Role::Admin], 3600, t.now_secs())
    .unwrap()
    .0;
    let mut floods = Vec::new();
    for a in 2..=6u8 {
        let client = reqwest::Client::builder()
            .local_address(std::net::IpAddr::from([127, 0, 0, a]))
            .build()
            .unwrap();
        let (base, foreign) = (t.base.clone(), foreign.clone());
        floods.push(tokio::spawn(async move {
            for i in 0..200 {
                let token = if i % 2 == 0 {
                    "not-a-token"
                } else {
                    foreign.as_str()
                };
                let r = client
                    .get(format!("{base}/v1/credentials"))
                    .bearer_auth(token)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 401);
            }
        }));
    }
    // Meanwhile a caller with a valid token is answered.
    for _ in 0..20 {
        t.get("/v1/custodians", &admin).await.ok();
    }
    for f in floods {
        f.await.unwrap();
    }
    let during: Vec<_> = t.audit().await.into_iter().skip(before).collect();
    let firsts: Vec<_> = during.iter().filter(|e| e.action == "auth.token").collect();
    assert_eq!(firsts.len(), 4, "the budget of first refusals: {firsts:?}");
    assert!(firsts
        .iter()
        .all(|e| e.outcome == "refused" && e.details["address"].is_string()));
    assert_eq!(during.len(), 4, "nothing else was written during the flood");
    // The minute ends (the server's ticker, stepped here): the summaries.
    t.clock.advance_secs(61);
    t.app.flush_auth_refusals(false).await.unwrap();
    let after: Vec<_> = t.audit().await.into_iter().skip(before).collect();
    let summaries: Vec<_> = after
        .iter()
        .filter(|e| e.action == "auth.refused_summary")
        .collect();
    let attempts: i64 = summaries
        .iter()
        .map(|e| e.details["attempts"].as_i64().unwrap())
        .sum();
    assert_eq!(attempts, 1000, "every attempt counted");
    // One per address and code within the budget, one `other` per code.
    assert!(summaries.len() <= 4 + 2, "{summaries:?}");
    let others: i64 = summaries
        .iter()
        .filter(|e| e.details["address"] == "other")
        .map(|e| e.details["addresses"].as_i64().unwrap())
        .sum();
    assert!(
        others >= 1,
        "addresses beyond the budget are counted together"
    );
    assert!(t.verify().await);
}
