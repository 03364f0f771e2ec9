//! Console sessions: created at sign-in, kept alive by use, ended by
//! sign-out, revocation or their deadlines.

use async_trait::async_trait;

use super::sql::{Row, SqlTx};
use super::*;

#[async_trait]
pub trait SessionStore: Send {
    /// Refused by the table if `idle_until` is past `expires_at`.
    async fn insert_console_session(&mut self, s: &ConsoleSessionRow) -> Result<()>;
    /// One session, live or not.
    async fn console_session(&mut self, id_hash: &str) -> Result<Option<ConsoleSessionRow>>;
    /// Record a use at `at` and move the idle deadline to `idle_until`
    /// (never past the absolute one), only if the session is live at `at`.
    async fn touch_console_session(
        &mut self,
        id_hash: &str,
        at: i64,
        idle_until: i64,
    ) -> Result<bool>;
    /// End one live session (sign-out); whether it was live.
    async fn end_console_session(&mut self, id_hash: &str, at: i64, by: &str) -> Result<bool>;
    /// End every live session of `subject` (an admin's revocation); how many.
    async fn end_console_sessions_of(&mut self, subject: &str, at: i64, by: &str) -> Result<u64>;
    /// The live sessions of `subject`, newest first.
    async fn console_sessions_of(
        &mut self,
        subject: &str,
        now: i64,
    ) -> Result<Vec<ConsoleSessionRow>>;
    /// Delete the sessions whose absolute deadline is before `before`; how many.
    async fn purge_console_sessions(&mut self, before: i64) -> Result<u64>;
    async fn insert_sign_in_link(&mut self, l: &SignInLinkRow) -> Result<()>;
    /// Use a link once: mark it used at `at` and return it, only if it was
    /// unused and unexpired at `at`.
    async fn take_sign_in_link(&mut self, id_hash: &str, at: i64) -> Result<Option<SignInLinkRow>>;
    /// One link, used or not (to say why it no longer signs in).
    async fn sign_in_link(&mut self, id_hash: &str) -> Result<Option<SignInLinkRow>>;
    /// Record the use of a provider's return; `false` if it was used before.
    async fn use_oidc_return(
        &mut self,
        state_hash: &str,
        issuer: &str,
        at: i64,
        expires_at: i64,
    ) -> Result<bool>;
}

/// The liveness test, on the time bound as `$1`: not ended, and before both
/// deadlines (`ConsoleSessionRow::is_live` in SQL). Every statement that
/// uses or ends a session holds it, so an ended or expired session is never
/// changed.
macro_rules! live {
    () => {
        "ended_at IS NULL AND idle_until > $1 AND expires_at > $1"
    };
}

/// End the live sessions that `sql` selects by its `$3`; how many.
async fn end_sessions(
    tx: &mut SqlTx,
    sql: &'static str,
    key: &str,
    at: i64,
    by: &str,
) -> Result<u64> {
    let r = tx.sql(sql).bind(at).bind(by).bind(key).execute(tx).await?;
    Ok(r.rows_affected())
}

