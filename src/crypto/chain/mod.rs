//! The audit hash chain.
//!
//! Each event is hashed over its canonical encoding, which includes the hash
//! of the event before it; editing, deleting, inserting or reordering any
//! event breaks every link after it. The encoding is specified in
//! `docs/audit-format.md` so that an auditor can re-implement verification.
//!
//! This file holds what the chain is made of (events, checkpoints, the
//! audit key); `seal.rs` how an event is hashed into it, `verify.rs` how a
//! chain is checked, `export.rs` the JSON-lines export and its verification.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

mod export;
mod seal;
mod verify;

pub use export::{verify_jsonl, ExportVerdict};
pub use seal::{canonical_json, seal};
pub use verify::{Break, Verdict, Verifier};

/// The `prev_hash` of the first event.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
pub const FORMAT_VERSION: i64 = 1;

/// One audit event as stored and exported; every field but `hash` is
/// covered by `hash`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditEvent {
    /// Position in the chain, from 1, without gaps.
    pub seq: i64,
    /// Milliseconds since the Unix epoch.
    pub ts_ms: i64,
    /// Token subject of whoever acted, or `anonymous`.
    pub actor: String,
    /// What was attempted, e.g. `request.approve`.
    pub action: String,
    /// What it was attempted on, e.g. `request:3f2a…`.
    pub target: String,
    /// `success`, `refused` (with `code`) or `error` (code `internal`).
    pub outcome: String,
    /// The refusal code, when refused.
    pub code: Option<String>,
    /// Non-secret context (an object).
    #[schema(value_type = Object)]
    pub details: Value,
    /// `hash` of the event before, or 64 zeros for the first.
    pub prev_hash: String,
    /// SHA-256 (hex) of this event's canonical encoding.
    pub hash: String,
}

/// A signed statement that the chain had `hash` at event `seq` at time
/// `ts_ms`, by the audit key `kid`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Checkpoint {
    pub seq: i64,
    pub hash: String,
    pub ts_ms: i64,
    /// First 16 hex digits of SHA-256 of the signing public key.
    pub kid: String,
    /// Base64 Ed25519 signature over `signed_bytes`.
    pub signature: String,
}

pub const CHECKPOINT_TYPE: &str = "breakglass-audit-checkpoint";

impl Checkpoint {
    /// What the signature covers: canonical JSON of
    /// `{"hash","kid","seq","ts_ms","type","v":1}`.
    pub fn signed_bytes(seq: i64, hash: &str, ts_ms: i64, kid: &str) -> Vec<u8> {
        let v = serde_json::json!({
            "v": FORMAT_VERSION,
            "type": CHECKPOINT_TYPE,
            "seq": seq,
            "hash": hash,
            "ts_ms": ts_ms,
            "kid": kid,
        });
        let mut s = String::new();
        canonical_json(&v, &mut s).expect("integers and strings only");
        s.into_bytes()
    }

    /// Whether `signature` is a valid Ed25519 signature by `public_key`.
    pub fn signature_valid(&self, public_key: &[u8]) -> bool {
        use aws_lc_rs::signature::{UnparsedPublicKey, ED25519};
        use base64::Engine;
        let Ok(sig) = base64::engine::general_purpose::STANDARD.decode(&self.signature) else {
            return false;
        };
        UnparsedPublicKey::new(&ED25519, public_key)
            .verify(
                &Self::signed_bytes(self.seq, &self.hash, self.ts_ms, &self.kid),
                &sig,
            )
            .is_ok()
    }
}

/// An audit public key: `kid` and the raw 32-byte Ed25519 key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditKey {
    pub kid: String,
    /// Always `Ed25519`.
    pub alg: String,
    /// Base64 of the 32-byte public key.
    pub public_key: String,
}

impl AuditKey {
    pub fn new(public_key: &[u8]) -> AuditKey {
        use base64::Engine;
        AuditKey {
            kid: kid_of(public_key),
            alg: "Ed25519".into(),
            public_key: base64::engine::general_purpose::STANDARD.encode(public_key),
        }
    }

    pub fn raw(&self) -> Option<Vec<u8>> {
        use base64::Engine;
        let k = base64::engine::general_purpose::STANDARD
            .decode(&self.public_key)
            .ok()?;
        (self.alg == "Ed25519" && k.len() == 32 && kid_of(&k) == self.kid).then_some(k)
    }
}

/// Key id: the first 16 hex digits of SHA-256 of the public key.
pub fn kid_of(public_key: &[u8]) -> String {
    hex::encode(&Sha256::digest(public_key)[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(seq: i64, prev: &str) -> AuditEvent {
        seal(
            AuditEvent {
                seq,
                ts_ms: 1_700_000_000_000 + seq,
                actor: "alice".into(),
                action: "request.create".into(),
                target: format!("request:{seq}"),
                outcome: "success".into(),
                code: None,
                details: serde_json::json!({"b": 1, "a": "x\ny"}),
                prev_hash: String::new(),
                hash: String::new(),
            },
            prev,
        )
        .unwrap()
    }

    fn chain(n: i64) -> Vec<AuditEvent> {
        let mut out: Vec<AuditEvent> = Vec::new();
        for s in 1..=n {
            let prev = out
                .last()
                .map(|e| e.hash.clone())
                .unwrap_or_else(|| GENESIS.into());
            out.push(ev(s, &prev));
        }
        out
    }

    fn verify(events: &[AuditEvent], head: Option<(i64, String)>) -> Verdict {
        let mut v = Verifier::new();
        events.iter().for_each(|e| v.push(e));
        v.finish(head)
    }

    #[test]
    fn canonical_json_sorts_keys_and_drops_whitespace() {
        let mut s = String::new();
        canonical_json(
            &serde_json::json!({"z": [1, {"b": null, "a": true}], "a": "é\u{1}"}),
            &mut s,
        )
        .unwrap();
        assert_eq!(s, r#"{"a":"é\u0001","z":[1,{"a":true,"b":null}]}"#);
    }

    #[test]
    fn an_intact_chain_verifies() {
        let c = chain(5);
        let head = Some((5, c[4].hash.clone()));
        assert!(verify(&c, head).ok);
    }

    #[test]
    fn each_kind_of_tampering_is_pinpointed() {
        let c = chain(5);
        let head = Some((5, c[4].hash.clone()));

        let mut edited = c.clone();
        edited[2].actor = "mallory".into();
        assert_eq!(verify(&edited, head.clone()).first_break.unwrap().seq, 3);

        let mut deleted = c.clone();
        deleted.remove(1);
        assert_eq!(verify(&deleted, head.clone()).first_break.unwrap().seq, 2);

        let mut swapped = c.clone();
        swapped.swap(1, 2);
        assert_eq!(verify(&swapped, head.clone()).first_break.unwrap().seq, 2);

        let truncated = &c[..3];
        let v = verify(truncated, head.clone());
        assert_eq!(v.first_break.unwrap().seq, 4);

        // Re-hashing an edited event still breaks the link after it.
        let mut rehashed = c.clone();
        rehashed[1].actor = "mallory".into();
        rehashed[1].hash = rehashed[1].compute_hash().unwrap();
        assert_eq!(verify(&rehashed, head).first_break.unwrap().seq, 3);
    }
}
