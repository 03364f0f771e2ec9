//! The recovery key ceremony: shares encrypted to each custodian's age key
//! (opened by the real `age` tool), authenticated, checkable without
//! revealing them, and combining exactly to the recorded recovery key.

mod common;

use std::path::Path;
use std::process::Command;

use base64::Engine;
use breakglass::crypto::shamir::{self, CombineError, SetInfo, ShareData};
use common::{cli, Backend, World};

both_backends!(
    the_ceremony_writes_shares_only_their_custodians_can_open_check_and_combine,
    rekey_from_two_of_three_to_three_of_five_retires_the_old_shares,
    an_online_session_holds_shares_in_one_process_checks_every_code_and_releases_once,
);

/// Run the CLI on the host against the test's database; (exit, stdout, stderr).
fn host(
    t: &common::TestApp,
    args: &[&str],
    extra: &[std::ffi::OsString],
) -> (Option<i32>, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .args(extra)
        .args(["--database-url", &t.database_url, "--data-dir"])
        .arg(&t.data_dir)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn rekey_from_two_of_three_to_three_of_five_retires_the_old_shares(b: Backend) {
    let w = World::new(b).await;
    let t = &w.t;
    t.enrolled_custodian(&w.admin, "dana", &["sre"], &[]).await;
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let mut keys = std::collections::BTreeMap::new();
    for name in ["ann", "bob", "cat", "sec", "dana"] {
        keys.insert(name, age_keygen(&dir.join(format!("{name}.key"))));
    }
    let custodian_args = |names: &[&str]| -> Vec<std::ffi::OsString> {
        names
            .iter()
            .flat_map(|n| ["--custodian".into(), format!("{n}={}", keys[n]).into()])
            .collect()
    };
    let old_out = dir.join("old");
    let mut args = custodian_args(&["ann", "bob", "sec"]);
    args.extend(["--out".into(), old_out.clone().into()]);
    let (code, _, err) = host(t, &["init", "--threshold", "2"], &args);
    assert_eq!(code, Some(0), "{err}");
    t.post(
        "/v1/credentials/aws-prod-root/versions",
        &w.admin,
        serde_json::json!({ "fields": { "password": "v2" } }),
    )
    .await
    .ok();

    let decrypt_to = |set: &Path, name: &str| {
        let share = age_decrypt(
            &dir.join(format!("{name}.key")),
            &set.join(format!("{name}.share.age")),
        );
        let path = dir.join(format!(
            "{}-{name}.json",
            set.file_name().unwrap().to_string_lossy()
        ));
        std::fs::write(&path, serde_json::to_vec(&share).unwrap()).unwrap();
        path.into_os_string()
    };
    let old_ann = decrypt_to(&old_out, "ann");
    let old_bob = decrypt_to(&old_out, "bob");
    let old_sec = decrypt_to(&old_out, "sec");

    // Rekey needs the current quorum: one old share is not enough.
    let new_out = dir.join("new");
    let mut args = custodian_args(&["ann", "bob", "cat", "sec", "dana"]);
    args.extend([
        "--out".into(),
        new_out.clone().into(),
        "--share".into(),
        old_ann.clone(),
    ]);
    let (code, _, err) = host(t, &["rekey", "--threshold", "3"], &args);
    assert_eq!(code, Some(1));
    assert!(err.contains("1 more needed"), "{err}");
    std::fs::remove_dir_all(&new_out).ok();
    args.extend(["--share".into(), old_bob.clone()]);
    let (code, out, err) = host(t, &["rekey", "--threshold", "3"], &args);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("any 3 of 5 custodians"), "{out}");

    // The old shares are refused now, by recovery and by share check.
    let recover = |shares: &[&std::ffi::OsString]| {
        let mut a: Vec<std::ffi::OsString> = Vec::new();
        for s in shares {
            a.extend(["--share".into(), (*s).clone()]);
        }
        host(t, &["recover", "--credential", "aws-prod-root"], &a)
    };
    let (code, _, err) = recover(&[&old_ann, &old_sec]);
    assert_eq!(code, Some(1));
    assert!(err.contains("belongs to another share set"), "{err}");
    let old_file = old_out.join("ann.share.age");
    let ann_key = dir.join("ann.key");
    let check = Command::new(BIN)
        .args([
            "share",
            "check",
            old_file.to_str().unwrap(),
            "--identity",
            ann_key.to_str().unwrap(),
        ])
        .env("BREAKGLASS_SERVER", &t.base)
        .env("BREAKGLASS_TOKEN", &w.ann)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&check.stderr).contains("share_set_retired"));

    // Three new shares recover (with the key file gone); two do not.
    std::fs::rename(
        t.data_dir.join("local.key"),
        t.data_dir.join("local.key.gone"),
    )
    .unwrap();
    let new_cat = decrypt_to(&new_out, "cat");
    let new_dana = decrypt_to(&new_out, "dana");
    let new_sec = decrypt_to(&new_out, "sec");
    let (code, _, err) = recover(&[&new_cat, &new_dana]);
    assert_eq!(code, Some(1));
    assert!(err.contains("1 more needed"), "{err}");
    let (code, out, err) = recover(&[&new_cat, &new_dana, &new_sec]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("password: v2"), "{out}");
    let events = t.audit().await;
    assert!(events
        .iter()
        .any(|e| e.action == "recovery.rekey" && e.outcome == "success"));
    assert!(t.verify().await);
}

