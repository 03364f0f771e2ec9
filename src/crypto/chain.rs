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

/// The first problem found in a chain, by sequence number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Break {
    pub seq: i64,
    pub reason: String,
}

/// Result of checking a chain from its first event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Verdict {
    pub ok: bool,
    pub events_checked: i64,
    pub head_seq: i64,
    pub head_hash: String,
    pub first_break: Option<Break>,
    /// Signed checkpoints checked (signature, and the event they sign).
    pub checkpoints_checked: i64,
    /// The last event covered by a valid signed checkpoint, if any: events
    /// after it are protected by the hash chain alone.
    pub signed_through: Option<i64>,
}

/// Incremental verifier: feed events in `seq` order, then `finish` with the
/// recorded chain head (which detects a truncated tail).
pub struct Verifier {
    expected_seq: i64,
    prev_hash: String,
    checked: i64,
    first_break: Option<Break>,
    /// Checkpoints not yet matched with their event, by seq.
    checkpoints: std::collections::BTreeMap<i64, Checkpoint>,
    keys: Vec<AuditKey>,
    checkpoints_checked: i64,
    signed_through: Option<i64>,
}

impl Default for Verifier {
    fn default() -> Self {
        Self::new()
    }
}

impl Verifier {
    pub fn new() -> Verifier {
        Self::starting_at(1, GENESIS)
    }

    /// Verify a part of the chain: its first event is `seq`, linking to
    /// `prev_hash` (an export that starts after event 1).
    pub fn starting_at(seq: i64, prev_hash: &str) -> Verifier {
        Verifier {
            expected_seq: seq,
            prev_hash: prev_hash.into(),
            checked: 0,
            first_break: None,
            checkpoints: Default::default(),
            keys: Vec::new(),
            checkpoints_checked: 0,
            signed_through: None,
        }
    }

    /// Trust these audit public keys for checkpoint signatures.
    pub fn with_keys(mut self, keys: Vec<AuditKey>) -> Verifier {
        self.keys = keys;
        self
    }

    /// After the checkpoints and before the events of a log whose start
    /// was pruned: a valid signed checkpoint must vouch for the hash the
    /// log continues from.
    pub fn require_signed_start(&mut self) {
        let start = self.expected_seq - 1;
        if start > 0 && self.checked == 0 && self.signed_through != Some(start) && !self.broken() {
            self.fail(
                start + 1,
                format!("the events up to {start} were archived and pruned, but no valid signed checkpoint vouches for event {start}'s hash, which the log continues from"),
            );
        }
    }

    /// Add a checkpoint (any order, before or while events are pushed).
    /// Its signature is checked now; it is matched with its event when that
    /// event arrives, or at `finish`.
    pub fn checkpoint(&mut self, c: Checkpoint) {
        if self.broken() {
            return;
        }
        let key = self
            .keys
            .iter()
            .find(|k| k.kid == c.kid)
            .and_then(AuditKey::raw);
        let Some(key) = key else {
            return self.fail(
                c.seq,
                format!(
                    "the checkpoint at event {} is signed by key {}, which is not a trusted audit key",
                    c.seq, c.kid
                ),
            );
        };
        if !c.signature_valid(&key) {
            return self.fail(
                c.seq,
                format!(
                    "the checkpoint at event {} has a bad signature: it was forged or altered",
                    c.seq
                ),
            );
        }
        if c.seq == self.expected_seq - 1 && c.seq >= 1 {
            // The checkpoint of the event just pushed (an export lists each
            // checkpoint right after its event), or, before any event, of
            // the event the verified part continues from.
            self.checkpoints_checked += 1;
            if c.hash != self.prev_hash {
                return self.fail(
                    c.seq,
                    format!(
                        "event {} does not have the hash its signed checkpoint records: the log was rewritten at or before event {}",
                        c.seq, c.seq
                    ),
                );
            }
            self.signed_through = Some(c.seq);
            return;
        }
        if c.seq < self.expected_seq {
            if self.checked > 0 {
                return self.fail(
                    c.seq,
                    format!("the checkpoint of event {} appears after later events: the export was reordered", c.seq),
                );
            }
            // Before the part being verified.
            return;
        }
        self.checkpoints.insert(c.seq, c);
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
        let content = match e.compute_hash() {
            Err(why) => Err(format!("event {} cannot be encoded: {why}", e.seq)),
            Ok(h) if h != e.hash => Err(format!(
                "event {} was altered: its content does not match its hash",
                e.seq
            )),
            Ok(_) => Ok(()),
        };
        self.link(e.seq, &e.prev_hash, &e.hash, content);
    }

