//! The audit hash chain.
//!
//! Each event is hashed over its canonical encoding, which includes the hash
//! of the event before it; editing, deleting, inserting or reordering any
//! event breaks every link after it. The encoding is specified in
//! `docs/audit-format.md` so that an auditor can re-implement verification.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

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

/// Canonical JSON: objects with keys sorted by their UTF-8 bytes, no
/// whitespace, integers only, strings escaped as RFC 8259 requires (`"`, `\`
/// and control characters only, the latter as `\b \f \n \r \t` or `\u00xx`).
/// For this value domain it coincides with RFC 8785 (JCS).
pub fn canonical_json(v: &Value, out: &mut String) -> Result<(), &'static str> {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                out.push_str(&i.to_string())
            } else if let Some(u) = n.as_u64() {
                out.push_str(&u.to_string())
            } else {
                return Err("floating-point numbers are not allowed in audit events");
            }
        }
        Value::String(s) => {
            out.push_str(&serde_json::to_string(s).expect("a string always serialises"))
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_json(x, out)?;
            }
            out.push(']');
        }
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::to_string(k).expect("a string always serialises"));
                out.push(':');
                canonical_json(&m[k], out)?;
            }
            out.push('}');
        }
    }
    Ok(())
}

impl AuditEvent {
    /// The bytes that `hash` covers: the canonical JSON of every field but
    /// `hash`, plus `"v": 1`.
    pub fn canonical_bytes(&self) -> Result<Vec<u8>, &'static str> {
        let v = serde_json::json!({
            "v": FORMAT_VERSION,
            "seq": self.seq,
            "ts_ms": self.ts_ms,
            "actor": self.actor,
            "action": self.action,
            "target": self.target,
            "outcome": self.outcome,
            "code": self.code,
            "details": self.details,
            "prev_hash": self.prev_hash,
        });
        let mut s = String::new();
        canonical_json(&v, &mut s)?;
        Ok(s.into_bytes())
    }

    pub fn compute_hash(&self) -> Result<String, &'static str> {
        Ok(hex::encode(Sha256::digest(self.canonical_bytes()?)))
    }
}

/// The first problem found in a chain, by sequence number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Break {
    pub seq: i64,
    pub reason: String,
}

/// Result of checking a chain from its first event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Verdict {
    pub ok: bool,
    pub events_checked: i64,
    pub head_seq: i64,
    pub head_hash: String,
    pub first_break: Option<Break>,
}

/// Incremental verifier: feed events in `seq` order, then `finish` with the
/// recorded chain head (which detects a truncated tail).
pub struct Verifier {
    expected_seq: i64,
    prev_hash: String,
    checked: i64,
    first_break: Option<Break>,
}

impl Default for Verifier {
    fn default() -> Self {
        Self::new()
    }
}

impl Verifier {
    pub fn new() -> Verifier {
        Verifier {
            expected_seq: 1,
            prev_hash: GENESIS.into(),
            checked: 0,
            first_break: None,
        }
    }

    pub fn broken(&self) -> bool {
        self.first_break.is_some()
    }

    fn fail(&mut self, seq: i64, reason: String) {
        if self.first_break.is_none() {
            self.first_break = Some(Break { seq, reason });
        }
    }

    pub fn push(&mut self, e: &AuditEvent) {
        if self.broken() {
            return;
        }
        self.checked += 1;
        if e.seq != self.expected_seq {
            let reason = if e.seq > self.expected_seq {
                format!(
                    "event {} is missing (next event found is {})",
                    self.expected_seq, e.seq
                )
            } else {
                format!("event {} appears out of order or twice", e.seq)
            };
            return self.fail(self.expected_seq.min(e.seq), reason);
        }
        match e.compute_hash() {
            Err(why) => {
                return self.fail(e.seq, format!("event {} cannot be encoded: {why}", e.seq))
            }
            Ok(h) if h != e.hash => {
                return self.fail(
                    e.seq,
                    format!(
                        "event {} was altered: its content does not match its hash",
                        e.seq
                    ),
                )
            }
            Ok(_) => {}
        }
        if e.prev_hash != self.prev_hash {
            return self.fail(
                e.seq,
                format!("event {} does not link to event {}: an event was inserted, removed or rewritten", e.seq, e.seq - 1),
            );
        }
        self.prev_hash = e.hash.clone();
        self.expected_seq += 1;
    }

    /// `head` is the chain head recorded beside the events (sequence number
    /// and hash of the last event appended).
    pub fn finish(mut self, head: Option<(i64, String)>) -> Verdict {
        let last = self.expected_seq - 1;
        if !self.broken() {
            if let Some((seq, hash)) = &head {
                if *seq > last {
                    self.fail(last + 1, format!("the log ends at event {last} but the chain head records event {seq}: the tail was truncated"));
                } else if *seq < last {
                    self.fail(seq + 1, format!("events after {seq} are not recorded in the chain head: they were appended outside the service"));
                } else if *hash != self.prev_hash {
                    self.fail(
                        last,
                        format!("the chain head's hash does not match event {last}"),
                    );
                }
            }
        }
        let (head_seq, head_hash) = head.unwrap_or((last, self.prev_hash.clone()));
        Verdict {
            ok: self.first_break.is_none(),
            events_checked: self.checked,
            head_seq,
            head_hash,
            first_break: self.first_break,
        }
    }
}

/// Seal a new event after `prev`: sets `prev_hash` and `hash`.
pub fn seal(mut e: AuditEvent, prev_hash: &str) -> Result<AuditEvent, &'static str> {
    e.prev_hash = prev_hash.to_owned();
    e.hash = e.compute_hash()?;
    Ok(e)
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
