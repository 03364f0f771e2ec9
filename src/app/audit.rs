//! Reading and verifying the audit log. Reads of the log are themselves
//! audited.

use crate::domain::Action;
use crate::domain::Code;
use std::sync::Arc;

use serde_json::json;

use super::{refuse, refuse_as, App, AppError, AppResult, Done, Event};
use crate::auth::Identity;
use crate::crypto::chain::{AuditEvent, AuditKey, Break, Checkpoint, Verdict, Verifier};
use crate::domain::Role;
use crate::store::{AuditFilter, Tx};

pub const PAGE_MAX: i64 = 1000;
const VERIFY_BATCH: i64 = 5000;
/// Checkpoints read at once (a log of a million events has about 1000).
pub(crate) const CHECKPOINTS_MAX: i64 = 1_000_000;

/// Format of `audit export --format jsonl`.
pub const EXPORT_FORMAT: &str = "breakglass-audit-export-v1";

impl App {
    /// Events in chain order after `after` that match `filter`; the last
    /// `seq` returned is the cursor for the next page, which stays stable
    /// while events are appended.
    #[tracing::instrument(skip_all, fields(caller = %who.subject))]
    pub async fn audit_list(
        &self,
        who: &Identity,
        filter: &AuditFilter,
        after: i64,
        limit: i64,
    ) -> AppResult<Vec<AuditEvent>> {
        let mut tx = self.store.begin().await?;
        let res = async {
            self.require(who, Role::Auditor)?;
            let limit = super::limit_in(limit, PAGE_MAX)?;
            let events = tx.audit_search(filter, after.max(0), limit).await?;
            let ev = Event::new(
                Action::AuditList,
                "audit",
                json!({
                    "after": after,
                    "limit": limit,
                    "returned": events.len(),
                    "filter": filter_json(filter),
                }),
            );
            Ok(Done::new(events, ev))
        }
        .await;
        self.finish(tx, Some(who), Action::AuditList, "audit", res)
            .await
    }

    /// The public half of the checkpoint key.
    pub fn audit_public_key(&self) -> AuditKey {
        AuditKey::new(self.audit_key.public_key())
    }

    /// Sign the chain head in `tx` (locking it), unless a checkpoint
    /// already covers it. Never over a chain that does not verify from the
    /// witness: then the break is recorded (writes stop) and returned. The
    /// caller advances the witness once the checkpoint is committed.
    pub(crate) async fn checkpoint_head(&self, tx: &mut dyn Tx) -> AppResult<Option<Checkpoint>> {
        let (seq, hash) = tx.audit_head().await?;
        if seq == 0 {
            return Ok(None);
        }
        if tx.last_checkpoint().await?.is_some_and(|c| c.seq >= seq) {
            return Ok(None);
        }
        self.verify_since_witness(tx, (seq, hash.clone())).await?;
        let c = sign_checkpoint(&self.audit_key, seq, &hash, self.now_ms());
        Ok(tx.insert_checkpoint(&c).await?.then_some(c))
    }

    /// Verify the chain in `tx` from the witness (or, with none, from the
    /// base) to `head`. On success the witness moves to the last valid
    /// checkpoint reached; on a break, the break is recorded and refused.
    async fn verify_since_witness(&self, tx: &mut dyn Tx, head: (i64, String)) -> AppResult<()> {
        let base = tx.audit_base().await?;
        let start = match self.witness.current() {
            Some(w) if w.seq > base.0 => {
                if let Some(b) = witness_break(tx, &w, head.0).await? {
                    return Err(self.chain_broken(b));
                }
                (w.seq, w.hash)
            }
            _ => base,
        };
        let (verdict, reached) = verify_range(tx, self.audit_public_key(), start, head).await?;
        match verdict.first_break {
            Some(b) => Err(self.chain_broken(b)),
            None => {
                if let Some(c) = reached {
                    self.advance_witness(&c);
                }
                Ok(())
            }
        }
    }

    /// Move the witness forward (a checkpoint is committed and verified).
    /// A witness file that cannot be written is logged, not fatal: the
    /// checkpoint is in the database and in memory.
    pub(crate) fn advance_witness(&self, c: &Checkpoint) {
        if let Err(e) = self.witness.advance(c) {
            tracing::error!(error = %format!("{e:#}"), seq = c.seq, "could not record the audit witness in the data directory");
        }
    }

