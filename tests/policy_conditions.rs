//! Conditions a policy may add to its quorum: a declared incident (a
//! ticket matching a pattern), release hours, and a cap on open requests;
//! and `breakglass policy check` explaining policies as code against the
//! enrolled custodians.

mod common;

use std::process::Command;

use breakglass::clock::Clock;
use breakglass::domain::Role;
use common::{Backend, World};
use serde_json::json;

both_backends!(
    a_policy_can_require_an_incident_ticket_release_hours_and_a_cap_on_open_requests,
    policy_check_validates_files_and_explains_them_against_the_enrolled_custodians,
);

const BIN: &str = env!("CARGO_BIN_EXE_breakglass");

/// Monday 10:00 UTC, two to eight days after `now_ms`.
fn a_monday_at_ten(now_ms: i64) -> i64 {
    let day = now_ms.div_euclid(86_400_000) + 2;
    // 1970-01-01 was a Thursday: Monday is (day + 3) % 7 == 0.
    let monday = day + (7 - (day + 3).rem_euclid(7)) % 7;
    monday * 86_400_000 + 10 * 3_600_000
}

async fn a_policy_can_require_an_incident_ticket_release_hours_and_a_cap_on_open_requests(
    b: Backend,
) {
    let w = World::new(b).await;
    let t = &w.t;
    let monday = a_monday_at_ten(t.clock.now_ms());
    t.clock.set_ms(monday);
    // Tokens that outlive the days this test moves through.
    let mint = |who: &str, role: Role| {
        t.app
            .tokens
            .issue(who, &[role], 20 * 86_400, monday / 1000 - 3 * 86_400)
            .unwrap()
            .0
    };
    let (admin, requester, ann) = (
        mint("root-admin", Role::Admin),
        mint("oncall", Role::Requester),
        mint("ann", Role::Custodian),
    );
    t.post(
        "/v1/credentials",
        &admin,
        json!({ "name": "incident-root", "account_id": "111122223333", "policy": "incident-only", "fields": { "password": "in-incident" } }),
    )
    .await
    .ok();
    let file = |ticket: Option<&str>| {
        let tok = requester.clone();
        let ticket = ticket.map(str::to_owned);
        async move {
            t.post(
                "/v1/requests",
                &tok,
                json!({ "credential": "incident-root", "reason": "prod is down", "ticket": ticket }),
            )
            .await
        }
    };
    // No declared incident, or a reference that is not one: refused.
    for ticket in [None, Some("CHG-123"), Some("INC-12"), Some("xINC-123")] {
        let r = file(ticket).await;
        r.refused(422, "ticket_required");
        assert!(r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("INC-[0-9]{3,}"));
    }
    let id = file(Some("INC-4242")).await.ok()["id"]
        .as_str()
        .unwrap()
        .to_string();
    // One open request at a time.
    file(Some("INC-4243"))
        .await
        .refused(409, "too_many_open_requests");
    t.next_step();
    t.post(
        format!("/v1/requests/{id}/approve"),
        &ann,
        json!({ "code": t.code("ann") }),
    )
    .await
    .ok();
    // Approved on Monday; two days earlier (a Saturday, still inside the
    // release window) the release hours refuse it, changing nothing.
    t.clock.set_ms(monday + 60_000 - 2 * 86_400_000);
    let before = t.state(Some(&id)).await;
    t.post(format!("/v1/requests/{id}/release"), &requester, json!({}))
        .await
        .refused(409, "outside_release_hours");
    assert_eq!(t.state(Some(&id)).await, before);
    // Back on Monday, inside the hours: released; the cap frees up.
    t.clock.set_ms(monday + 90_000);
    let r = t
        .post(format!("/v1/requests/{id}/release"), &requester, json!({}))
        .await
        .ok();
    assert_eq!(r["fields"]["password"], "in-incident");
    file(Some("INC-4245")).await.ok();
    let events = t.audit().await;
    assert!(events
        .iter()
        .any(|e| e.code.as_deref() == Some("outside_release_hours")));
    assert!(events
        .iter()
        .any(|e| e.code.as_deref() == Some("ticket_required")));
    assert!(events
        .iter()
        .any(|e| e.code.as_deref() == Some("too_many_open_requests")));
    assert!(t.verify().await);
}

async fn policy_check_validates_files_and_explains_them_against_the_enrolled_custodians(
    b: Backend,
) {
    let w = World::new(b).await;
    let t = &w.t;
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str], token: &str| {
        let out = Command::new(BIN)
            .args(args)
            .env("BREAKGLASS_SERVER", &t.base)
            .env("BREAKGLASS_TOKEN", token)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let d = dir.path().to_str().unwrap();
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/policies/default.toml"),
        dir.path().join("default.toml"),
    )
    .unwrap();
    let (code, out) = run(&["policy", "check", d], &w.auditor);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("policy default needs 2 of sre AND 1 of security; enrolled: security 1, sre 3: satisfiable"),
        "{out}"
    );
    // A policy the enrolled custodians cannot meet fails the check.
    std::fs::write(
        dir.path().join("strict.toml"),
        "[[policy]]\nname = \"strict\"\nrelease_hours = [\"Mon-Fri 09:00-17:00\"]\nrequire = [{ group = \"security\", count = 2 }]\n",
    )
    .unwrap();
    let (code, out) = run(&["policy", "check", d], &w.auditor);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("enrolled: security 1: NOT satisfiable"),
        "{out}"
    );
    assert!(
        out.contains("releases only Mon-Fri 09:00-17:00 (UTC)"),
        "{out}"
    );
    std::fs::remove_file(dir.path().join("strict.toml")).unwrap();
    // A file with an error is named with its line; nothing else is checked.
    std::fs::write(
        dir.path().join("broken.toml"),
        "[[policy]]\nname = \"broken\"\nticket_pattern = \"INC-(\"\nrequire = [{ group = \"sre\", count = 1 }]\n",
    )
    .unwrap();
    let (code, out) = run(&["policy", "check", d], &w.auditor);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("broken.toml:3:") && out.contains("not a regular expression"),
        "{out}"
    );
    std::fs::remove_file(dir.path().join("broken.toml")).unwrap();
    // Without the policy a deposited credential uses: a problem.
    std::fs::write(
        dir.path().join("default.toml"),
        "[[policy]]\nname = \"other\"\nrequire = [{ group = \"sre\", count = 1 }]\n",
    )
    .unwrap();
    let (code, out) = run(&["policy", "check", d], &w.auditor);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("credential aws-prod-root uses policy default"),
        "{out}"
    );
    // Offline (no server): the files are still validated.
    let out = Command::new(BIN)
        .args(["policy", "check", d])
        .env("BREAKGLASS_SERVER", "http://127.0.0.1:9")
        .env("BREAKGLASS_TOKEN", "x")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("1 valid policies") && text.contains("not checked against"),
        "{text}"
    );
}