#[async_trait]
impl SessionStore for SqlTx {
    async fn insert_console_session(&mut self, s: &ConsoleSessionRow) -> Result<()> {
        self.sql(
            "INSERT INTO console_sessions (id_hash, subject, identity, method, created_at, last_seen_at, idle_until, expires_at, ended_at, ended_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&s.id_hash)
        .bind(&s.subject)
        .bind(&s.identity)
        .bind(s.method.as_str())
        .bind(s.created_at)
        .bind(s.last_seen_at)
        .bind(s.idle_until)
        .bind(s.expires_at)
        .bind(s.ended_at)
        .bind(&s.ended_by)
        .execute(self)
        .await?;
        Ok(())
    }

    async fn console_session(&mut self, id_hash: &str) -> Result<Option<ConsoleSessionRow>> {
        let row = self
            .sql("SELECT * FROM console_sessions WHERE id_hash = $1")
            .bind(id_hash)
            .fetch_optional(self)
            .await?;
        row.as_ref().map(console_session_from).transpose()
    }

    async fn touch_console_session(
        &mut self,
        id_hash: &str,
        at: i64,
        idle_until: i64,
    ) -> Result<bool> {
        let r = self
            .sql(concat!(
                "UPDATE console_sessions SET last_seen_at = $1, ",
                "idle_until = CASE WHEN $2 < expires_at THEN $2 ELSE expires_at END ",
                "WHERE id_hash = $3 AND ",
                live!()
            ))
            .bind(at)
            .bind(idle_until)
            .bind(id_hash)
            .execute(self)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn end_console_session(&mut self, id_hash: &str, at: i64, by: &str) -> Result<bool> {
        let sql = concat!(
            "UPDATE console_sessions SET ended_at = $1, ended_by = $2 WHERE id_hash = $3 AND ",
            live!()
        );
        Ok(end_sessions(self, sql, id_hash, at, by).await? == 1)
    }

    async fn end_console_sessions_of(&mut self, subject: &str, at: i64, by: &str) -> Result<u64> {
        let sql = concat!(
            "UPDATE console_sessions SET ended_at = $1, ended_by = $2 WHERE subject = $3 AND ",
            live!()
        );
        end_sessions(self, sql, subject, at, by).await
    }

    async fn console_sessions_of(
        &mut self,
        subject: &str,
        now: i64,
    ) -> Result<Vec<ConsoleSessionRow>> {
        let rows = self
            .sql(concat!(
                "SELECT * FROM console_sessions WHERE subject = $2 AND ",
                live!(),
                " ORDER BY created_at DESC, id_hash"
            ))
            .bind(now)
            .bind(subject)
            .fetch_all(self)
            .await?;
        rows.iter().map(console_session_from).collect()
    }

    async fn purge_console_sessions(&mut self, before: i64) -> Result<u64> {
        let r = self
            .sql("DELETE FROM console_sessions WHERE expires_at < $1")
            .bind(before)
            .execute(self)
            .await?;
        Ok(r.rows_affected())
    }

    async fn insert_sign_in_link(&mut self, l: &SignInLinkRow) -> Result<()> {
        self.sql(
            "INSERT INTO sign_in_links (id_hash, jti, subject, roles, created_at, created_by, expires_at, used_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&l.id_hash)
        .bind(&l.jti)
        .bind(&l.subject)
        .bind(&l.roles)
        .bind(l.created_at)
        .bind(&l.created_by)
        .bind(l.expires_at)
        .bind(l.used_at)
        .execute(self)
        .await?;
        Ok(())
    }

    async fn take_sign_in_link(&mut self, id_hash: &str, at: i64) -> Result<Option<SignInLinkRow>> {
        let row = self
            .sql(
                "UPDATE sign_in_links SET used_at = $1 \
                 WHERE id_hash = $2 AND used_at IS NULL AND expires_at > $1 RETURNING *",
            )
            .bind(at)
            .bind(id_hash)
            .fetch_optional(self)
            .await?;
        row.as_ref().map(sign_in_link_from).transpose()
    }

    async fn sign_in_link(&mut self, id_hash: &str) -> Result<Option<SignInLinkRow>> {
        let row = self
            .sql("SELECT * FROM sign_in_links WHERE id_hash = $1")
            .bind(id_hash)
            .fetch_optional(self)
            .await?;
        row.as_ref().map(sign_in_link_from).transpose()
    }

    async fn use_oidc_return(
        &mut self,
        state_hash: &str,
        issuer: &str,
        at: i64,
        expires_at: i64,
    ) -> Result<bool> {
        let r = self
            .sql(
                "INSERT INTO oidc_returns (state_hash, issuer, used_at, expires_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (state_hash) DO NOTHING",
            )
            .bind(state_hash)
            .bind(issuer)
            .bind(at)
            .bind(expires_at)
            .execute(self)
            .await?;
        Ok(r.rows_affected() == 1)
    }
}

fn sign_in_link_from(r: &Row) -> Result<SignInLinkRow> {
    Ok(SignInLinkRow {
        id_hash: r.try_get("id_hash")?,
        jti: r.try_get("jti")?,
        subject: r.try_get("subject")?,
        roles: r.try_get("roles")?,
        created_at: r.try_get("created_at")?,
        created_by: r.try_get("created_by")?,
        expires_at: r.try_get("expires_at")?,
        used_at: r.try_get("used_at")?,
    })
}

fn console_session_from(r: &Row) -> Result<ConsoleSessionRow> {
    Ok(ConsoleSessionRow {
        id_hash: r.try_get("id_hash")?,
        subject: r.try_get("subject")?,
        identity: r.try_get("identity")?,
        method: r.state("method")?,
        created_at: r.try_get("created_at")?,
        last_seen_at: r.try_get("last_seen_at")?,
        idle_until: r.try_get("idle_until")?,
        expires_at: r.try_get("expires_at")?,
        ended_at: r.try_get("ended_at")?,
        ended_by: r.try_get("ended_by")?,
    })
}