const BIN: &str = env!("CARGO_BIN_EXE_breakglass");

/// `age-keygen -o FILE`; returns the recipient.
fn age_keygen(path: &Path) -> String {
    let out = Command::new("age-keygen")
        .arg("-o")
        .arg(path)
        .output()
        .expect("age-keygen must be installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("# public key: ").map(str::to_owned))
        .unwrap()
}

fn age_decrypt(identity: &Path, file: &Path) -> ShareData {
    let out = Command::new("age")
        .arg("-d")
        .arg("-i")
        .arg(identity)
        .arg(file)
        .output()
        .expect("age must be installed");
    assert!(
        out.status.success(),
        "age -d: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

async fn the_ceremony_writes_shares_only_their_custodians_can_open_check_and_combine(b: Backend) {
    let w = World::new(b).await;
    let t = &w.t;
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let mut recipients = Vec::new();
    for name in ["ann", "bob", "sec"] {
        recipients.push((name, age_keygen(&dir.join(format!("{name}.key")))));
    }

    // The ceremony, on the host.
    let init = |out: &str| {
        let mut c = Command::new(BIN);
        c.args(["init", "--threshold", "2", "--out"])
            .arg(dir.join(out));
        for (n, r) in &recipients {
            c.args(["--custodian", &format!("{n}={r}")]);
        }
        c.args(["--database-url", &t.database_url, "--data-dir"])
            .arg(&t.data_dir)
            .output()
            .unwrap()
    };
    let out = init("shares");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("any 2 of 3 custodians"));

    // The real age tool opens each share with its custodian's identity.
    let shares_dir = dir.join("shares");
    let ann = age_decrypt(&dir.join("ann.key"), &shares_dir.join("ann.share.age"));
    let sec = age_decrypt(&dir.join("sec.key"), &shares_dir.join("sec.share.age"));
    assert_eq!(
        (
            ann.threshold,
            ann.custodian.as_str(),
            ann.set_id == sec.set_id
        ),
        (2, "ann", true)
    );
    // ...and not with another's.
    let wrong = Command::new("age")
        .arg("-d")
        .arg("-i")
        .arg(dir.join("bob.key"))
        .arg(shares_dir.join("ann.share.age"))
        .output()
        .unwrap();
    assert!(!wrong.status.success());

    // Any two shares rebuild exactly the recorded recovery key.
    let mut tx = t.app.store.begin_read().await.unwrap();
    let set = tx.active_recovery_set().await.unwrap().unwrap();
    let rows = tx.recovery_shares(&set.set_id).await.unwrap();
    tx.rollback().await.unwrap();
    let info = SetInfo {
        set_id: set.set_id.clone(),
        threshold: set.threshold as u8,
        commitments: rows
            .iter()
            .map(|r| (r.idx as u8, r.commitment.clone()))
            .collect(),
        key_check: set.key_check.clone(),
    };
    let key = shamir::combine(&info, &[sec.clone(), ann.clone()]).unwrap();
    let identity: age::x25519::Identity = std::str::from_utf8(&key).unwrap().parse().unwrap();
    assert_eq!(identity.to_public().to_string(), set.recipient);
    assert_eq!(
        shamir::combine(&info, std::slice::from_ref(&ann)).unwrap_err(),
        CombineError::NotEnough {
            have: 1,
            need: 1,
            threshold: 2
        }
    );

    // Each custodian checks their own share; only a commitment travels.
    let ann_file = shares_dir.join("ann.share.age");
    let ann_key = dir.join("ann.key");
    let args = [
        "share",
        "check",
        ann_file.to_str().unwrap(),
        "--identity",
        ann_key.to_str().unwrap(),
    ];
    let (code, stdout, stderr) = cli(&args, &t.base, &w.ann);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("is valid"), "{stdout}");
    let (code, _, stderr) = cli(&args, &t.base, &w.bob);
    assert_eq!(code, 1);
    assert!(stderr.contains("not_your_share"), "{stderr}");

    // A corrupted share is named.
    let mut bad = ann.clone();
    let mut raw = base64::engine::general_purpose::STANDARD
        .decode(&bad.share)
        .unwrap();
    raw[3] ^= 0x40;
    bad.share = base64::engine::general_purpose::STANDARD.encode(raw);
    let plain = dir.join("bad.json");
    std::fs::write(&plain, serde_json::to_vec(&bad).unwrap()).unwrap();
    let bad_file = dir.join("bad.share.age");
    let ann_recipient = &recipients[0].1;
    assert!(Command::new("age")
        .args(["-r", ann_recipient, "-o"])
        .arg(&bad_file)
        .arg(&plain)
        .status()
        .unwrap()
        .success());
    let bad_args = [
        "share",
        "check",
        bad_file.to_str().unwrap(),
        "--identity",
        ann_key.to_str().unwrap(),
    ];
    let (code, _, stderr) = cli(&bad_args, &t.base, &w.ann);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("share_invalid") && stderr.contains(&format!("share {}", bad.index)),
        "{stderr}"
    );
    assert_eq!(
        shamir::combine(&info, &[bad, sec]).unwrap_err(),
        CombineError::Corrupted { index: ann.index }
    );

    // One active set: a second ceremony is refused (rekey is the way).
    let again = init("shares-2");
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already active"));

    // Offline recovery on the host, with the key service gone.
    let write_share = |name: &str, share: &ShareData| {
        let path = dir.join(format!("{name}.json"));
        std::fs::write(&path, serde_json::to_vec(share).unwrap()).unwrap();
        path
    };
    let ann_json = write_share("ann", &ann);
    let sec_json = write_share(
        "sec",
        &age_decrypt(&dir.join("sec.key"), &shares_dir.join("sec.share.age")),
    );
    let recover = |shares: &[&Path]| {
        let mut c = Command::new(BIN);
        c.args(["recover", "--credential", "aws-prod-root"]);
        for s in shares {
            c.arg("--share").arg(s);
        }
        let out = c
            .args(["--database-url", &t.database_url, "--data-dir"])
            .arg(&t.data_dir)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // Version 1 was deposited before the ceremony: not recoverable, and said so.
    let (code, _, err) = recover(&[&ann_json, &sec_json]);
    assert_eq!(code, Some(1));
    assert!(err.contains("before the recovery set"), "{err}");
    // A rotation after the ceremony is wrapped to the recovery key too.
    t.post(
        "/v1/credentials/aws-prod-root/versions",
        &w.admin,
        serde_json::json!({ "fields": { "password": "after-ceremony" } }),
    )
    .await
    .ok();
    std::fs::rename(
        t.data_dir.join("local.key"),
        t.data_dir.join("local.key.gone"),
    )
    .unwrap();
    let (code, out, err) = recover(&[&ann_json, &sec_json]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("password: after-ceremony") && out.contains("version 2"),
        "{out}"
    );
    // k-1 shares: refused with how many more are needed.
    let (code, _, err) = recover(&[&ann_json]);
    assert_eq!(code, Some(1));
    assert!(err.contains("1 more needed"), "{err}");
    // A share of another set, and a corrupted share, are each named.
    let mut foreign = ann.clone();
    foreign.set_id = uuid::Uuid::new_v4().to_string();
    let foreign_json = write_share("foreign", &foreign);
    let (_, _, err) = recover(&[&foreign_json, &sec_json]);
    assert!(
        err.contains(&format!("share {} belongs to another share set", ann.index)),
        "{err}"
    );
    let bad_json = dir.join("bad.json");
    let (_, _, err) = recover(&[&bad_json, &sec_json]);
    assert!(
        err.contains(&format!("share {} is corrupted", ann.index)),
        "{err}"
    );
    let c = t.get("/v1/credentials/aws-prod-root", &w.admin).await.ok();
    assert_eq!(c["exposed"], true, "a recovery exposes the credential");

    // A signed backup; recovery from it in a process with no server, no
    // database and no data directory.
    let backup = dir.join("backup.json");
    let out = Command::new(BIN)
        .args(["backup", "export", "--out"])
        .arg(&backup)
        .args(["--database-url", &t.database_url, "--data-dir"])
        .arg(&t.data_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 recoverable credentials"));
    let elsewhere = tempfile::tempdir().unwrap();
    let from_backup = |file: &Path| {
        Command::new(BIN)
            .current_dir(elsewhere.path())
            .env_clear()
            .args(["recover", "--credential", "aws-prod-root", "--backup"])
            .arg(file)
            .arg("--share")
            .arg(&ann_json)
            .arg("--share")
            .arg(&sec_json)
            .output()
            .unwrap()
    };
    let out = from_backup(&backup);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("password: after-ceremony"));
    assert!(
        std::fs::read_dir(elsewhere.path())
            .unwrap()
            .next()
            .is_none(),
        "nothing was written"
    );
    // An altered backup is refused.
    let text = std::fs::read_to_string(&backup)
        .unwrap()
        .replace("123456789012", "999999999999");
    let altered = dir.join("altered.json");
    std::fs::write(&altered, text).unwrap();
    let out = from_backup(&altered);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("signature does not verify"));

    // Audited, never with share or key material.
    let events = t.audit().await;
    assert!(events
        .iter()
        .any(|e| e.action == "recovery.init" && e.outcome == "success"));
    assert!(events
        .iter()
        .any(|e| e.action == "recovery.share_check" && e.outcome == "success"));
    assert!(events
        .iter()
        .any(|e| e.code.as_deref() == Some("share_invalid")));
    let all = serde_json::to_string(&events).unwrap();
    assert!(!all.contains(&ann.share) && !all.contains(std::str::from_utf8(&key).unwrap()));
    assert!(t.verify().await);
    // Every attempt is audited: each refusal above, a file that is no
    // share, and a recovery wrap changed in the database.
    let refusals = |events: &[breakglass::crypto::chain::AuditEvent]| {
        events
            .iter()
            .filter(|e| e.action == "recovery.recover" && e.outcome == "refused")
            .map(|e| e.code.clone().unwrap_or_default())
            .collect::<Vec<_>>()
    };
    let before = refusals(&t.audit().await);
    assert!(before.len() >= 4, "{before:?}");
    let garbage = dir.join("garbage.json");
    std::fs::write(&garbage, b"{ not a share").unwrap();
    let (code, _, err) = recover(&[&garbage, &sec_json]);
    assert_eq!(code, Some(1));
    assert!(err.contains("is not a decrypted share"), "{err}");
    t.raw_sql("UPDATE credential_versions SET recovery_wrap = recovery_envelope WHERE recovery_wrap IS NOT NULL")
        .await;
    let (code, _, err) = recover(&[&ann_json, &sec_json]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("recovery_wrap_invalid") && err.contains("altered"),
        "{err}"
    );
    let after = refusals(&t.audit().await);
    assert_eq!(
        after[before.len()..],
        [
            "share_unreadable".to_string(),
            "recovery_wrap_invalid".into()
        ]
    );
}

