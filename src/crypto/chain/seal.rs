//! Sealing: the canonical encoding an event is hashed over, and the link
//! to the event before it.

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{AuditEvent, FORMAT_VERSION};

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

/// Seal a new event after `prev`: sets `prev_hash` and `hash`.
pub fn seal(mut e: AuditEvent, prev_hash: &str) -> Result<AuditEvent, &'static str> {
    e.prev_hash = prev_hash.to_owned();
    e.hash = e.compute_hash()?;
    Ok(e)
}
