//! The background work of a server process, one round at a time: refused
//! authentications summarized, checkpoints signed when due, audit events
//! shipped, alerts delivered, key rotations run, the chain verified when
//! due. The server runs a round every second; a test steps rounds itself,
//! so that it waits for exactly the work it asserts on.

use std::time::Instant;

use super::App;

/// What the rounds remember between them.
#[derive(Debug, Default)]
pub struct Ticker {
    last_verified: Option<Instant>,
    rounds: u64,
}

impl Ticker {
    /// Rounds run so far.
    pub fn rounds(&self) -> u64 {
        self.rounds
    }
}

impl App {
    /// One round of the background work. A failing step is logged and
    /// retried at the next round; the others still run.
    pub async fn tick(&self, t: &mut Ticker) {
        if let Err(e) = self.flush_auth_refusals(false).await {
            tracing::warn!(error = %e, "could not audit the refused authentications; will retry");
        }
        if let Err(e) = self.checkpoint_if_due().await {
            tracing::warn!(error = %e, "could not sign an audit checkpoint; will retry");
        }
        if let Err(e) = self.ship_audit_all().await {
            tracing::warn!(error = %e, "could not ship audit events; will retry");
        }
        if let Err(e) = self.deliver_alerts().await {
            tracing::warn!(error = %e, "could not deliver alerts; will retry");
        }
        if let Err(e) = self.rotation_round().await {
            tracing::warn!(error = %e, "rotation round failed; will retry");
        }
        if let Err(e) = self.verify_if_due(&mut t.last_verified).await {
            tracing::warn!(error = %format!("{e:#}"), "could not verify the audit chain; will retry");
        }
        t.rounds += 1;
        if t.rounds % 60 == 0 {
            self.limiters.forget_idle();
            if let Err(e) = self.purge_expired().await {
                tracing::warn!(error = %e, "could not purge expired ceremonies and sessions; will retry");
            }
        }
    }

    /// A stopping replica hands back the delivery leases it holds, so that
    /// another replica delivers at once instead of when they run out.
    pub async fn release_leases(&self) -> super::AppResult<u64> {
        let mut tx = self.store.begin().await?;
        let n = tx.release_alert_leases(&self.replica).await?
            + tx.release_sink_leases(&self.replica).await?;
        tx.commit().await?;
        Ok(n)
    }

    /// Delete what can no longer be used: WebAuthn ceremonies an hour past
    /// their end (a replay of one is named until then), and console
    /// sessions a day past their absolute deadline. Their use is in the
    /// audit log.
    async fn purge_expired(&self) -> super::AppResult<()> {
        let now = self.now_ms();
        let mut tx = self.store.begin().await?;
        let ceremonies = tx.purge_ceremonies(now - 3600 * 1000).await?;
        let sessions = tx.purge_console_sessions(now - 24 * 3600 * 1000).await?;
        tx.commit().await?;
        if ceremonies + sessions > 0 {
            tracing::debug!(
                ceremonies,
                sessions,
                "purged expired ceremonies and console sessions"
            );
        }
        Ok(())
    }
}