    /// The checks after the content hash: position, link, checkpoint.
    fn link(&mut self, seq: i64, prev_hash: &str, hash: &str, content: Result<(), String>) {
        if self.broken() {
            return;
        }
        self.checked += 1;
        if seq != self.expected_seq {
            let reason = if seq > self.expected_seq {
                format!(
                    "event {} is missing (next event found is {})",
                    self.expected_seq, seq
                )
            } else {
                format!("event {seq} appears out of order or twice")
            };
            return self.fail(self.expected_seq.min(seq), reason);
        }
        if let Err(reason) = content {
            return self.fail(seq, reason);
        }
        if prev_hash != self.prev_hash {
            return self.fail(
                seq,
                format!("event {seq} does not link to event {}: an event was inserted, removed or rewritten", seq - 1),
            );
        }
        if let Some(c) = self.checkpoints.remove(&seq) {
            self.checkpoints_checked += 1;
            if c.hash != hash {
                return self.fail(
                    seq,
                    format!(
                        "event {seq} does not have the hash its signed checkpoint records: the log was rewritten at or before event {seq}"
                    ),
                );
            }
            self.signed_through = Some(seq);
        }
        self.prev_hash = hash.to_owned();
        self.expected_seq += 1;
    }

    /// `head` is the chain head recorded beside the events (sequence number
    /// and hash of the last event appended).
    pub fn finish(mut self, head: Option<(i64, String)>) -> Verdict {
        let last = self.expected_seq - 1;
        if !self.broken() {
            if let Some((&seq, _)) = self.checkpoints.iter().next() {
                self.fail(
                    last + 1,
                    format!("the log ends at event {last} but a signed checkpoint covers event {seq}: the tail was truncated"),
                );
            }
        }
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
            checkpoints_checked: self.checkpoints_checked,
            signed_through: self.signed_through,
        }
    }
}

