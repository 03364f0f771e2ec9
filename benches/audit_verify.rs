//! Offline verification speed of an audit export, in events per second,
//! beside the hashing ceiling measured in the same run: SHA-256 of the same
//! canonical encodings in-process, `openssl speed -evp sha256` at the mean
//! encoding size, and `sha256sum` over the same bytes.
//!
//! Run: `cargo bench --bench audit_verify` (BENCH_EVENTS events, default
//! 1 000 000; a signed checkpoint every 1000). Method and results:
//! docs/benchmarks.md.

use std::io::Write;
use std::process::Command;
use std::time::Instant;

use breakglass::crypto::chain::{seal, AuditEvent, AuditKey, GENESIS};
use serde_json::json;
use sha2::{Digest, Sha256};

fn main() {
    let n: i64 = std::env::var("BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("audit.jsonl");
    let canon_path = dir.path().join("canonical.bin");
    let key = breakglass::crypto::signing::SigningKey::generate();

    // A log shaped like a real one: the mix of actions of a break-glass.
    let started = Instant::now();
    let actions = [
        (
            "request.create",
            json!({ "credential": "aws-prod-root", "reason": "prod is down: database failover stuck", "ticket": "INC-4242" }),
        ),
        (
            "request.approve",
            json!({ "credential": "aws-prod-root", "approvals": 1, "needed": 3 }),
        ),
        (
            "request.approve",
            json!({ "credential": "aws-prod-root", "approvals": 2, "needed": 3 }),
        ),
        (
            "request.approved",
            json!({ "credential": "aws-prod-root", "approvers": ["ann", "bob", "sec"], "release_deadline": "2026-11-28T10:15:00Z" }),
        ),
        (
            "request.release",
            json!({ "credential": "aws-prod-root", "account_id": "123456789012", "version": 3, "fields": ["mfa_seed", "password"] }),
        ),
        (
            "audit.list",
            json!({ "after": 0, "limit": 100, "returned": 100, "filter": { "actor": null, "action": null } }),
        ),
    ];
    let mut f = std::io::BufWriter::new(std::fs::File::create(&export).unwrap());
    let mut canon = std::io::BufWriter::new(std::fs::File::create(&canon_path).unwrap());
    let header = json!({
        "record": "header", "format": "breakglass-audit-export-v1", "exported_at": "",
        "after_seq": 0, "prev_hash": GENESIS, "audit_keys": [AuditKey::new(key.public_key())],
    });
    writeln!(f, "{header}").unwrap();
    let mut prev = GENESIS.to_string();
    let mut canonical_bytes = 0u64;
    let mut encodings: Vec<Vec<u8>> = Vec::with_capacity(n as usize);
    for seq in 1..=n {
        let (action, details) = &actions[(seq as usize) % actions.len()];
        let e = seal(
            AuditEvent {
                seq,
                ts_ms: 1_795_000_000_000 + seq * 37,
                actor: ["ann", "bob", "sec", "oncall"][(seq % 4) as usize].into(),
                action: (*action).into(),
                target: format!("request:{:08x}-7f3c-4d2a-9b1e-5c6d7e8f9a0b", seq / 6),
                outcome: "success".into(),
                code: None,
                details: details.clone(),
                prev_hash: String::new(),
                hash: String::new(),
            },
            &prev,
        )
        .unwrap();
        let c = e.canonical_bytes().unwrap();
        canonical_bytes += c.len() as u64;
        canon.write_all(&c).unwrap();
        encodings.push(c);
        let mut v = serde_json::to_value(&e).unwrap();
        v["record"] = json!("event");
        writeln!(f, "{v}").unwrap();
        if seq % 1000 == 0 || seq == n {
            let cp = breakglass::app::audit::sign_checkpoint(&key, seq, &e.hash, e.ts_ms);
            let mut v = serde_json::to_value(&cp).unwrap();
            v["record"] = json!("checkpoint");
            writeln!(f, "{v}").unwrap();
        }
        prev = e.hash;
    }
    writeln!(f, "{}", json!({ "record": "head", "seq": n, "hash": prev })).unwrap();
    f.flush().unwrap();
    canon.flush().unwrap();
    drop((f, canon));
    let file_bytes = std::fs::metadata(&export).unwrap().len();
    let mean = canonical_bytes as f64 / n as f64;
    eprintln!(
        "generated {n} events in {:.1} s: export {:.1} MB, canonical encodings {:.1} MB, mean {mean:.0} bytes",
        started.elapsed().as_secs_f64(),
        file_bytes as f64 / 1e6,
        canonical_bytes as f64 / 1e6
    );

    // 1. Verification of the export, as `audit verify --file` runs it.
    let t = Instant::now();
    let r = breakglass::crypto::chain::verify_jsonl(
        std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(&export).unwrap()),
        Some(vec![AuditKey::new(key.public_key())]),
        |_| {},
    )
    .unwrap();
    let verify_s = t.elapsed().as_secs_f64();
    assert!(r.verdict.ok, "{:?}", r.verdict.first_break);
    assert_eq!(r.verdict.events_checked, n);

    // 2. The hashing ceiling in-process: SHA-256 of the same encodings.
    let t = Instant::now();
    let mut acc = 0u8;
    for c in &encodings {
        acc ^= Sha256::digest(c)[0];
    }
    let hash_s = t.elapsed().as_secs_f64();
    std::hint::black_box(acc);

    // 3. Reading and parsing only (no canonical encoding, no hashing).
    let t = Instant::now();
    let text = std::fs::read_to_string(&export).unwrap();
    let mut parsed = 0u64;
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        parsed += v.is_object() as u64;
    }
    let parse_s = t.elapsed().as_secs_f64();
    drop(text);

    // 4. openssl at the mean size, and sha256sum over the same bytes.
    let openssl = Command::new("openssl")
        .args(["speed", "-evp", "sha256", "-seconds", "3", "-bytes"])
        .arg(format!("{}", mean.round() as u64))
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .and_then(|s| {
            // "sha256  <ops-as-KB/s>k" on the last line.
            s.lines()
                .last()
                .and_then(|l| l.split_whitespace().last().map(str::to_owned))
        })
        .and_then(|k| k.trim_end_matches('k').parse::<f64>().ok())
        .map(|kb_s| kb_s * 1000.0);
    let t = Instant::now();
    let sum_ok = Command::new("sha256sum")
        .arg(&canon_path)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    let sum_s = t.elapsed().as_secs_f64();

    let mb = canonical_bytes as f64 / 1e6;
    println!("| measurement | events/s | MB/s of canonical encodings |");
    println!("| --- | ---: | ---: |");
    println!(
        "| `audit verify --file` (read, parse, encode, hash, check {} signatures) | {:.0} | {:.0} |",
        r.verdict.checkpoints_checked,
        n as f64 / verify_s,
        mb / verify_s
    );
    println!(
        "| parse the export's lines only | {:.0} | {:.0} |",
        parsed as f64 / parse_s,
        mb / parse_s
    );
    println!(
        "| SHA-256 of the encodings in-process (sha2) | {:.0} | {:.0} |",
        n as f64 / hash_s,
        mb / hash_s
    );
    if let Some(bps) = openssl {
        println!(
            "| `openssl speed -evp sha256 -bytes {:.0}` | {:.0} | {:.0} |",
            mean,
            bps / mean,
            bps / 1e6
        );
    }
    if sum_ok {
        println!(
            "| `sha256sum` over the same bytes | {:.0} | {:.0} |",
            n as f64 / sum_s,
            mb / sum_s
        );
    }
    println!(
        "\n{n} events, mean canonical encoding {mean:.0} bytes, export {:.0} bytes per event",
        file_bytes as f64 / n as f64
    );
}