/// A host-side configuration naming the test's KMS key (the ceremony opens
/// each custodian's TOTP seed with it, to wrap the seed to the recovery key).
fn kms_config(dir: &Path, aws: &common::AwsSetup) -> std::ffi::OsString {
    let path = dir.join("breakglass.toml");
    std::fs::write(
        &path,
        format!(
            "[keys]\nservice = \"aws-kms\"\nkms_key_id = \"{}\"\n\n[aws]\nregion = \"us-east-1\"\nendpoint_url = \"{}\"\n",
            aws.kms_key_id, aws.endpoint
        ),
    )
    .unwrap();
    path.into_os_string()
}

fn cli_json(args: &[&str], server: &str, token: &str) -> serde_json::Value {
    let mut a = vec!["--json"];
    a.extend_from_slice(args);
    let (code, out, err) = cli(&a, server, token);
    assert_eq!(code, 0, "breakglass {args:?}: {err}");
    serde_json::from_str(&out).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn k_shares_recover_a_credential_while_kms_and_secrets_manager_are_paused() {
    // A moto server of this test's own, so pausing it disturbs no one.
    let moto = common::Moto::own().await;
    let aws = moto.setup(std::time::Duration::from_secs(2)).await;
    let w =
        World::with(common::TestApp::start_with(Backend::Sqlite, Some(aws.clone())).await).await;
    let t = &w.t;
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let mut args: Vec<std::ffi::OsString> = Vec::new();
    for name in ["ann", "bob", "sec"] {
        let r = age_keygen(&dir.join(format!("{name}.key")));
        args.extend(["--custodian".into(), format!("{name}={r}").into()]);
    }
    args.extend(["--out".into(), dir.join("shares").into()]);
    args.extend(["--config".into(), kms_config(dir, &aws)]);
    let (code, _, err) = host(t, &["init", "--threshold", "2"], &args);
    assert_eq!(code, Some(0), "{err}");
    t.post(
        "/v1/credentials/aws-prod-root/versions",
        &w.admin,
        serde_json::json!({ "fields": { "password": "in-aws" } }),
    )
    .await
    .ok();
    let mut shares: Vec<std::ffi::OsString> = Vec::new();
    for name in ["ann", "sec"] {
        let share = age_decrypt(
            &dir.join(format!("{name}.key")),
            &dir.join("shares").join(format!("{name}.share.age")),
        );
        let path = dir.join(format!("{name}.json"));
        std::fs::write(&path, serde_json::to_vec(&share).unwrap()).unwrap();
        shares.extend(["--share".into(), path.into()]);
    }

    // AWS stops answering: a release is refused with 503, and so is an
    // approval (the TOTP seeds are wrapped by KMS)...
    let id = w.approved_request().await;
    let pending = w.request().await;
    moto.signal("-STOP");
    let r = t
        .post(
            format!("/v1/requests/{id}/release"),
            &w.requester,
            serde_json::json!({}),
        )
        .await;
    assert_eq!(r.status, 503, "{:?}", r);
    assert_eq!(w.approve(&pending, "ann", &w.ann).await.status, 503);

    // ...but k custodians recover the credential without AWS: offline on
    // the host,
    let (code, out, err) = host(t, &["recover", "--credential", "aws-prod-root"], &shares);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("password: in-aws"), "{out}");

    // and online, through the server, for the pending request: each share
    // holder submits with the CLI (decrypted with their age key on their
    // side, sealed to the session's key) and a TOTP code.
    let session = cli_json(&["recovery", "open", &pending], &t.base, &w.requester);
    let sid = session["id"].as_str().unwrap().to_string();
    assert_eq!(session["threshold"], 2);
    let submit = |name: &str, file: &Path, token: &str| {
        let key = dir.join(format!("{name}.key"));
        let code = t.code(name);
        cli(
            &[
                "recovery",
                "submit",
                &sid,
                file.to_str().unwrap(),
                "--identity",
                key.to_str().unwrap(),
                "--code",
                &code,
            ],
            &t.base,
            token,
        )
    };
    let share_file = |name: &str| dir.join("shares").join(format!("{name}.share.age"));

    // Someone else's share, and a corrupted share, are named and refused.
    let (code, _, err) = submit("bob", &share_file("ann"), &w.bob);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("does not open with this identity"), "{err}");
    let mut bob = age_decrypt(&dir.join("bob.key"), &share_file("bob"));
    let mut raw = base64::engine::general_purpose::STANDARD
        .decode(&bob.share)
        .unwrap();
    raw[5] ^= 0x40;
    bob.share = base64::engine::general_purpose::STANDARD.encode(&raw);
    let bob_recipient = std::fs::read_to_string(dir.join("bob.key"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("# public key: ").map(str::to_owned))
        .unwrap();
    let corrupted = dir.join("bob-corrupted.share.age");
    age_encrypt(
        &bob_recipient,
        &serde_json::to_vec(&bob).unwrap(),
        &corrupted,
    );
    let (code, _, err) = submit("bob", &corrupted, &w.bob);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("share_corrupted")
            && err.contains(&format!("share {} is corrupted", bob.index)),
        "{err}"
    );

    // One share: one more needed.
    let (code, out, err) = submit("ann", &share_file("ann"), &w.ann);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("1 more needed"), "{out}");
    let (code, _, err) = cli(&["recovery", "release", &sid], &t.base, &w.requester);
    assert_eq!(code, 1);
    assert!(
        err.contains("shares_not_enough") && err.contains("1 more needed"),
        "{err}"
    );

    // Two shares rebuild the key, but ann and sec are not the policy's
    // quorum (two SREs and one security engineer): still refused.
    let (code, _, err) = submit("sec", &share_file("sec"), &w.sec);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = cli(&["recovery", "release", &sid], &t.base, &w.requester);
    assert_eq!(code, 1);
    assert!(
        err.contains("quorum_not_met") && err.contains("sre"),
        "{err}"
    );

    // Bob's own share completes the quorum: released once, without AWS.
    let (code, _, err) = submit("bob", &share_file("bob"), &w.bob);
    assert_eq!(code, 0, "{err}");
    let released = cli_json(&["recovery", "release", &sid], &t.base, &w.requester);
    assert_eq!(released["fields"]["password"], "in-aws");
    assert_eq!(released["request_id"], pending.as_str());
    let (code, _, err) = cli(&["recovery", "release", &sid], &t.base, &w.requester);
    assert_eq!(code, 1);
    assert!(err.contains("request_released"), "{err}");
    moto.signal("-CONT");

    // The audit log tells the story, without a share or a code.
    let events = t.audit().await;
    for action in [
        "recovery.session_open",
        "recovery.share_submit",
        "recovery.release",
        "request.approved",
    ] {
        assert!(
            events
                .iter()
                .any(|e| e.action == action && e.outcome == "success"),
            "no {action}"
        );
    }
    assert!(events
        .iter()
        .any(|e| e.code.as_deref() == Some("share_corrupted")));
    let all = serde_json::to_string(&events).unwrap();
    let ann = age_decrypt(&dir.join("ann.key"), &share_file("ann"));
    assert!(!all.contains(&ann.share) && !all.contains(&bob.share));
    assert!(!all.contains("in-aws"));
    assert!(t.verify().await);
}