    /// Record a break of the chain: from now on this process signs no
    /// checkpoint and says why in `/readyz` and `/metrics`, until a full
    /// verification passes again.
    pub(crate) fn chain_broken(&self, b: Break) -> AppError {
        let mut known = self.chain_break.lock().unwrap_or_else(|e| e.into_inner());
        if known.is_none() {
            tracing::error!(seq = b.seq, reason = %b.reason, "the audit chain is broken: writes are refused");
            *known = Some(b.clone());
        }
        chain_broken_error(&b)
    }

    /// The break this process knows of, if any.
    pub fn known_break(&self) -> Option<Break> {
        self.chain_break
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Sign a checkpoint if one is due: the chain moved by the configured
    /// number of events, or the interval passed since the last one. Run
    /// every second by the server; several replicas may race, and the
    /// checkpoint's primary key lets one win.
    #[tracing::instrument(skip_all)]
    pub async fn checkpoint_if_due(&self) -> anyhow::Result<Option<Checkpoint>> {
        let (head, last) = {
            let mut tx = self.store.begin_read().await?;
            let head = tx.audit_head_peek().await?;
            let last = tx.last_checkpoint().await?;
            tx.rollback().await?;
            (head, last)
        };
        let (last_seq, last_ts) = last.map(|c| (c.seq, c.ts_ms)).unwrap_or((0, 0));
        let every = self.settings.audit_checkpoint_every_events;
        let interval = self.settings.audit_checkpoint_interval.as_millis() as i64;
        let due = head.0 > last_seq
            && (head.0 - last_seq >= every || self.now_ms() - last_ts >= interval);
        if !due {
            return Ok(None);
        }
        if self.known_break().is_some() {
            return Ok(None);
        }
        let mut tx = self.store.begin().await?;
        let c = match self.checkpoint_head(tx.as_mut()).await {
            Ok(c) => c,
            Err(e) => {
                tx.rollback().await?;
                if let Some(b) = self.known_break() {
                    // Audited and alerted once, if the log still takes it.
                    self.report_break(&b).await;
                    return Ok(None);
                }
                anyhow::bail!("while signing a checkpoint: {e}");
            }
        };
        tx.commit().await?;
        if let Some(c) = &c {
            self.advance_witness(c);
            tracing::info!(seq = c.seq, kid = %c.kid, "signed an audit checkpoint");
        }
        Ok(c)
    }

    /// Write the `audit.verify` failure event of a break (which alerts).
    /// If the log cannot take it (an event past the head), the break is
    /// only logged, and `/readyz` says why.
    async fn report_break(&self, b: &Break) {
        let ev = verify_event(&Verdict {
            ok: false,
            events_checked: 0,
            head_seq: 0,
            head_hash: String::new(),
            first_break: Some(b.clone()),
            checkpoints_checked: 0,
            signed_through: None,
        });
        let res = async {
            let mut tx = self.store.begin().await?;
            let e = seal_and_insert(
                tx.as_mut(),
                self.now_ms(),
                "breakglass",
                "success",
                None,
                ev,
            )
            .await?;
            self.enqueue_alerts(tx.as_mut(), &e).await?;
            tx.commit().await?;
            anyhow::Ok(())
        }
        .await;
        if let Err(e) = res {
            tracing::error!(error = %format!("{e:#}"), "could not audit the break of the audit chain");
        }
    }

    /// Sign the head now (auditor or admin). The request is audited by the
    /// event after the checkpoint.
    #[tracing::instrument(skip_all, fields(caller = %who.subject))]
    pub async fn checkpoint_now(&self, who: &Identity) -> AppResult<Checkpoint> {
        let mut tx = self.store.begin().await?;
        let res = async {
            self.require_any(who, &[Role::Auditor, Role::Admin])?;
            let c = match self.checkpoint_head(tx.as_mut()).await? {
                Some(c) => c,
                None => match tx.last_checkpoint().await? {
                    Some(c) => c,
                    None => {
                        return refuse(Code::AuditLogEmpty, "the audit log has no events to sign")
                    }
                },
            };
            let ev = Event::new(
                Action::AuditCheckpoint,
                "audit",
                json!({ "seq": c.seq, "hash": c.hash, "kid": c.kid }),
            );
            Ok(Done::new(c, ev))
        }
        .await;
        let c = self
            .finish(tx, Some(who), Action::AuditCheckpoint, "audit", res)
            .await?;
        self.advance_witness(&c);
        Ok(c)
    }

    /// Signed checkpoints after `after` (auditor). Audited, like every
    /// read of the log.
    #[tracing::instrument(skip_all, fields(caller = %who.subject))]
    pub async fn audit_checkpoints(
        &self,
        who: &Identity,
        after: i64,
        limit: i64,
    ) -> AppResult<Vec<Checkpoint>> {
        let mut tx = self.store.begin().await?;
        let res = async {
            self.require(who, Role::Auditor)?;
            let limit = super::limit_in(limit, PAGE_MAX)?;
            let c = tx.checkpoints(after.max(0), limit).await?;
            let ev = Event::new(
                Action::AuditCheckpoints,
                "audit",
                json!({ "after": after, "limit": limit, "returned": c.len() }),
            );
            Ok(Done::new(c, ev))
        }
        .await;
        self.finish(tx, Some(who), Action::AuditCheckpoints, "audit", res)
            .await
    }

    /// Verify the whole chain on a consistent snapshot, holding no lock, so
    /// writers go on while a long chain is verified; then check it against
    /// the witness kept outside the database. The result is what `/metrics`
    /// reports as the last verification; a break stops writes.
    #[tracing::instrument(skip_all)]
    pub async fn verify_chain(&self) -> AppResult<Verdict> {
        let mut snap = self.store.begin_snapshot().await?;
        let head = snap.audit_head_peek().await?;
        let base = snap.audit_base().await?;
        let (mut verdict, reached) =
            verify_range(snap.as_mut(), self.audit_public_key(), base, head.clone()).await?;
        let witnessed = match self.witness.current() {
            Some(w) if w.seq > 0 => witness_break(snap.as_mut(), &w, head.0).await?,
            _ => None,
        };
        snap.rollback().await?;
        if let Some(b) = witnessed {
            if verdict.first_break.as_ref().is_none_or(|f| b.seq < f.seq) {
                verdict.first_break = Some(b);
            }
            verdict.ok = false;
        }
        self.metrics
            .verified(verdict.ok, verdict.head_seq, self.now_ms());
        match &verdict.first_break {
            Some(b) => {
                tracing::error!(first_break = ?verdict.first_break, "the audit chain does not verify");
                let _ = self.chain_broken(b.clone());
            }
            None => {
                *self.chain_break.lock().unwrap_or_else(|e| e.into_inner()) = None;
                if let Some(c) = reached {
                    self.advance_witness(&c);
                }
            }
        }
        Ok(verdict)
    }

    /// The database's figures for `/metrics`, and the witness.
    pub async fn custody_gauges(&self) -> AppResult<crate::metrics::CustodyGauges> {
        let mut tx = self.store.begin_read().await?;
        let mut g = tx.custody_gauges(self.now_ms()).await?;
        if self.settings.root_watch.is_some() {
            g.watch = Some(tx.watch_gauges().await?);
        }
        tx.rollback().await?;
        g.now_ms = self.now_ms();
        g.witness = self.witness.current();
        g.chain_broken = self.known_break().is_some();
        Ok(g)
    }

    /// Whether the chain can take events: no break known to this process,
    /// and no event recorded past the head (appended outside the service).
    /// `Err` says why, for `/readyz`.
    pub async fn chain_ready(&self) -> AppResult<Result<(), String>> {
        if let Some(b) = self.known_break() {
            return Ok(Err(format!("broken at {}: {}", b.seq, b.reason)));
        }
        let mut tx = self.store.begin_read().await?;
        let head = tx.audit_head_peek().await?;
        let past = tx.audit_seq_after(head.0).await?;
        tx.rollback().await?;
        Ok(match past {
            Some(seq) => Err(format!(
                "broken at {seq}: events after {} are not recorded in the chain head: they were appended outside the service",
                head.0
            )),
            None => Ok(()),
        })
    }

    /// The server's own check of the chain, every `audit.verify_interval`
    /// (and once at start): a failure is audited, and so alerted.
    pub async fn verify_if_due(&self, last: &mut Option<std::time::Instant>) -> anyhow::Result<()> {
        let Some(every) = self.settings.audit_verify_interval else {
            return Ok(());
        };
        if last.is_some_and(|t| t.elapsed() < every) {
            return Ok(());
        }
        *last = Some(std::time::Instant::now());
        let already = self.known_break().is_some();
        let verdict = self
            .verify_chain()
            .await
            .map_err(|e| anyhow::anyhow!("while verifying the audit chain: {e:?}"))?;
        if let (false, Some(b)) = (already, &verdict.first_break) {
            self.report_break(b).await;
        }
        Ok(())
    }

    /// Verify the chain (auditor). Audited; but a broken chain is reported
    /// even when the log can no longer take the `audit.verify` event
    /// (an event appended outside the service blocks every append): hiding
    /// the break would be worse than a read left out of a broken log.
    #[tracing::instrument(skip_all, fields(caller = %who.subject))]
    pub async fn audit_verify(&self, who: &Identity) -> AppResult<Verdict> {
        let checked = async {
            self.require(who, Role::Auditor)?;
            self.verify_chain().await
        }
        .await;
        let tx = self.store.begin().await?;
        match checked {
            Ok(verdict) if !verdict.ok => {
                let res = async {
                    let mut tx = tx;
                    let e = seal_and_insert(
                        tx.as_mut(),
                        self.now_ms(),
                        &who.subject,
                        "success",
                        None,
                        verify_event(&verdict),
                    )
                    .await?;
                    self.enqueue_alerts(tx.as_mut(), &e).await?;
                    tx.commit().await?;
                    anyhow::Ok(())
                }
                .await;
                if let Err(e) = res {
                    tracing::error!(error = %format!("{e:#}"), "the audit.verify event of a broken chain could not be appended");
                }
                Ok(verdict)
            }
            other => {
                let res = other.map(|verdict| {
                    let ev = verify_event(&verdict);
                    Done::new(verdict, ev)
                });
                self.finish(tx, Some(who), Action::AuditVerify, "audit", res)
                    .await
            }
        }
    }
}

fn verify_event(verdict: &Verdict) -> Event {
    Event::new(
        Action::AuditVerify,
        "audit",
        json!({
            "ok": verdict.ok,
            "events_checked": verdict.events_checked,
            "head_seq": verdict.head_seq,
            "first_break": verdict.first_break.as_ref().map(|b| b.seq),
            "signed_through": verdict.signed_through,
        }),
    )
}

impl App {
    #[tracing::instrument(skip_all, fields(caller = %who.subject))]
    pub async fn revoke_token(
        &self,
        who: &Identity,
        jti: &str,
    ) -> AppResult<crate::app::views::RevokedView> {
        let mut tx = self.store.begin().await?;
        let res = async {
            self.require(who, Role::Admin)?;
            if uuid::Uuid::parse_str(jti).is_err() {
                return super::refuse(Code::InvalidJti, "a token id (jti) is a UUID");
            }
            let revoked = tx.revoke_token(jti, self.now_ms(), &who.subject).await?;
            let ev = Event::new(
                Action::TokenRevoke,
                format!("token:{jti}"),
                json!({ "newly_revoked": revoked }),
            );
            Ok(Done::new(
                crate::app::views::RevokedView {
                    jti: jti.into(),
                    revoked: true,
                },
                ev,
            ))
        }
        .await;
        self.finish(
            tx,
            Some(who),
            Action::TokenRevoke,
            &format!("token:{jti}"),
            res,
        )
        .await
    }
}

/// Verify the chain in `tx` from `start` (an event's seq and hash, or the
/// base) to `head`, with every checkpoint after `start` checked against
/// `key`. Returns the verdict and the last valid checkpoint reached.
pub(crate) async fn verify_range(
    tx: &mut dyn Tx,
    key: AuditKey,
    start: (i64, String),
    head: (i64, String),
) -> anyhow::Result<(Verdict, Option<Checkpoint>)> {
    let base = tx.audit_base().await?;
    let mut v = Verifier::starting_at(start.0 + 1, &start.1).with_keys(vec![key]);
    let checkpoints = tx.checkpoints(start.0 - 1, CHECKPOINTS_MAX).await?;
    for c in &checkpoints {
        v.checkpoint(c.clone());
    }
    if start.0 == base.0 {
        v.require_signed_start();
    }
    let mut after = start.0;
    loop {
        let batch = tx.audit_events(after, VERIFY_BATCH).await?;
        let Some(last) = batch.last() else { break };
        after = last.seq;
        batch.iter().for_each(|e| v.push(e));
    }
    let verdict = v.finish(Some(head));
    let reached = verdict
        .signed_through
        .and_then(|s| checkpoints.into_iter().find(|c| c.seq == s));
    Ok((verdict, reached))
}

/// Whether the database still holds what the witness saw: the signed
/// checkpoint itself, and the event it signs with the hash it signs. (An
/// event archived and pruned is vouched for by the base's checkpoint.)
pub(crate) async fn witness_break(
    tx: &mut dyn Tx,
    w: &Checkpoint,
    head_seq: i64,
) -> anyhow::Result<Option<Break>> {
    let base = tx.audit_base().await?;
    if w.seq <= base.0 {
        return Ok(None);
    }
    if head_seq < w.seq {
        return Ok(Some(Break {
            seq: head_seq + 1,
            reason: format!(
                "the log ends at event {head_seq}, but this service witnessed a signed checkpoint of event {}: the log was rolled back",
                w.seq
            ),
        }));
    }
    let held = tx
        .checkpoints(w.seq - 1, 1)
        .await?
        .into_iter()
        .find(|c| c.seq == w.seq);
    if held.as_ref() != Some(w) {
        return Ok(Some(Break {
            seq: w.seq,
            reason: format!(
                "the signed checkpoint of event {}, which this service witnessed outside the database, is missing from it or differs: checkpoints were erased or rolled back",
                w.seq
            ),
        }));
    }
    if tx.audit_hash_at(w.seq).await?.as_deref() != Some(w.hash.as_str()) {
        return Ok(Some(Break {
            seq: w.seq,
            reason: format!(
                "event {} does not have the hash this service witnessed: the log was rewritten at or before event {}",
                w.seq, w.seq
            ),
        }));
    }
    Ok(None)
}

/// The refusal of every write once the chain is known to be broken.
pub(crate) fn chain_broken_error(b: &Break) -> AppError {
    AppError::Unavailable {
        code: Code::AuditChainBroken,
        message: format!(
            "the audit log is broken at event {}: {}. Nothing can be recorded until an operator restores the log (see `breakglass audit verify`)",
            b.seq, b.reason
        ),
    }
}

/// An event could not be appended because one is already recorded past
/// the chain head: it was appended outside the service.
#[derive(Debug, thiserror::Error)]
#[error("event {seq} is already in the log, past the chain head at {head}: it was appended outside the service")]
pub struct AppendedOutside {
    pub seq: i64,
    pub head: i64,
}

/// Sequence, hash and insert one event after the chain head (locked on
/// PostgreSQL until the transaction ends). The one place events are sealed.
pub async fn seal_and_insert(
    tx: &mut dyn crate::store::Tx,
    now_ms: i64,
    actor: &str,
    outcome: &str,
    code: Option<&str>,
    ev: Event,
) -> anyhow::Result<AuditEvent> {
    let (seq, prev) = tx.audit_head().await?;
    let mut details = ev.details;
    // The HTTP request that caused the event, to join it with the logs.
    if let (Some(ctx), Some(map)) = (crate::context::current(), details.as_object_mut()) {
        map.insert("request_id".into(), ctx.id.into());
    }
    let e = crate::crypto::chain::seal(
        AuditEvent {
            seq: seq + 1,
            ts_ms: now_ms,
            actor: actor.into(),
            action: ev.action.as_str().into(),
            target: ev.target,
            outcome: outcome.into(),
            code: code.map(str::to_owned),
            details,
            prev_hash: String::new(),
            hash: String::new(),
        },
        &prev,
    )
    .map_err(|e| anyhow::anyhow!("while sealing an audit event: {e}"))?;
    match tx.insert_audit(&e).await {
        // The head is locked: only a row written around the service can
        // hold the next sequence number or link to the head.
        Err(crate::store::StoreError::Conflict(_)) => Err(AppendedOutside {
            seq: e.seq,
            head: seq,
        }
        .into()),
        other => other.map(|()| e).map_err(Into::into),
    }
}

impl App {
    /// Mint a token with the data directory's key, and audit it: a token is
    /// the one thing the host operator can create without the API.
    #[tracing::instrument(skip_all, fields(subject))]
    pub async fn issue_host_token(
        &self,
        actor: &str,
        subject: &str,
        roles: &[crate::domain::Role],
        ttl_secs: i64,
    ) -> anyhow::Result<(String, crate::auth::Claims)> {
        let (token, claims) = self
            .tokens
            .issue(subject, roles, ttl_secs, self.now_ms() / 1000)?;
        let mut tx = self.store.begin().await?;
        let ev = Event::new(
            Action::TokenIssue,
            format!("token:{}", claims.jti),
            json!({
                "subject": claims.sub,
                "roles": claims.roles,
                "expires_at": crate::clock::rfc3339(claims.exp * 1000),
            }),
        );
        self.append(tx.as_mut(), actor, "success", None, ev).await?;
        tx.commit().await?;
        Ok((token, claims))
    }
}

/// Sign `(seq, hash, ts_ms)` with the audit key.
pub fn sign_checkpoint(
    key: &crate::crypto::signing::SigningKey,
    seq: i64,
    hash: &str,
    ts_ms: i64,
) -> Checkpoint {
    use base64::Engine;
    let kid = key.kid();
    let sig = key.sign(&Checkpoint::signed_bytes(seq, hash, ts_ms, &kid));
    Checkpoint {
        seq,
        hash: hash.into(),
        ts_ms,
        kid,
        signature: base64::engine::general_purpose::STANDARD.encode(sig),
    }
}

fn filter_json(f: &AuditFilter) -> serde_json::Value {
    json!({
        "since_ms": f.since_ms,
        "until_ms": f.until_ms,
        "actor": f.actor,
        "action": f.action,
        "outcome": f.outcome,
        "credential": f.credential,
    })
}

/// The header line of a JSON Lines export.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ExportHeader {
    pub record: String,
    pub format: String,
    pub exported_at: String,
    /// The export holds the events after this one...
    pub after_seq: i64,
    /// ...whose hash the first exported event links to.
    pub prev_hash: String,
    /// The keys that sign the checkpoints.
    pub audit_keys: Vec<AuditKey>,
}

