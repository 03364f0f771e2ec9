//! The root watch: the root sessions this service opened, how far each
//! CloudTrail log prefix has been read, every file handled, the root
//! activity found and the findings of activity nothing accounts for.

use async_trait::async_trait;

use super::sql::{Row, SqlTx};
use super::*;
use crate::metrics::WatchGauges;

/// A root session this service opened (`sts:AssumeRoot`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokeredSessionRow {
    pub key_id: String,
    pub account_id: String,
    /// `release` or `posture`.
    pub purpose: String,
    pub request_id: Option<String>,
    pub opened_by: String,
    pub opened_at: i64,
    pub expires_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrailCursorRow {
    pub prefix: String,
    pub last_key: String,
    pub last_file_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrailFileRow {
    pub file_key: String,
    pub prefix: String,
    /// `read` or `rejected`.
    pub status: String,
    pub events: i64,
    pub root_events: i64,
    pub error: Option<String>,
    pub file_at: Option<i64>,
    pub read_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootActivityRow {
    pub event_id: String,
    pub file_key: String,
    pub account_id: String,
    pub kind: String,
    pub event_name: String,
    pub at_ms: i64,
    pub request_id: Option<String>,
    pub session_key_id: Option<String>,
    pub finding_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootFindingRow {
    pub id: String,
    pub episode: String,
    pub account_id: String,
    pub kind: String,
    /// JSON: the first event (`trail::RootEvent`).
    pub summary: String,
    pub first_at: i64,
    pub last_at: i64,
    pub events: i64,
    pub opened_at: i64,
    pub acknowledged_at: Option<i64>,
    pub acknowledged_by: Option<String>,
    pub acknowledgement: Option<String>,
}

/// The release of a credential of an account, as the watch matches to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseOfAccount {
    pub request_id: String,
    pub requester: String,
    pub credential: String,
    pub released_at: i64,
}

#[async_trait]
pub trait WatchStore: Send {
    async fn insert_brokered_session(&mut self, s: &BrokeredSessionRow) -> Result<()>;
    async fn brokered_session(&mut self, key_id: &str) -> Result<Option<BrokeredSessionRow>>;
    /// Hold the watch for `holder` until `until`, if nobody else holds it
    /// at `now`.
    async fn claim_trail_lease(&mut self, holder: &str, now: i64, until: i64) -> Result<bool>;
    async fn release_trail_lease(&mut self, holder: &str) -> Result<()>;
    async fn trail_cursors(&mut self) -> Result<Vec<TrailCursorRow>>;
    /// Move a prefix's cursor forward to `key` (never back).
    async fn advance_trail_cursor(
        &mut self,
        prefix: &str,
        key: &str,
        file_at: i64,
        now: i64,
    ) -> Result<()>;
    /// The files of `prefix` after `after` already handled.
    async fn handled_trail_files(&mut self, prefix: &str, after: &str) -> Result<Vec<String>>;
    async fn trail_file_handled(&mut self, key: &str) -> Result<bool>;
    /// Record a file as handled; `false` if it already was (by another
    /// replica, or before a restart).
    async fn insert_trail_file(&mut self, f: &TrailFileRow) -> Result<bool>;
    async fn trail_files(&mut self, status: Option<&str>, limit: i64) -> Result<Vec<TrailFileRow>>;
    async fn root_activity_seen(&mut self, event_id: &str) -> Result<bool>;
    /// Record an event; `false` if its id was recorded before (CloudTrail
    /// delivers an event twice, now and then).
    async fn insert_root_activity(&mut self, a: &RootActivityRow) -> Result<bool>;
    /// The latest release of a credential of `account_id` at or before
    /// `at`, and no older than `window_ms`.
    async fn release_covering(
        &mut self,
        account_id: &str,
        at: i64,
        window_ms: i64,
    ) -> Result<Option<ReleaseOfAccount>>;
    async fn open_root_finding(&mut self, episode: &str) -> Result<Option<RootFindingRow>>;
    async fn insert_root_finding(&mut self, f: &RootFindingRow) -> Result<()>;
    /// One more event of an open finding, at `at`.
    async fn touch_root_finding(&mut self, id: &str, at: i64) -> Result<()>;
    async fn root_findings(&mut self, open_only: bool, limit: i64) -> Result<Vec<RootFindingRow>>;
    async fn root_finding(&mut self, id: &str) -> Result<Option<RootFindingRow>>;
    /// Acknowledge an open finding; `false` if it was not open.
    async fn acknowledge_root_finding(
        &mut self,
        id: &str,
        by: &str,
        why: &str,
        at: i64,
    ) -> Result<bool>;
    async fn watch_gauges(&mut self) -> Result<WatchGauges>;
}

fn session_from(r: &Row) -> Result<BrokeredSessionRow> {
    Ok(BrokeredSessionRow {
        key_id: r.try_get("key_id")?,
        account_id: r.try_get("account_id")?,
        purpose: r.try_get("purpose")?,
        request_id: r.try_get("request_id")?,
        opened_by: r.try_get("opened_by")?,
        opened_at: r.try_get("opened_at")?,
        expires_at: r.try_get("expires_at")?,
    })
}

fn file_from(r: &Row) -> Result<TrailFileRow> {
    Ok(TrailFileRow {
        file_key: r.try_get("file_key")?,
        prefix: r.try_get("prefix")?,
        status: r.try_get("status")?,
        events: r.try_get("events")?,
        root_events: r.try_get("root_events")?,
        error: r.try_get("error")?,
        file_at: r.try_get("file_at")?,
        read_at: r.try_get("read_at")?,
    })
}

fn finding_from(r: &Row) -> Result<RootFindingRow> {
    Ok(RootFindingRow {
        id: r.try_get("id")?,
        episode: r.try_get("episode")?,
        account_id: r.try_get("account_id")?,
        kind: r.try_get("kind")?,
        summary: r.try_get("summary")?,
        first_at: r.try_get("first_at")?,
        last_at: r.try_get("last_at")?,
        events: r.try_get("events")?,
        opened_at: r.try_get("opened_at")?,
        acknowledged_at: r.try_get("acknowledged_at")?,
        acknowledged_by: r.try_get("acknowledged_by")?,
        acknowledgement: r.try_get("acknowledgement")?,
    })
}

#[async_trait]
impl WatchStore for SqlTx {
    async fn insert_brokered_session(&mut self, s: &BrokeredSessionRow) -> Result<()> {
        self.sql(
            "INSERT INTO brokered_sessions (key_id, account_id, purpose, request_id, opened_by, \
             opened_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&s.key_id)
        .bind(&s.account_id)
        .bind(&s.purpose)
        .bind(&s.request_id)
        .bind(&s.opened_by)
        .bind(s.opened_at)
        .bind(s.expires_at)
        .execute(self)
        .await?;
        Ok(())
    }

    async fn brokered_session(&mut self, key_id: &str) -> Result<Option<BrokeredSessionRow>> {
        let r = self
            .sql("SELECT * FROM brokered_sessions WHERE key_id = $1")
            .bind(key_id)
            .fetch_optional(self)
            .await?;
        r.as_ref().map(session_from).transpose()
    }

    async fn claim_trail_lease(&mut self, holder: &str, now: i64, until: i64) -> Result<bool> {
        let r = self
            .sql(
                "INSERT INTO trail_lease (id, holder, held_until) VALUES (1, $1, $2) \
                 ON CONFLICT (id) DO UPDATE SET holder = excluded.holder, \
                 held_until = excluded.held_until \
                 WHERE trail_lease.held_until <= $3 OR trail_lease.holder = excluded.holder",
            )
            .bind(holder)
            .bind(until)
            .bind(now)
            .execute(self)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn release_trail_lease(&mut self, holder: &str) -> Result<()> {
        self.sql("UPDATE trail_lease SET held_until = 0 WHERE holder = $1")
            .bind(holder)
            .execute(self)
            .await?;
        Ok(())
    }

    async fn trail_cursors(&mut self) -> Result<Vec<TrailCursorRow>> {
        let rows = self
            .sql("SELECT * FROM trail_cursors ORDER BY prefix")
            .fetch_all(self)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(TrailCursorRow {
                    prefix: r.try_get("prefix")?,
                    last_key: r.try_get("last_key")?,
                    last_file_at: r.try_get("last_file_at")?,
                    updated_at: r.try_get("updated_at")?,
                })
            })
            .collect()
    }

    async fn advance_trail_cursor(
        &mut self,
        prefix: &str,
        key: &str,
        file_at: i64,
        now: i64,
    ) -> Result<()> {
        self.sql(
            "INSERT INTO trail_cursors (prefix, last_key, last_file_at, updated_at) \
             VALUES ($1, $2, $3, $4) \
             ON CONFLICT (prefix) DO UPDATE SET last_key = excluded.last_key, \
             last_file_at = excluded.last_file_at, updated_at = excluded.updated_at \
             WHERE trail_cursors.last_key < excluded.last_key",
        )
        .bind(prefix)
        .bind(key)
        .bind(file_at)
        .bind(now)
        .execute(self)
        .await?;
        Ok(())
    }

    async fn handled_trail_files(&mut self, prefix: &str, after: &str) -> Result<Vec<String>> {
        let rows = self
            .sql("SELECT file_key FROM trail_files WHERE prefix = $1 AND file_key > $2")
            .bind(prefix)
            .bind(after)
            .fetch_all(self)
            .await?;
        rows.iter().map(|r| r.try_get(0)).collect()
    }

    async fn trail_file_handled(&mut self, key: &str) -> Result<bool> {
        Ok(self
            .sql("SELECT 1 FROM trail_files WHERE file_key = $1")
            .bind(key)
            .fetch_optional(self)
            .await?
            .is_some())
    }

    async fn insert_trail_file(&mut self, f: &TrailFileRow) -> Result<bool> {
        let r = self
            .sql(
                "INSERT INTO trail_files (file_key, prefix, status, events, root_events, error, \
                 file_at, read_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                 ON CONFLICT (file_key) DO NOTHING",
            )
            .bind(&f.file_key)
            .bind(&f.prefix)
            .bind(&f.status)
            .bind(f.events)
            .bind(f.root_events)
            .bind(&f.error)
            .bind(f.file_at)
            .bind(f.read_at)
            .execute(self)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn trail_files(&mut self, status: Option<&str>, limit: i64) -> Result<Vec<TrailFileRow>> {
        let rows = self
            .sql(
                "SELECT * FROM trail_files WHERE ($1 IS NULL OR status = $1) \
                 ORDER BY read_at DESC, file_key DESC LIMIT $2",
            )
            .bind(status)
            .bind(limit)
            .fetch_all(self)
            .await?;
        rows.iter().map(file_from).collect()
    }

    async fn root_activity_seen(&mut self, event_id: &str) -> Result<bool> {
        Ok(self
            .sql("SELECT 1 FROM root_activity WHERE event_id = $1")
            .bind(event_id)
            .fetch_optional(self)
            .await?
            .is_some())
    }

    async fn insert_root_activity(&mut self, a: &RootActivityRow) -> Result<bool> {
        let r = self
            .sql(
                "INSERT INTO root_activity (event_id, file_key, account_id, kind, event_name, \
                 at_ms, request_id, session_key_id, finding_id) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (event_id) DO NOTHING",
            )
            .bind(&a.event_id)
            .bind(&a.file_key)
            .bind(&a.account_id)
            .bind(&a.kind)
            .bind(&a.event_name)
            .bind(a.at_ms)
            .bind(&a.request_id)
            .bind(&a.session_key_id)
            .bind(&a.finding_id)
            .execute(self)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn release_covering(
        &mut self,
        account_id: &str,
        at: i64,
        window_ms: i64,
    ) -> Result<Option<ReleaseOfAccount>> {
        let r = self
            .sql(
                "SELECT r.id, r.requester, c.name, r.released_at FROM requests r \
                 JOIN credentials c ON c.id = r.credential_id \
                 WHERE c.account_id = $1 AND r.state = 'released' \
                 AND r.released_at <= $2 AND r.released_at >= $3 \
                 ORDER BY r.released_at DESC LIMIT 1",
            )
            .bind(account_id)
            .bind(at)
            .bind(at - window_ms)
            .fetch_optional(self)
            .await?;
        r.map(|r| {
            Ok(ReleaseOfAccount {
                request_id: r.try_get(0)?,
                requester: r.try_get(1)?,
                credential: r.try_get(2)?,
                released_at: r.try_get(3)?,
            })
        })
        .transpose()
    }

    async fn open_root_finding(&mut self, episode: &str) -> Result<Option<RootFindingRow>> {
        let r = self
            .sql("SELECT * FROM root_findings WHERE episode = $1 AND acknowledged_at IS NULL")
            .bind(episode)
            .fetch_optional(self)
            .await?;
        r.as_ref().map(finding_from).transpose()
    }

    async fn insert_root_finding(&mut self, f: &RootFindingRow) -> Result<()> {
        self.sql(
            "INSERT INTO root_findings (id, episode, account_id, kind, summary, first_at, \
             last_at, events, opened_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&f.id)
        .bind(&f.episode)
        .bind(&f.account_id)
        .bind(&f.kind)
        .bind(&f.summary)
        .bind(f.first_at)
        .bind(f.last_at)
        .bind(f.events)
        .bind(f.opened_at)
        .execute(self)
        .await?;
        Ok(())
    }

    async fn touch_root_finding(&mut self, id: &str, at: i64) -> Result<()> {
        self.sql(
            "UPDATE root_findings SET events = events + 1, \
             last_at = CASE WHEN last_at < $1 THEN $1 ELSE last_at END, \
             first_at = CASE WHEN first_at > $1 THEN $1 ELSE first_at END WHERE id = $2",
        )
        .bind(at)
        .bind(id)
        .execute(self)
        .await?;
        Ok(())
    }

    async fn root_findings(&mut self, open_only: bool, limit: i64) -> Result<Vec<RootFindingRow>> {
        let rows = self
            .sql(
                "SELECT * FROM root_findings WHERE ($1 = FALSE OR acknowledged_at IS NULL) \
                 ORDER BY opened_at DESC, id LIMIT $2",
            )
            .bind(open_only)
            .bind(limit)
            .fetch_all(self)
            .await?;
        rows.iter().map(finding_from).collect()
    }

    async fn root_finding(&mut self, id: &str) -> Result<Option<RootFindingRow>> {
        let r = self
            .sql("SELECT * FROM root_findings WHERE id = $1")
            .bind(id)
            .fetch_optional(self)
            .await?;
        r.as_ref().map(finding_from).transpose()
    }

    async fn acknowledge_root_finding(
        &mut self,
        id: &str,
        by: &str,
        why: &str,
        at: i64,
    ) -> Result<bool> {
        let r = self
            .sql(
                "UPDATE root_findings SET acknowledged_at = $1, acknowledged_by = $2, \
                 acknowledgement = $3 WHERE id = $4 AND acknowledged_at IS NULL",
            )
            .bind(at)
            .bind(by)
            .bind(why)
            .bind(id)
            .execute(self)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn watch_gauges(&mut self) -> Result<WatchGauges> {
        let r = self
            .sql(
                "SELECT \
                 CAST(COALESCE(SUM(CASE WHEN status = 'read' THEN 1 ELSE 0 END), 0) AS BIGINT), \
                 CAST(COALESCE(SUM(CASE WHEN status = 'rejected' THEN 1 ELSE 0 END), 0) AS BIGINT), \
                 CAST(COALESCE(SUM(events), 0) AS BIGINT), \
                 CAST(COALESCE(SUM(root_events), 0) AS BIGINT) FROM trail_files",
            )
            .fetch_one(self)
            .await?;
        let (files_read, files_rejected, events_read, root_events): (i64, i64, i64, i64) =
            (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?);
        let newest_file_at: Option<i64> = self
            .sql("SELECT MAX(last_file_at) FROM trail_cursors")
            .fetch_one(self)
            .await?
            .try_get(0)?;
        let open_findings: i64 = self
            .sql("SELECT COUNT(*) FROM root_findings WHERE acknowledged_at IS NULL")
            .fetch_one(self)
            .await?
            .try_get(0)?;
        Ok(WatchGauges {
            files_read,
            files_rejected,
            events_read,
            root_events,
            newest_file_at,
            open_findings,
        })
    }
}
