//! Verifying a chain: every link, every signed checkpoint, the recorded
//! head.

use serde::{Deserialize, Serialize};

use super::*;

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
    pub(super) expected_seq: i64,
    prev_hash: String,
    pub(super) checked: i64,
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

    pub(super) fn fail(&mut self, seq: i64, reason: String) {
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
    pub(super) fn link(
        &mut self,
        seq: i64,
        prev_hash: &str,
        hash: &str,
        content: Result<(), String>,
    ) {
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
