//! AWS KMS and Secrets Manager as backends, against the moto AWS server and
//! the AWS CLI: no fake in between.

mod common;

use std::time::Duration;

use base64::Engine;
use breakglass::app::ticker::Ticker;
use breakglass::crypto::envelope::{credential_aad, Envelope};
use breakglass::keys::kms::KmsKeyService;
use breakglass::keys::{EncryptionContext, KeyError, KeyService};
use common::{Backend, Moto, TestApp, World, MFA_SEED, PASSWORD};
use serde_json::json;

both_backends!(
    a_full_break_glass_with_kms_and_secrets_manager,
    keys_rewrap_moves_every_data_key_from_the_local_key_file_to_kms,
);

async fn keys_rewrap_moves_every_data_key_from_the_local_key_file_to_kms(b: Backend) {
    let moto = Moto::shared_or_own().await;
    let w = World::new(b).await;
    let t = &w.t;
    // Approved under the local key file, not yet released.
    let id = w.approved_request().await;
    let arn = moto.create_key().await;

    let rewrap = || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_breakglass"))
            .args([
                "keys",
                "rewrap",
                "--to",
                "aws-kms",
                "--kms-key-id",
                &arn,
                "--aws-endpoint-url",
                &moto.endpoint,
            ])
            .args(["--database-url", &t.database_url, "--data-dir"])
            .arg(&t.data_dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (out, progress) = rewrap();
    assert!(
        out.contains("re-wrapped 1 credential versions, 4 TOTP seeds and 0 service keys"),
        "{out}"
    );
    assert!(
        progress.contains("[1/5]") && progress.contains("[5/5]"),
        "progress is shown: {progress}"
    );
    // Resumable and idempotent: a second run finds nothing to do.
    let (again, _) = rewrap();
    assert!(
        again.contains("re-wrapped 0 credential versions, 0 TOTP seeds and 0 service keys")
            && again.contains("(5 already there)"),
        "{again}"
    );

    // Every envelope now names the KMS key.
    let mut tx = t.app.store.begin_read().await.unwrap();
    for c in tx.credentials().await.unwrap() {
        for v in tx.versions(&c.id).await.unwrap() {
            assert_eq!(v.key_id, arn);
        }
    }
    for c in tx.custodians().await.unwrap() {
        assert_eq!(
            Envelope::from_bytes(&c.totp_envelope.unwrap()).unwrap().kid,
            arn
        );
    }
    tx.rollback().await.unwrap();
    let rewraps = t
        .audit()
        .await
        .into_iter()
        .filter(|e| e.action == "keys.rewrap")
        .count();
    assert_eq!(rewraps, 5, "every re-wrap is audited");

    // Retire the local key file: a server on KMS alone still releases, and
    // custodians' codes (seeds now under KMS) still verify.
    std::fs::rename(
        t.data_dir.join("local.key"),
        t.data_dir.join("local.key.retired"),
    )
    .unwrap();
    let mut setup = moto.setup(Duration::from_secs(10)).await;
    setup.kms_key_id = arn.clone();
    setup.secrets_manager = false;
    let t2 = t.successor(Some(setup)).await;
    let r = t2
        .post(
            format!("/v1/requests/{id}/release"),
            &w.requester,
            json!({}),
        )
        .await
        .ok();
    assert_eq!(r["fields"]["password"], PASSWORD);
    let id2 = t2
        .post(
            "/v1/requests",
            &w.requester,
            json!({ "credential": "aws-prod-root", "reason": "after the move" }),
        )
        .await
        .ok()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let code = t2.code("ann");
    t2.post(
        format!("/v1/requests/{id2}/approve"),
        &w.ann,
        json!({ "code": code }),
    )
    .await
    .ok();
    assert!(t2.verify().await);
}

async fn a_full_break_glass_with_kms_and_secrets_manager(b: Backend) {
    let moto = Moto::shared_or_own().await;
    let aws = moto.setup(Duration::from_secs(10)).await;
    let w = World::with(TestApp::start_with(b, Some(aws.clone())).await).await;
    let t = &w.t;

    // The deposit went to Secrets Manager, wrapped by the test's KMS key.
    let c = t.get("/v1/credentials/aws-prod-root", &w.admin).await.ok();
    assert_eq!(c["versions"][0]["secret_store"], "aws-secretsmanager");
    assert_eq!(c["versions"][0]["key_id"], aws.kms_key_id.as_str());

    // Break glass.
    let id = w.approved_request().await;
    let r = t
        .post(
            format!("/v1/requests/{id}/release"),
            &w.requester,
            json!({}),
        )
        .await
        .ok();
    assert_eq!(r["fields"]["password"], PASSWORD);
    assert_eq!(r["fields"]["mfa_seed"], MFA_SEED);

    // Rotation adds a secret version; the next release reads the new one.
    t.post(
        "/v1/credentials/aws-prod-root/versions",
        &w.admin,
        json!({ "fields": { "password": "rotated" } }),
    )
    .await
    .ok();
    let id = w.approved_request().await;
    let r = t
        .post(
            format!("/v1/requests/{id}/release"),
            &w.requester,
            json!({}),
        )
        .await
        .ok();
    assert_eq!(
        (r["version"].as_i64(), r["fields"]["password"].as_str()),
        (Some(2), Some("rotated"))
    );

    // What AWS holds, read with the AWS CLI: one tagged secret, two
    // versions (current and previous), each an envelope and nothing else.
    let name = format!("{}aws-prod-root", aws.secret_prefix);
    let described = moto.aws_cli(&["secretsmanager", "describe-secret", "--secret-id", &name]);
    let tags = described["Tags"].to_string();
    assert!(
        tags.contains("managed-by")
            && tags.contains("breakglass:account-id")
            && tags.contains("123456789012"),
        "{tags}"
    );
    let versions = moto.aws_cli(&[
        "secretsmanager",
        "list-secret-version-ids",
        "--secret-id",
        &name,
    ]);
    let stages: Vec<String> = versions["Versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["VersionStages"].to_string())
        .collect();
    assert_eq!(stages.len(), 2, "{versions}");
    assert!(
        stages.iter().any(|s| s.contains("AWSCURRENT"))
            && stages.iter().any(|s| s.contains("AWSPREVIOUS"))
    );
    let got = moto.aws_cli(&[
        "secretsmanager",
        "get-secret-value",
        "--secret-id",
        &name,
        "--version-stage",
        "AWSCURRENT",
    ]);
    let raw = base64::engine::general_purpose::STANDARD
        .decode(got["SecretBinary"].as_str().unwrap())
        .unwrap();
    let env = Envelope::from_bytes(&raw).expect("the secret holds an envelope");
    assert!(env.kid.starts_with("arn:aws:kms:"), "{}", env.kid);
    let text = String::from_utf8_lossy(&raw);
    for secret in [PASSWORD, MFA_SEED, "rotated"] {
        assert!(
            !text.contains(secret),
            "a deposited value is readable in Secrets Manager"
        );
    }
    assert!(
        !got.to_string().contains("SecretString\":\""),
        "nothing in SecretString"
    );

    // TOTP seeds went through KMS too (their envelopes name the KMS key).
    let mut tx = t.app.store.begin_read().await.unwrap();
    let ann = tx.custodian("ann").await.unwrap().unwrap();
    tx.rollback().await.unwrap();
    let seed_env = Envelope::from_bytes(&ann.totp_envelope.unwrap()).unwrap();
    assert!(seed_env.kid.starts_with("arn:aws:kms:"));

    // The review asks KMS whether the key rotates: a new key does not.
    let v = t.get("/v1/hygiene", &w.auditor).await.ok();
    assert!(
        v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["check"] == "kms.rotation_disabled"),
        "{v}"
    );
    aws_sdk_kms::Client::new(&moto.sdk().await)
        .enable_key_rotation()
        .key_id(&aws.kms_key_id)
        .send()
        .await
        .unwrap();
    let v = t.get("/v1/hygiene", &w.auditor).await.ok();
    assert!(!v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["check"] == "kms.rotation_disabled"));
    assert!(t.verify().await);
}