fn age_encrypt(recipient: &str, plain: &[u8], out: &Path) {
    use std::io::Write;
    let mut child = Command::new("age")
        .args(["-r", recipient, "-o"])
        .arg(out)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(plain).unwrap();
    assert!(child.wait().unwrap().success());
}

async fn an_online_session_holds_shares_in_one_process_checks_every_code_and_releases_once(
    b: Backend,
) {
    use breakglass::app::recovery::session::seal_share;
    use serde_json::json;
    let w = World::new(b).await;
    let t = &w.t;
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let mut args: Vec<std::ffi::OsString> = Vec::new();
    for name in ["ann", "bob", "sec"] {
        let r = age_keygen(&dir.join(format!("{name}.key")));
        args.extend(["--custodian".into(), format!("{name}={r}").into()]);
    }
    args.extend(["--out".into(), dir.join("shares").into()]);
    let (code, _, err) = host(t, &["init", "--threshold", "2"], &args);
    assert_eq!(code, Some(0), "{err}");
    t.post(
        "/v1/credentials/aws-prod-root/versions",
        &w.admin,
        json!({ "fields": { "password": "v2-recoverable" } }),
    )
    .await
    .ok();
    let share = |name: &str| {
        age_decrypt(
            &dir.join(format!("{name}.key")),
            &dir.join("shares").join(format!("{name}.share.age")),
        )
    };
    let id = w.approved_request().await;

    // Only the requester opens a session, only for a live request.
    t.post(format!("/v1/requests/{id}/recovery"), &w.ann, json!({}))
        .await
        .refused(403, "forbidden_role");
    let first = t
        .post(
            format!("/v1/requests/{id}/recovery"),
            &w.requester,
            json!({}),
        )
        .await
        .ok();
    let first_id = first["id"].as_str().unwrap().to_string();
    // Opening again supersedes the first session.
    let s = t
        .post(
            format!("/v1/requests/{id}/recovery"),
            &w.requester,
            json!({}),
        )
        .await
        .ok();
    let sid = s["id"].as_str().unwrap().to_string();
    let recipient = s["recipient"].as_str().unwrap().to_string();
    assert_ne!(recipient, first["recipient"].as_str().unwrap());
    assert_eq!(s["held_here"], true);
    let submit = |session: String, token: String, code: String, sealed: String| async move {
        t.post(
            format!("/v1/recovery/sessions/{session}/shares"),
            &token,
            json!({ "code": code, "sealed_share": sealed }),
        )
        .await
    };
    let ann = share("ann");
    let sealed_ann = seal_share(&recipient, &ann).unwrap();
    submit(
        first_id.clone(),
        w.ann.clone(),
        t.code("ann"),
        seal_share(first["recipient"].as_str().unwrap(), &ann).unwrap(),
    )
    .await
    .refused(409, "recovery_session_closed");

    // A custodian without a share, someone else's share, a share sealed to
    // another key, and a malformed code are each refused, changing nothing.
    submit(
        sid.clone(),
        w.cat.clone(),
        t.code("cat"),
        sealed_ann.clone(),
    )
    .await
    .refused(403, "not_a_shareholder");
    submit(
        sid.clone(),
        w.bob.clone(),
        t.code("bob"),
        sealed_ann.clone(),
    )
    .await
    .refused(403, "not_your_share");
    let other = age::x25519::Identity::generate().to_public().to_string();
    submit(
        sid.clone(),
        w.ann.clone(),
        t.code("ann"),
        seal_share(&other, &ann).unwrap(),
    )
    .await
    .refused(422, "share_unreadable");
    submit(
        sid.clone(),
        w.ann.clone(),
        "12ab56".into(),
        sealed_ann.clone(),
    )
    .await
    .refused(422, "invalid_totp_format");
    let v = t
        .get(format!("/v1/recovery/sessions/{sid}"), &w.auditor)
        .await
        .ok();
    assert_eq!(v["submitted"].as_array().unwrap().len(), 0);

    // Another server process on the same database does not hold the
    // session's key: it says so rather than accept a share it cannot use.
    let other_process = t.successor(None).await;
    let v = other_process
        .get(format!("/v1/recovery/sessions/{sid}"), &w.ann)
        .await
        .ok();
    assert_eq!(v["held_here"], false);
    other_process
        .post(
            format!("/v1/recovery/sessions/{sid}/shares"),
            &w.ann,
            json!({ "code": t.code("ann"), "sealed_share": sealed_ann }),
        )
        .await
        .refused(409, "recovery_session_elsewhere");

    // Ann submits with a wrong code (checked only when the key is rebuilt,
    // since the key service may be down), sec with a right one.
    let v = submit(
        sid.clone(),
        w.ann.clone(),
        t.wrong_code("ann"),
        sealed_ann.clone(),
    )
    .await
    .ok();
    assert_eq!(v["needed"], 1);
    submit(
        sid.clone(),
        w.ann.clone(),
        t.code("ann"),
        sealed_ann.clone(),
    )
    .await
    .refused(409, "share_already_submitted");
    let sec = share("sec");
    submit(
        sid.clone(),
        w.sec.clone(),
        t.code("sec"),
        seal_share(&recipient, &sec).unwrap(),
    )
    .await
    .ok();
    t.post(
        format!("/v1/recovery/sessions/{sid}/release"),
        &w.bob,
        json!({}),
    )
    .await
    .refused(403, "forbidden_role");
    let r = t
        .post(
            format!("/v1/recovery/sessions/{sid}/release"),
            &w.requester,
            json!({}),
        )
        .await;
    r.refused(401, "invalid_totp");
    assert!(r.body["error"]["message"].as_str().unwrap().contains("ann"));
    // Ann's submission was dropped; she submits again with a right code.
    let v = t
        .get(format!("/v1/recovery/sessions/{sid}"), &w.requester)
        .await
        .ok();
    assert_eq!(v["needed"], 1, "{v}");
    t.next_step();
    t.next_step();
    submit(
        sid.clone(),
        w.ann.clone(),
        t.code("ann"),
        sealed_ann.clone(),
    )
    .await
    .ok();
    let released = t
        .post(
            format!("/v1/recovery/sessions/{sid}/release"),
            &w.requester,
            json!({}),
        )
        .await
        .ok();
    assert_eq!(released["fields"]["password"], "v2-recoverable");
    // Once: the session, the request and an ordinary release all refuse now.
    t.post(
        format!("/v1/recovery/sessions/{sid}/release"),
        &w.requester,
        json!({}),
    )
    .await
    .refused(409, "request_released");
    t.post(
        format!("/v1/requests/{id}/release"),
        &w.requester,
        json!({}),
    )
    .await
    .refused(409, "request_released");
    let c = t.get("/v1/credentials/aws-prod-root", &w.admin).await.ok();
    assert_eq!(c["exposed"], true);

    let events = t.audit().await;
    assert_eq!(
        events
            .iter()
            .filter(|e| e.action == "recovery.share_submit" && e.outcome == "success")
            .count(),
        3
    );
    let all = serde_json::to_string(&events).unwrap();
    assert!(!all.contains(&ann.share) && !all.contains(&sec.share));
    assert!(!all.contains("v2-recoverable"));
    assert!(t.verify().await);
    other_process.stop().await;
}