/// What an export holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Jsonl,
    Ocsf,
}

/// Stream an export (auditor; audited before it starts, so the export
/// holds its own `audit.export` event). Lines go through a bounded channel
/// as they are read from one consistent snapshot.
#[tracing::instrument(skip_all)]
pub async fn audit_export(
    app: Arc<App>,
    who: &Identity,
    format: ExportFormat,
    after: Option<i64>,
    since_ms: Option<i64>,
) -> AppResult<tokio::sync::mpsc::Receiver<Result<Vec<u8>, std::io::Error>>> {
    let mut tx = app.store.begin().await?;
    let res = async {
        app.require(who, Role::Auditor)?;
        let after = match (after, since_ms) {
            (Some(_), Some(_)) => {
                return refuse_as(422, Code::InvalidQuery, "give either after or since, not both")
            }
            (Some(a), None) => a.max(0),
            (None, Some(t)) => tx.first_seq_since(t).await?.map_or(i64::MAX, |s| s - 1),
            (None, None) => 0,
        };
        let ev = Event::new(
            Action::AuditExport,
            "audit",
            json!({ "format": match format { ExportFormat::Jsonl => "jsonl", ExportFormat::Ocsf => "ocsf" }, "after": after, "since_ms": since_ms }),
        );
        Ok(Done::new(after, ev))
    }
    .await;
    let after = app
        .finish(tx, Some(who), Action::AuditExport, "audit", res)
        .await?;
    let (send, recv) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        if let Err(e) = write_export(&app, format, after, &send).await {
            tracing::error!(error = %e, "audit export failed part-way");
            let _ = send
                .send(Err(std::io::Error::other("the export failed part-way")))
                .await;
        }
    });
    Ok(recv)
}

