//! Reading and verifying the audit log. Reads of the log are themselves
//! audited.

use serde_json::json;

use super::{App, AppResult, Done, Event};
use crate::auth::Identity;
use crate::crypto::chain::{AuditEvent, Verdict, Verifier};
use crate::domain::Role;

pub const PAGE_MAX: i64 = 1000;
const VERIFY_BATCH: i64 = 5000;

impl App {
    pub async fn audit_list(
        &self,
        who: &Identity,
        after: i64,
        limit: i64,
    ) -> AppResult<Vec<AuditEvent>> {
        let limit = limit.clamp(1, PAGE_MAX);
        let mut tx = self.store.begin().await?;
        let res = async {
            self.require(who, Role::Auditor)?;
            let events = tx.audit_events(after.max(0), limit).await?;
            let ev = Event::new(
                "audit.list",
                "audit",
                json!({ "after": after, "limit": limit, "returned": events.len() }),
            );
            Ok(Done::new(events, ev))
        }
        .await;
        self.finish(tx, Some(who), "audit.list", "audit", res).await
    }

    pub async fn audit_verify(&self, who: &Identity) -> AppResult<Verdict> {
        // Check on a consistent snapshot, holding no lock, so writers go on
        // while a long chain is verified; then record the verification.
        let checked = async {
            self.require(who, Role::Auditor)?;
            let mut snap = self.store.begin_snapshot().await?;
            let head = snap.audit_head_peek().await?;
            let mut v = Verifier::new();
            let mut after = 0;
            loop {
                let batch = snap.audit_events(after, VERIFY_BATCH).await?;
                let Some(last) = batch.last() else { break };
                after = last.seq;
                batch.iter().for_each(|e| v.push(e));
            }
            snap.rollback().await?;
            Ok(v.finish(Some(head)))
        }
        .await;
        let tx = self.store.begin().await?;
        let res = checked.map(|verdict: Verdict| {
            let ev = Event::new(
                "audit.verify",
                "audit",
                json!({
                    "ok": verdict.ok,
                    "events_checked": verdict.events_checked,
                    "head_seq": verdict.head_seq,
                    "first_break": verdict.first_break.as_ref().map(|b| b.seq),
                }),
            );
            if !verdict.ok {
                tracing::error!(first_break = ?verdict.first_break, "the audit chain does not verify");
            }
            Done::new(verdict, ev)
        });
        self.finish(tx, Some(who), "audit.verify", "audit", res)
            .await
    }
}

impl App {
    pub async fn revoke_token(
        &self,
        who: &Identity,
        jti: &str,
    ) -> AppResult<crate::app::views::RevokedView> {
        let mut tx = self.store.begin().await?;
        let res = async {
            self.require(who, Role::Admin)?;
            if uuid::Uuid::parse_str(jti).is_err() {
                return super::refuse(422, "invalid_jti", "a token id (jti) is a UUID");
            }
            let revoked = tx.revoke_token(jti, self.now_ms(), &who.subject).await?;
            let ev = Event::new(
                "token.revoke",
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
        self.finish(tx, Some(who), "token.revoke", &format!("token:{jti}"), res)
            .await
    }
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
    let e = crate::crypto::chain::seal(
        AuditEvent {
            seq: seq + 1,
            ts_ms: now_ms,
            actor: actor.into(),
            action: ev.action.into(),
            target: ev.target,
            outcome: outcome.into(),
            code: code.map(str::to_owned),
            details: ev.details,
            prev_hash: String::new(),
            hash: String::new(),
        },
        &prev,
    )
    .map_err(|e| anyhow::anyhow!("while sealing an audit event: {e}"))?;
    tx.insert_audit(&e).await?;
    Ok(e)
}

/// Append one successful event inside `tx` (for work done outside the
/// server: the host operator's `token issue`, `keys rewrap`, recovery).
pub async fn append_with(
    tx: &mut dyn crate::store::Tx,
    now_ms: i64,
    actor: &str,
    ev: Event,
) -> anyhow::Result<()> {
    seal_and_insert(tx, now_ms, actor, "success", None, ev)
        .await
        .map(|_| ())
}

/// Append a refused attempt inside `tx` (for work outside the server).
pub async fn append_refusal(
    tx: &mut dyn crate::store::Tx,
    now_ms: i64,
    actor: &str,
    code: &str,
    ev: Event,
) -> anyhow::Result<()> {
    seal_and_insert(tx, now_ms, actor, "refused", Some(code), ev)
        .await
        .map(|_| ())
}

/// Append one event outside the server (the host operator's `token issue`).
pub async fn append_standalone(
    store: &dyn crate::store::Store,
    now_ms: i64,
    actor: &str,
    ev: Event,
) -> anyhow::Result<()> {
    let mut tx = store.begin().await?;
    append_with(tx.as_mut(), now_ms, actor, ev).await?;
    tx.commit().await?;
    Ok(())
}