/// Verify a JSON Lines export (`audit export --format jsonl`): its header,
/// every event, every signed checkpoint (with `trusted` keys, or else the
/// keys the file names), and its closing head record. `progress` is called
/// with the number of events checked so far, every 10 000 events.
pub fn verify_jsonl(
    input: impl std::io::BufRead,
    trusted: Option<Vec<AuditKey>>,
    mut progress: impl FnMut(i64),
) -> Result<ExportVerdict, String> {
    let mut lines = input.lines();
    let first = lines
        .next()
        .ok_or("the file is empty")?
        .map_err(|e| format!("cannot read the file: {e}"))?;
    let header: Value =
        serde_json::from_str(&first).map_err(|e| format!("line 1 is not JSON: {e}"))?;
    if header["record"] != "header" || header["format"] != "breakglass-audit-export-v1" {
        return Err("line 1 is not a breakglass audit export header".into());
    }
    let after = header["after_seq"]
        .as_i64()
        .ok_or("the header has no after_seq")?;
    let prev = header["prev_hash"]
        .as_str()
        .ok_or("the header has no prev_hash")?;
    let file_keys: Vec<AuditKey> = serde_json::from_value(header["audit_keys"].clone())
        .map_err(|e| format!("the header's audit_keys cannot be read: {e}"))?;
    let keys_from_file = trusted.is_none();
    let keys = trusted.unwrap_or(file_keys);
    let mut v = Verifier::starting_at(after + 1, prev).with_keys(keys.clone());
    let mut head: Option<(i64, String)> = None;
    let mut line_no = 1;
    // Lines are read in batches; the fast path (parse and hash) runs on
    // every core, then the links are checked in order on this thread.
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 8);
    let mut lines = lines.peekable();
    'batches: while lines.peek().is_some() {
        let mut batch: Vec<String> = Vec::with_capacity(BATCH_LINES);
        for line in lines.by_ref().take(BATCH_LINES) {
            batch.push(
                line.map_err(|e| format!("cannot read line {}: {e}", line_no + batch.len() + 1))?,
            );
        }
        let fast = fast_events(&batch, threads);
        for (line, fast) in batch.iter().zip(fast) {
            line_no += 1;
            if line.trim().is_empty() {
                continue;
            }
            if head.is_some() {
                v.fail(
                    v.expected_seq,
                    format!(
                        "line {line_no} follows the head record: something was appended to the export"
                    ),
                );
                break 'batches;
            }
            // Fast path: an event line whose fields, as written, are
            // already in canonical form (what the service writes) was hashed
            // straight from its bytes; anything else takes the general path.
            if let Some((seq, prev_hash, hash)) = fast {
                v.link(seq, prev_hash, hash, Ok(()));
                if v.checked % 10_000 == 0 {
                    progress(v.checked);
                }
                if v.broken() {
                    break 'batches;
                }
                continue;
            }
            general_line(&mut v, &mut head, line, line_no, &mut progress);
            if v.broken() {
                break 'batches;
            }
        }
    }
    if head.is_none() && !v.broken() {
        let last = v.expected_seq - 1;
        v.fail(
            last + 1,
            format!(
                "the export ends at event {last} without its head record: the file was cut short"
            ),
        );
    }
    progress(v.checked);
    Ok(ExportVerdict {
        verdict: v.finish(head),
        keys,
        keys_from_file,
    })
}

const BATCH_LINES: usize = 16_384;

/// The fast path over a batch, split across `threads`.
fn fast_events(batch: &[String], threads: usize) -> Vec<Option<(i64, &str, &str)>> {
    if threads <= 1 || batch.len() < 1024 {
        return batch.iter().map(|l| fast_event(l)).collect();
    }
    let chunk = batch.len().div_ceil(threads);
    std::thread::scope(|s| {
        let parts: Vec<_> = batch
            .chunks(chunk)
            .map(|c| s.spawn(move || c.iter().map(|l| fast_event(l)).collect::<Vec<_>>()))
            .collect();
        parts
            .into_iter()
            .flat_map(|h| h.join().expect("the fast path does not panic"))
            .collect()
    })
}

/// A line the fast path did not take: a checkpoint, the head, or an event
/// that needs the full canonical encoding (or is broken).
fn general_line(
    v: &mut Verifier,
    head: &mut Option<(i64, String)>,
    line: &str,
    line_no: usize,
    progress: &mut impl FnMut(i64),
) {
    let value: Value = match serde_json::from_str(line) {
        Ok(x) => x,
        Err(e) => {
            return v.fail(
                v.expected_seq,
                format!("line {line_no} is not JSON ({e}): the file was damaged"),
            );
        }
    };
    // A field the hash or signature does not cover could say anything to
    // whoever reads the file: every record has exactly its own fields.
    let fields: &[&str] = match value["record"].as_str() {
        Some("event") => &[
            "record",
            "seq",
            "ts_ms",
            "actor",
            "action",
            "target",
            "outcome",
            "code",
            "details",
            "prev_hash",
            "hash",
        ],
        Some("checkpoint") => &["record", "seq", "hash", "ts_ms", "kid", "signature"],
        Some("head") => &["record", "seq", "hash"],
        _ => &[],
    };
    if let Some(obj) = value.as_object().filter(|_| !fields.is_empty()) {
        let extra: Vec<&str> = obj
            .keys()
            .map(String::as_str)
            .filter(|k| !fields.contains(k))
            .collect();
        let missing: Vec<&str> = fields
            .iter()
            .copied()
            .filter(|k| !obj.contains_key(*k))
            .collect();
        if !extra.is_empty() || !missing.is_empty() {
            return v.fail(
                v.expected_seq,
                format!(
                    "line {line_no} does not have exactly the fields of its record (extra: {extra:?}, missing: {missing:?}): the file was altered"
                ),
            );
        }
    }
    match value["record"].as_str() {
        Some("event") => match serde_json::from_value::<AuditEvent>(value) {
            Ok(e) => {
                v.push(&e);
                if v.checked % 10_000 == 0 {
                    progress(v.checked);
                }
            }
            Err(e) => v.fail(
                v.expected_seq,
                format!("line {line_no} is not an audit event ({e})"),
            ),
        },
        Some("checkpoint") => match serde_json::from_value::<Checkpoint>(value) {
            Ok(c) => v.checkpoint(c),
            Err(e) => v.fail(
                v.expected_seq,
                format!("line {line_no} is not a checkpoint ({e})"),
            ),
        },
        Some("head") => {
            *head = Some((
                value["seq"].as_i64().unwrap_or(-1),
                value["hash"].as_str().unwrap_or_default().to_owned(),
            ))
        }
        _ => v.fail(
            v.expected_seq,
            format!("line {line_no} is not an event, checkpoint or head record"),
        ),
    }
}