async fn write_export(
    app: &App,
    format: ExportFormat,
    after: i64,
    send: &tokio::sync::mpsc::Sender<Result<Vec<u8>, std::io::Error>>,
) -> anyhow::Result<()> {
    let mut snap = app.store.begin_snapshot().await?;
    let head = snap.audit_head_peek().await?;
    let base = snap.audit_base().await?;
    let after = after.min(head.0).max(base.0);
    let prev_hash = snap
        .audit_hash_at(after)
        .await?
        .unwrap_or_else(|| "unknown".into());
    // From the checkpoint of the event the export continues from, if any.
    let mut checkpoints: std::collections::BTreeMap<i64, Checkpoint> = snap
        .checkpoints(after - 1, CHECKPOINTS_MAX)
        .await?
        .into_iter()
        .map(|c| (c.seq, c))
        .collect();
    let mut buf = Vec::with_capacity(64 * 1024);
    if format == ExportFormat::Jsonl {
        let header = ExportHeader {
            record: "header".into(),
            format: EXPORT_FORMAT.into(),
            exported_at: crate::clock::rfc3339(app.now_ms()),
            after_seq: after,
            prev_hash,
            audit_keys: vec![app.audit_public_key()],
        };
        serde_json::to_writer(&mut buf, &header)?;
        buf.push(b'\n');
        if let Some(c) = checkpoints.remove(&after) {
            let mut v = serde_json::to_value(&c)?;
            v["record"] = json!("checkpoint");
            serde_json::to_writer(&mut buf, &v)?;
            buf.push(b'\n');
        }
    } else {
        checkpoints.remove(&after);
    }
    let mut cursor = after;
    loop {
        let batch = snap.audit_events(cursor, VERIFY_BATCH).await?;
        let Some(last) = batch.last() else { break };
        cursor = last.seq;
        for e in &batch {
            match format {
                ExportFormat::Jsonl => {
                    let mut v = serde_json::to_value(e)?;
                    v["record"] = json!("event");
                    serde_json::to_writer(&mut buf, &v)?;
                    buf.push(b'\n');
                    if let Some(c) = checkpoints.remove(&e.seq) {
                        let mut v = serde_json::to_value(&c)?;
                        v["record"] = json!("checkpoint");
                        serde_json::to_writer(&mut buf, &v)?;
                        buf.push(b'\n');
                    }
                }
                ExportFormat::Ocsf => {
                    serde_json::to_writer(&mut buf, &crate::ocsf::api_activity(e))?;
                    buf.push(b'\n');
                }
            }
            if buf.len() >= 60 * 1024 {
                let chunk = std::mem::replace(&mut buf, Vec::with_capacity(64 * 1024));
                if send.send(Ok(chunk)).await.is_err() {
                    snap.rollback().await?;
                    return Ok(()); // the client went away
                }
            }
        }
    }
    snap.rollback().await?;
    if format == ExportFormat::Jsonl {
        // Checkpoints of events this snapshot does not hold (a truncated
        // log) are exported too, so a verifier sees what is missing.
        for c in checkpoints.into_values() {
            let mut v = serde_json::to_value(&c)?;
            v["record"] = json!("checkpoint");
            serde_json::to_writer(&mut buf, &v)?;
            buf.push(b'\n');
        }
        serde_json::to_writer(
            &mut buf,
            &json!({ "record": "head", "seq": head.0, "hash": head.1 }),
        )?;
        buf.push(b'\n');
    }
    let _ = send.send(Ok(buf)).await;
    Ok(())
}

