//! The security review: `breakglass doctor` reports what needs attention,
//! each finding with its fix, and fails while anything is high.

mod common;

use std::process::Command;

use breakglass::domain::Role;
use common::{Backend, World};
use serde_json::{json, Value};

both_backends!(the_review_names_each_gap_with_its_fix_and_fails_on_high_findings,);

const BIN: &str = env!("CARGO_BIN_EXE_breakglass");

fn checks(v: &Value) -> Vec<(String, String)> {
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["check"].as_str().unwrap().to_string(),
                f["subject"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

async fn the_review_names_each_gap_with_its_fix_and_fails_on_high_findings(b: Backend) {
    let w = World::new(b).await;
    let t = &w.t;
    let doctor = |token: &str| {
        let out = Command::new(BIN)
            .arg("doctor")
            .env("BREAKGLASS_SERVER", &t.base)
            .env("BREAKGLASS_TOKEN", token)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    // No recovery set, and a released credential not rotated: high.
    let id = w.approved_request().await;
    t.post(
        format!("/v1/requests/{id}/release"),
        &w.requester,
        json!({}),
    )
    .await
    .ok();
    let v = t.get("/v1/hygiene", &w.auditor).await.ok();
    let c = checks(&v);
    assert!(
        c.contains(&("recovery.no_set".into(), "recovery".into())),
        "{c:?}"
    );
    assert!(
        c.contains(&(
            "credential.exposed".into(),
            "credential:aws-prod-root".into()
        )),
        "{c:?}"
    );
    assert_eq!(v["findings"][0]["severity"], "high");
    let (code, out) = doctor(&w.auditor);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("breakglass init --threshold")
            && out.contains("credential rotate aws-prod-root"),
        "{out}"
    );
    t.get("/v1/hygiene", &w.requester)
        .await
        .refused(403, "forbidden_role");

    // The ceremony, a rotation: no high finding left, the shares not yet
    // checked are medium.
    let work = tempfile::tempdir().unwrap();
    let mut args: Vec<String> = vec!["init".into(), "--threshold".into(), "2".into()];
    for name in ["ann", "bob", "sec"] {
        let key = work.path().join(format!("{name}.key"));
        let out = Command::new("age-keygen")
            .arg("-o")
            .arg(&key)
            .output()
            .unwrap();
        assert!(out.status.success());
        let recipient = std::fs::read_to_string(&key)
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("# public key: ").map(str::to_owned))
            .unwrap();
        args.extend(["--custodian".into(), format!("{name}={recipient}")]);
    }
    args.extend([
        "--out".into(),
        work.path().join("shares").display().to_string(),
    ]);
    let out = Command::new(BIN)
        .args(&args)
        .args(["--database-url", &t.database_url, "--data-dir"])
        .arg(&t.data_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    t.post(
        "/v1/credentials/aws-prod-root/versions",
        &w.admin,
        json!({ "fields": { "password": "rotated" } }),
    )
    .await
    .ok();
    let v = t.get("/v1/hygiene", &w.auditor).await.ok();
    assert_eq!(v["high"], 0, "{v}");
    let c = checks(&v);
    assert!(
        c.contains(&("recovery.share_unchecked".into(), "custodian:ann".into())),
        "{c:?}"
    );
    let (code, out) = doctor(&w.auditor);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("0 high"), "{out}");

    // The default policy was never drilled; a drill (a credential with no
    // real secret, broken with the real custodians) settles it, and its
    // release is not an exposure to fix.
    assert!(
        c.contains(&("drill.overdue".into(), "policy:default".into())),
        "{c:?}"
    );
    t.post(
        "/v1/credentials",
        &w.admin,
        json!({ "name": "drill-default", "account_id": "123456789012", "policy": "default",
                "fields": { "password": "not-a-secret" }, "drill": true }),
    )
    .await
    .ok();
    let drill = t
        .post(
            "/v1/requests",
            &w.requester,
            json!({ "credential": "drill-default", "reason": "quarterly drill" }),
        )
        .await
        .ok()["id"]
        .as_str()
        .unwrap()
        .to_string();
    for (who, token) in [("ann", &w.ann), ("bob", &w.bob), ("sec", &w.sec)] {
        t.post(
            format!("/v1/requests/{drill}/approve"),
            token,
            json!({ "code": t.code(who) }),
        )
        .await
        .ok();
    }
    t.next_step();
    t.post(
        format!("/v1/requests/{drill}/release"),
        &w.requester,
        json!({}),
    )
    .await
    .ok();
    let v = t.get("/v1/hygiene", &w.auditor).await.ok();
    let c = checks(&v);
    assert!(
        !c.iter().any(|(check, _)| check == "drill.overdue"),
        "{c:?}"
    );
    assert!(
        !c.contains(&(
            "credential.exposed".into(),
            "credential:drill-default".into()
        )),
        "{c:?}"
    );
    assert_eq!(v["high"], 0, "{v}");

    // Ninety days later: idle custodians and a stale credential.
    t.clock.advance_secs(91 * 86_400);
    let auditor = t.token("audrey", &[Role::Auditor]);
    let v = t.get("/v1/hygiene", &auditor).await.ok();
    let c = checks(&v);
    assert!(
        c.contains(&("custodian.idle".into(), "custodian:cat".into())),
        "{c:?}"
    );
    assert!(
        c.contains(&("credential.stale".into(), "credential:aws-prod-root".into())),
        "{c:?}"
    );
    assert!(
        c.contains(&("drill.overdue".into(), "policy:default".into())),
        "{c:?}"
    );
    assert!(t.audit().await.iter().any(|e| e.action == "hygiene.report"));
}