/// An event line as written, its fields borrowed raw. Any other field
/// sends the line to the general path, which refuses it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEventLine<'a> {
    #[serde(borrow)]
    record: &'a serde_json::value::RawValue,
    #[serde(borrow)]
    seq: &'a serde_json::value::RawValue,
    #[serde(borrow)]
    ts_ms: &'a serde_json::value::RawValue,
    #[serde(borrow)]
    actor: &'a serde_json::value::RawValue,
    #[serde(borrow)]
    action: &'a serde_json::value::RawValue,
    #[serde(borrow)]
    target: &'a serde_json::value::RawValue,
    #[serde(borrow)]
    outcome: &'a serde_json::value::RawValue,
    #[serde(borrow)]
    code: &'a serde_json::value::RawValue,
    #[serde(borrow)]
    details: &'a serde_json::value::RawValue,
    #[serde(borrow)]
    prev_hash: &'a serde_json::value::RawValue,
    #[serde(borrow)]
    hash: &'a serde_json::value::RawValue,
}

/// The event on `line` if it is an event whose content matches its hash
/// when its fields are taken exactly as written (then the written form is
/// the canonical one). `None` sends the line through the general path,
/// which decides with the full canonical encoding.
fn fast_event(line: &str) -> Option<(i64, &str, &str)> {
    let r: RawEventLine = serde_json::from_str(line).ok()?;
    if r.record.get() != "\"event\"" {
        return None;
    }
    fn plain(raw: &serde_json::value::RawValue) -> Option<&str> {
        let s = raw.get().strip_prefix('"')?.strip_suffix('"')?;
        (!s.contains('\\')).then_some(s)
    }
    let mut c = String::with_capacity(line.len());
    for (k, v) in [
        ("{\"action\":", r.action.get()),
        (",\"actor\":", r.actor.get()),
        (",\"code\":", r.code.get()),
        (",\"details\":", r.details.get()),
        (",\"outcome\":", r.outcome.get()),
        (",\"prev_hash\":", r.prev_hash.get()),
        (",\"seq\":", r.seq.get()),
        (",\"target\":", r.target.get()),
        (",\"ts_ms\":", r.ts_ms.get()),
    ] {
        c.push_str(k);
        c.push_str(v);
    }
    c.push_str(",\"v\":1}");
    let hash = plain(r.hash)?;
    if hex::encode(Sha256::digest(c.as_bytes())) != hash {
        return None;
    }
    Some((r.seq.get().parse().ok()?, plain(r.prev_hash)?, hash))
}

/// What `verify_jsonl` found, and which keys it trusted.
#[derive(Debug, Clone, Serialize)]
pub struct ExportVerdict {
    #[serde(flatten)]
    pub verdict: Verdict,
    pub keys: Vec<AuditKey>,
    /// The checkpoint keys were taken from the export itself: compare their
    /// `kid` with the key the service publishes.
    pub keys_from_file: bool,
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