/// What `audit archive` is asked to do.
pub struct Archive<'a> {
    /// The last event to archive.
    pub through: i64,
    pub out: &'a std::path::Path,
    /// Delete the archived events.
    pub prune: bool,
}

/// What `audit archive` did.
#[derive(Debug, serde::Serialize)]
pub struct ArchiveReport {
    pub from_seq: i64,
    pub through_seq: i64,
    pub through_hash: String,
    pub events: i64,
    pub file_sha256: String,
    pub pruned: bool,
}

impl App {
    /// Retention (host operator): write the events after the current base up
    /// to `through` to `out` as a verifiable export (ending at a signed
    /// checkpoint of `through`, made now if there is none), verify the file as
    /// written, and, with `prune`, delete those events and record the new base
    /// in one audited transaction. The live log stays verifiable: it continues
    /// from `through`'s hash, which the kept checkpoint vouches for.
    #[tracing::instrument(skip_all)]
    pub async fn archive(&self, actor: &str, what: &Archive<'_>) -> anyhow::Result<ArchiveReport> {
        let (store, key, now_ms) = (self.store.as_ref(), self.audit_key.as_ref(), self.now_ms());
        // What the audit sink has received: pruning must not lose the rest.
        let sink_cursor = match &self.settings.audit_sink {
            None => None,
            Some(_) => {
                let mut tx = store.begin().await?;
                let c = tx.sink_cursor(super::audit_ship::SINK).await?;
                tx.commit().await?;
                Some(c.events_through)
            }
        };
        use sha2::{Digest, Sha256};
        let (through, out, prune) = (what.through, what.out, what.prune);
        use std::io::Write;
        let public = AuditKey::new(key.public_key());
        // A checkpoint of the cut, made in a write transaction if missing.
        let (base, hash) = {
            let mut tx = store.begin().await?;
            let base = tx.audit_base().await?;
            let head = tx.audit_head_peek().await?;
            anyhow::ensure!(
                through > base.0 && through <= head.0,
                "--through must be an event after {} (already archived) and at most {} (the last event)",
                base.0,
                head.0
            );
            let Some(hash) = tx.audit_hash_at(through).await? else {
                anyhow::bail!("event {through} is not in the log");
            };
            let have = tx
                .checkpoints(through - 1, 1)
                .await?
                .into_iter()
                .any(|c| c.seq == through && c.hash == hash);
            if !have {
                tx.insert_checkpoint(&sign_checkpoint(key, through, &hash, now_ms))
                    .await?;
            }
            tx.commit().await?;
            (base, hash)
        };
        // The archive: an export of (base, through], from one snapshot.
        let mut snap = store.begin_snapshot().await?;
        let mut cps: std::collections::BTreeMap<i64, Checkpoint> = snap
            .checkpoints(base.0 - 1, CHECKPOINTS_MAX)
            .await?
            .into_iter()
            .filter(|c| c.seq <= through)
            .map(|c| (c.seq, c))
            .collect();
        let mut f = crate::crypto::private_file::create_private_file(out)?;
        let mut hasher = Sha256::new();
        let mut write = |v: &serde_json::Value| -> anyhow::Result<()> {
            let mut line = serde_json::to_vec(v)?;
            line.push(b'\n');
            hasher.update(&line);
            f.write_all(&line)?;
            Ok(())
        };
        write(&serde_json::to_value(ExportHeader {
            record: "header".into(),
            format: EXPORT_FORMAT.into(),
            exported_at: crate::clock::rfc3339(now_ms),
            after_seq: base.0,
            prev_hash: base.1.clone(),
            audit_keys: vec![public.clone()],
        })?)?;
        let record = |c: &Checkpoint| -> anyhow::Result<serde_json::Value> {
            let mut v = serde_json::to_value(c)?;
            v["record"] = json!("checkpoint");
            Ok(v)
        };
        if let Some(c) = cps.remove(&base.0) {
            write(&record(&c)?)?;
        }
        let mut cursor = base.0;
        let mut events = 0i64;
        while cursor < through {
            let batch = snap
                .audit_events(cursor, VERIFY_BATCH.min(through - cursor))
                .await?;
            let Some(last) = batch.last() else { break };
            cursor = last.seq;
            for e in &batch {
                let mut v = serde_json::to_value(e)?;
                v["record"] = json!("event");
                write(&v)?;
                events += 1;
                if let Some(c) = cps.remove(&e.seq) {
                    write(&record(&c)?)?;
                }
            }
        }
        snap.rollback().await?;
        write(&json!({ "record": "head", "seq": through, "hash": hash }))?;
        f.sync_all()?;
        drop(f);
        let file_sha256 = hex::encode(hasher.finalize());
        // Read the file back and verify it before anything is deleted.
        let check = crate::crypto::chain::verify_jsonl(
            std::io::BufReader::new(std::fs::File::open(out)?),
            Some(vec![public]),
            |_| {},
        )
        .map_err(|e| anyhow::anyhow!("the archive does not read back: {e}"))?;
        anyhow::ensure!(
            check.verdict.ok && check.verdict.signed_through == Some(through),
            "the archive does not verify ({:?}); nothing was pruned",
            check.verdict.first_break
        );
        if prune {
            if let Some(delivered) = sink_cursor {
                anyhow::ensure!(
                    delivered >= through,
                    "the audit sink has received events up to {delivered} only: pruning up to {through} would lose events it has not shipped"
                );
            }
            let mut tx = store.begin().await?;
            anyhow::ensure!(
                tx.prune_audit(through, &hash).await?,
                "event {through} changed while archiving; nothing was pruned"
            );
            self.append(
                tx.as_mut(),
                actor,
                "success",
                None,
                Event::new(
                    Action::AuditPrune,
                    "audit",
                    json!({ "from": base.0 + 1, "through": through, "hash": hash, "events": events, "archive_sha256": file_sha256 }),
                ),
            )
            .await?;
            tx.commit().await?;
        }
        Ok(ArchiveReport {
            from_seq: base.0 + 1,
            through_seq: through,
            through_hash: hash,
            events,
            file_sha256,
            pruned: prune,
        })
    }
}
