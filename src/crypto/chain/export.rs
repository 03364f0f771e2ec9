//! The export format (JSON lines: a header, the events, the checkpoints)
//! and its verification, streamed and in parallel.

use serde::Serialize;

use super::*;

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
