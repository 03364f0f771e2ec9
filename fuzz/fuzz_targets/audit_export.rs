#![no_main]
//! Audit exports (JSON Lines), two ways, chosen by the first byte:
//! 0. any bytes: verified without panicking, with the file's own keys and
//!    with a trusted key;
//! 1. edits (2-byte offset, new byte) of a valid export with signed
//!    checkpoints: refused, or the same verdict over records and header
//!    fields that read the same (fields the verifier does not read, such as
//!    the export time, are not authenticated).

use std::sync::LazyLock;

use breakglass::app::audit::{sign_checkpoint, ExportHeader, EXPORT_FORMAT};
use breakglass::auth::SigningKey;
use breakglass::crypto::chain::{
    seal, verify_jsonl, AuditEvent, AuditKey, Checkpoint, Verdict, GENESIS,
};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

static KEY: LazyLock<SigningKey> = LazyLock::new(SigningKey::generate);

/// A valid export of four events (checkpoints after the second and the
/// fourth) and its verdict.
static VALID: LazyLock<(String, Verdict)> = LazyLock::new(|| {
    let key = &*KEY;
    let header = ExportHeader {
        record: "header".into(),
        format: EXPORT_FORMAT.into(),
        exported_at: "2026-01-02T03:04:05Z".into(),
        after_seq: 0,
        prev_hash: GENESIS.into(),
        audit_keys: vec![AuditKey::new(key.public_key())],
    };
    let mut lines = vec![serde_json::to_value(header).unwrap()];
    let mut prev = GENESIS.to_owned();
    for seq in 1..=4 {
        let e = seal(
            AuditEvent {
                seq,
                ts_ms: 1_800_000_000_000 + seq,
                actor: "ann".into(),
                action: "request.approve".into(),
                target: format!("request:{seq}"),
                outcome: if seq == 3 { "refused" } else { "success" }.into(),
                code: (seq == 3).then(|| "totp_invalid".into()),
                details: json!({ "approvals": seq, "note": "line\nbreak \u{e9}" }),
                prev_hash: String::new(),
                hash: String::new(),
            },
            &prev,
        )
        .expect("no floating-point numbers");
        prev = e.hash.clone();
        let mut v = serde_json::to_value(&e).unwrap();
        v["record"] = json!("event");
        lines.push(v);
        if seq % 2 == 0 {
            let mut c = serde_json::to_value(sign_checkpoint(key, seq, &e.hash, e.ts_ms)).unwrap();
            c["record"] = json!("checkpoint");
            lines.push(c);
        }
    }
    lines.push(json!({ "record": "head", "seq": 4, "hash": prev }));
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let verdict = verify_jsonl(text.as_bytes(), None, |_| {}).unwrap().verdict;
    assert!(verdict.ok);
    (text, verdict)
});

/// What each record after the header says, as the verifier reads it:
/// fields it does not read (and the hash does not cover) are left out.
fn records(text: &str) -> Vec<String> {
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("an accepted line is JSON");
            match v["record"].as_str() {
                Some("event") => format!("{:?}", serde_json::from_value::<AuditEvent>(v).ok()),
                Some("checkpoint") => format!("{:?}", serde_json::from_value::<Checkpoint>(v).ok()),
                _ => format!("{} {} {}", v["record"], v["seq"], v["hash"]),
            }
        })
        .collect()
}

/// The header fields the verifier reads; the others (the export time) are
/// informative and not authenticated.
fn header_fields(text: &str) -> Option<Vec<Option<Value>>> {
    let v: Value = serde_json::from_str(text.lines().next()?).ok()?;
    let read = ["record", "format", "after_seq", "prev_hash", "audit_keys"];
    Some(read.iter().map(|k| v.get(*k).cloned()).collect())
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        let _ = verify_jsonl(rest, None, |_| {});
        let trusted = vec![AuditKey::new(KEY.public_key())];
        let _ = verify_jsonl(rest, Some(trusted), |_| {});
        return;
    }
    let (text, verdict) = &*VALID;
    let mut edited = text.clone().into_bytes();
    for e in rest.chunks_exact(3) {
        let at = usize::from(u16::from_le_bytes([e[0], e[1]])) % edited.len();
        edited[at] = e[2];
    }
    let Ok(v) = verify_jsonl(edited.as_slice(), None, |_| {}) else {
        return;
    };
    if v.verdict.ok {
        let edited = String::from_utf8(edited).expect("every line was read as UTF-8");
        assert_eq!(&v.verdict, verdict, "accepted:\n{edited}");
        assert_eq!(records(&edited), records(text), "accepted:\n{edited}");
        assert_eq!(
            header_fields(&edited),
            header_fields(text),
            "accepted:\n{edited}"
        );
    }
});