#[tokio::test]
async fn kms_refuses_a_data_key_under_another_credentials_context() {
    let moto = Moto::shared_or_own().await;
    let key = moto.create_key().await;
    let kms = KmsKeyService::new(&moto.sdk().await, &key);
    let mine = EncryptionContext::credential("cred-a", 1);
    let theirs = EncryptionContext::credential("cred-b", 1);
    let dk = kms.generate_data_key(&mine).await.unwrap();
    assert!(kms
        .decrypt_data_key(&dk.key_id, &dk.wrapped, &mine)
        .await
        .is_ok());
    assert!(matches!(
        kms.decrypt_data_key(&dk.key_id, &dk.wrapped, &theirs).await,
        Err(KeyError::InvalidCiphertext)
    ));
    let next_version = EncryptionContext::credential("cred-a", 2);
    assert!(matches!(
        kms.decrypt_data_key(&dk.key_id, &dk.wrapped, &next_version)
            .await,
        Err(KeyError::InvalidCiphertext)
    ));
    // A whole envelope, moved to another credential, does not open.
    let env = Envelope::seal(
        &kms,
        &mine,
        &credential_aad("cred-a", 1),
        b"{\"fields\":{\"password\":\"p\"}}",
    )
    .await
    .unwrap();
    assert!(env
        .open(&kms, &theirs, &credential_aad("cred-b", 1))
        .await
        .is_err());
    assert_eq!(
        &env.open(&kms, &mine, &credential_aad("cred-a", 1))
            .await
            .unwrap()[..],
        b"{\"fields\":{\"password\":\"p\"}}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aws_outage_answers_503_audits_the_refusal_changes_nothing_and_recovers() {
    // A moto server of this test's own: pausing it disturbs no other test.
    let moto = Moto::own().await;
    let aws = moto.setup(Duration::from_secs(2)).await;
    let w = World::with(TestApp::start_with(Backend::Sqlite, Some(aws)).await).await;
    let t = &w.t;
    let id = w.approved_request().await;

    moto.signal("-STOP");
    let deposit = || {
        t.post(
            "/v1/credentials",
            &w.admin,
            json!({ "name": "aws-dev-root", "account_id": "210987654321", "policy": "default", "fields": { "password": "x" } }),
        )
    };
    t.assert_refused_and_unchanged(Some(&id), 503, "key_service_unavailable", deposit)
        .await;
    let release = || {
        t.post(
            format!("/v1/requests/{id}/release"),
            &w.requester,
            json!({}),
        )
    };
    let before = t.state(Some(&id)).await;
    let r = release().await;
    assert_eq!(r.status, 503, "{:?}", r);
    assert!(
        ["secret_store_unavailable", "key_service_unavailable"].contains(&r.code()),
        "{:?}",
        r
    );
    assert_eq!(
        t.state(Some(&id)).await,
        before,
        "nothing changed: still releasable"
    );
    let last = t.audit().await.pop().unwrap();
    assert_eq!(
        (last.action.as_str(), last.outcome.as_str()),
        ("request.release", "refused")
    );
    assert_eq!(t.call("GET", "/readyz", None, None).await.status, 503);

    // AWS comes back: the service recovers by itself.
    moto.signal("-CONT");
    let r = release().await.ok();
    assert_eq!(r["fields"]["password"], PASSWORD);
    deposit().await.ok();
    assert_eq!(t.call("GET", "/readyz", None, None).await.status, 200);
    assert!(t.verify().await);
}

#[tokio::test]
async fn a_removed_secret_is_scheduled_for_deletion_with_its_recovery_window() {
    use breakglass::secrets::aws::SecretsManagerStore;
    use breakglass::secrets::{SecretLocation, SecretStore, SecretStoreError};
    let moto = Moto::shared_or_own().await;
    let prefix = format!("bgtest/{}/", uuid::Uuid::new_v4().simple());
    let sm = SecretsManagerStore::new(&moto.sdk().await, &prefix, 7);
    let loc = SecretLocation {
        credential_id: "c-1".into(),
        credential_name: "old-root".into(),
        account_id: "123456789012".into(),
        policy: "default".into(),
        version: 1,
    };
    let at = sm.put(&loc, b"{\"envelope\":1}").await.unwrap();
    assert_eq!(sm.get(&loc, &at).await.unwrap(), b"{\"envelope\":1}");
    sm.remove(&loc).await.unwrap();
    let described = moto.aws_cli(&[
        "secretsmanager",
        "describe-secret",
        "--secret-id",
        &sm.secret_name(&loc),
    ]);
    assert!(
        described["DeletedDate"].is_string() || described["DeletedDate"].is_number(),
        "{described}"
    );
    // While scheduled for deletion it cannot be read: refused, not "missing".
    assert!(matches!(
        sm.get(&loc, &at).await,
        Err(SecretStoreError::Refused(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_review_reads_root_mfa_and_the_deposited_keys_use_from_iam() {
    let moto = Moto::shared_or_own().await;
    let w = reviewing_world(&moto, None).await;
    let t = &w.t;
    // Root's access keys (moto: a user's keys stand in for root's).
    let iam = aws_sdk_iam::Client::new(&moto.sdk().await);
    let (_user, key, _) = root_user_with_key(&iam).await;
    t.post(
        "/v1/credentials/aws-prod-root/versions",
        &w.admin,
        json!({ "fields": { "access_key_id": key, "secret_access_key": "s3cr3t" }, "access_key_id": key }),
    )
    .await
    .ok();
    t.post(
        "/v1/credentials",
        &w.admin,
        json!({ "name": "gone-key", "account_id": "123456789012", "policy": "default",
                "fields": { "secret_access_key": "x" }, "access_key_id": "AKIAZZZZZZZZZZZZZZZZ" }),
    )
    .await
    .ok();
    t.post(
        "/v1/credentials",
        &w.admin,
        json!({ "name": "other-account", "account_id": "210987654321", "policy": "default", "fields": { "password": "x" } }),
    )
    .await
    .ok();
    t.post(
        "/v1/credentials",
        &w.admin,
        json!({ "name": "bad-key", "account_id": "123456789012", "policy": "default",
                "fields": { "password": "x" }, "access_key_id": "not-a-key" }),
    )
    .await
    .refused(422, "invalid_access_key_id");
    let v = t.get("/v1/hygiene", &w.auditor).await.ok();
    let found: Vec<(String, String)> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["check"].as_str().unwrap().to_string(),
                f["subject"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    // MFA off on the account, an unknown deposited key, another account
    // not reviewed; the deposited key, never used, raises nothing.
    assert!(
        found.contains(&("aws.root_mfa_off".into(), "account:123456789012".into())),
        "{found:?}"
    );
    assert!(
        found.contains(&("aws.key_unknown".into(), "credential:gone-key".into())),
        "{found:?}"
    );
    assert!(
        found.contains(&("aws.not_reviewed".into(), "credential:other-account".into())),
        "{found:?}"
    );
    assert!(
        !found
            .iter()
            .any(|(c, s)| c == "aws.key_used_outside" && s == "credential:aws-prod-root"),
        "{found:?}"
    );
    let c = t.get("/v1/credentials/aws-prod-root", &w.admin).await.ok();
    assert_eq!(c["access_key_id"], key.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_access_keys_rotate_step_by_step_and_never_leave_no_working_key() {
    let moto = Moto::shared_or_own().await;
    let w = reviewing_world(&moto, None).await;
    let t = &w.t;
    let iam = aws_sdk_iam::Client::new(&moto.sdk().await);
    let (user, k1, s1) = root_user_with_key(&iam).await;
    t.post(
        "/v1/credentials/aws-prod-root/versions",
        &w.admin,
        json!({ "fields": { "access_key_id": k1, "secret_access_key": s1, "password": PASSWORD }, "access_key_id": k1 }),
    )
    .await
    .ok();
    let keys = || async {
        let mut v: Vec<String> = iam
            .list_access_keys()
            .user_name(&user)
            .send()
            .await
            .unwrap()
            .access_key_metadata()
            .iter()
            .map(|m| m.access_key_id().unwrap().to_string())
            .collect();
        v.sort();
        v
    };
    // The deposited key, as a release hands it out.
    let released = || async {
        let id = w.approved_request().await;
        let r = t
            .post(
                format!("/v1/requests/{id}/release"),
                &w.requester,
                json!({}),
            )
            .await
            .ok();
        (
            r["fields"]["access_key_id"].as_str().unwrap().to_string(),
            r["fields"]["secret_access_key"]
                .as_str()
                .unwrap()
                .to_string(),
        )
    };
    let step = || async {
        t.post(
            "/v1/credentials/aws-prod-root/rotate-keys",
            &w.admin,
            json!({ "max_steps": 1 }),
        )
        .await
        .ok()
    };

    // Step 1: a new key, deposited; the old one still exists.
    let v = step().await;
    assert_eq!(v["state"], "deposited", "{v}");
    let k2 = v["new_key_id"].as_str().unwrap().to_string();
    assert_ne!(k2, k1);
    let mut both = vec![k1.clone(), k2.clone()];
    both.sort();
    assert_eq!(keys().await, both);
    let (id2, s2) = released().await;
    assert_eq!(id2, k2);
    assert_ne!(s2, s1);
    // Step 2: the new key proves itself; nothing deleted yet.
    assert_eq!(step().await["state"], "verified");
    assert_eq!(keys().await, both);
    // Step 3: the old key goes; the deposited one is the one left.
    assert_eq!(step().await["state"], "done");
    assert_eq!(keys().await, vec![k2.clone()]);
    let (id3, _) = released().await;
    assert_eq!(id3, k2);
    let c = t.get("/v1/credentials/aws-prod-root", &w.admin).await.ok();
    assert_eq!(c["access_key_id"], k2.as_str());
    // Every step audited, no secret in the log.
    let events = t.audit().await;
    for a in [
        "rotation.start",
        "rotation.deposited",
        "rotation.verified",
        "rotation.old_key_deleted",
    ] {
        assert!(events.iter().any(|e| e.action == a), "{a}");
    }
    let all = serde_json::to_string(&events).unwrap();
    assert!(!all.contains(&s1) && !all.contains(&s2));
    // A credential without access keys cannot be rotated this way.
    t.post(
        "/v1/credentials/aws-prod-root/rotate-keys",
        &w.requester,
        json!({}),
    )
    .await
    .refused(403, "forbidden_role");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_release_the_keys_rotate_by_themselves_and_other_fields_are_reminded() {
    let moto = Moto::shared_or_own().await;
    let w = reviewing_world(&moto, Some(Duration::from_secs(3600))).await;
    let t = &w.t;
    let iam = aws_sdk_iam::Client::new(&moto.sdk().await);
    let (user, k1, s1) = root_user_with_key(&iam).await;
    t.post(
        "/v1/credentials/aws-prod-root/versions",
        &w.admin,
        json!({ "fields": { "access_key_id": k1, "secret_access_key": s1, "password": PASSWORD }, "access_key_id": k1 }),
    )
    .await
    .ok();
    let id = w.approved_request().await;
    t.post(
        format!("/v1/requests/{id}/release"),
        &w.requester,
        json!({}),
    )
    .await
    .ok();
    // An hour later the service rotates the released keys by itself.
    t.clock.advance_secs(3601);
    let mut rotated = false;
    let mut ticker = Ticker::default();
    for _ in 0..10 {
        t.app.tick(&mut ticker).await;
        let events = t.audit().await;
        if events
            .iter()
            .any(|e| e.action == "rotation.old_key_deleted")
        {
            rotated = true;
            break;
        }
    }
    assert!(rotated, "no automatic rotation");
    let keys = iam
        .list_access_keys()
        .user_name(&user)
        .send()
        .await
        .unwrap();
    let left: Vec<&str> = keys
        .access_key_metadata()
        .iter()
        .map(|m| m.access_key_id().unwrap())
        .collect();
    assert_eq!(left.len(), 1);
    assert_ne!(left[0], k1);
    let admin = t.token("root-admin", &[breakglass::domain::Role::Admin]);
    let c = t.get("/v1/credentials/aws-prod-root", &admin).await.ok();
    assert_eq!(c["exposed"], false, "the rotation cleared exposed");

    // A credential without keys, released and not rotated, is reminded
    // a day later (and again each day), until a new version is deposited.
    let t2 = &w.t;
    t2.post(
        "/v1/credentials",
        &admin,
        json!({ "name": "console-only", "account_id": "123456789012", "policy": "one-sre", "fields": { "password": "p" } }),
    )
    .await
    .ok();
    let requester = t2.token("oncall", &[breakglass::domain::Role::Requester]);
    let id = t2
        .post(
            "/v1/requests",
            &requester,
            json!({ "credential": "console-only", "reason": "console" }),
        )
        .await
        .ok()["id"]
        .as_str()
        .unwrap()
        .to_string();
    t2.next_step();
    let ann = t2.token("ann", &[breakglass::domain::Role::Custodian]);
    t2.post(
        format!("/v1/requests/{id}/approve"),
        &ann,
        json!({ "code": t2.code("ann") }),
    )
    .await
    .ok();
    t2.post(format!("/v1/requests/{id}/release"), &requester, json!({}))
        .await
        .ok();
    let reminders = || async {
        t2.audit()
            .await
            .into_iter()
            .filter(|e| {
                e.action == "credential.rotation_reminder" && e.target == "credential:console-only"
            })
            .count()
    };
    let mut ticker = Ticker::default();
    for _ in 0..3 {
        t2.app.tick(&mut ticker).await;
    }
    assert_eq!(reminders().await, 0, "not before a day has passed");
    t2.clock.advance_secs(86_401);
    t2.app.tick(&mut ticker).await;
    assert_eq!(reminders().await, 1, "a day later");
    for _ in 0..3 {
        t2.app.tick(&mut ticker).await;
    }
    assert_eq!(reminders().await, 1, "once a day");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_older_than_their_policys_maximum_age_rotate_on_schedule() {
    let moto = Moto::shared_or_own().await;
    let w = reviewing_world(&moto, None).await;
    let t = &w.t;
    let iam = aws_sdk_iam::Client::new(&moto.sdk().await);
    let (user, k1, s1) = root_user_with_key(&iam).await;
    for (name, fields, key) in [
        (
            "monthly-keys",
            json!({ "access_key_id": k1, "secret_access_key": s1 }),
            Some(k1.clone()),
        ),
        ("monthly-password", json!({ "password": "p" }), None),
    ] {
        t.post(
            "/v1/credentials",
            &w.admin,
            json!({ "name": name, "account_id": "123456789012", "policy": "rotated-monthly", "fields": fields, "access_key_id": key }),
        )
        .await
        .ok();
    }
    // Thirty-one days on: the keys rotate by themselves; the password is
    // reported as older than its policy allows.
    t.clock.advance_secs(31 * 86_400);
    let mut done = false;
    let mut ticker = Ticker::default();
    for _ in 0..10 {
        t.app.tick(&mut ticker).await;
        if t.audit()
            .await
            .iter()
            .any(|e| e.action == "rotation.old_key_deleted")
        {
            done = true;
            break;
        }
    }
    assert!(done, "no scheduled rotation");
    let keys = iam
        .list_access_keys()
        .user_name(&user)
        .send()
        .await
        .unwrap();
    assert!(keys
        .access_key_metadata()
        .iter()
        .all(|m| m.access_key_id() != Some(k1.as_str())));
    let auditor = t.token("audrey", &[breakglass::domain::Role::Auditor]);
    let v = t.get("/v1/hygiene", &auditor).await.ok();
    let found: Vec<(String, String)> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["check"].as_str().unwrap().to_string(),
                f["subject"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        found.contains(&(
            "credential.too_old".into(),
            "credential:monthly-password".into()
        )),
        "{found:?}"
    );
    assert!(
        !found.contains(&(
            "credential.too_old".into(),
            "credential:monthly-keys".into()
        )),
        "{found:?}"
    );
}

/// A server that reviews AWS (and may rotate keys) against moto.
async fn reviewing_world(moto: &Moto, rotate_after_release: Option<Duration>) -> World {
    let endpoint = moto.endpoint.clone();
    let t = TestApp::start_configured(Backend::Sqlite, &move |c| {
        c.settings.review_aws = true;
        c.settings.rotate_keys_after_release = rotate_after_release;
        c.aws.endpoint_url = Some(endpoint.clone());
        c.aws.region = Some("us-east-1".into());
    })
    .await;
    World::with(t).await
}

/// An IAM user with one access key (moto: a user's keys stand in for
/// root's): (user, key id, secret).
async fn root_user_with_key(iam: &aws_sdk_iam::Client) -> (String, String, String) {
    let user = format!("root-{}", uuid::Uuid::new_v4().simple());
    iam.create_user().user_name(&user).send().await.unwrap();
    let k = iam
        .create_access_key()
        .user_name(&user)
        .send()
        .await
        .unwrap();
    let k = k.access_key().unwrap();
    (
        user,
        k.access_key_id().to_string(),
        k.secret_access_key().to_string(),
    )
}
