//! Security keys and passkeys: the registered keys, and the ceremonies in
//! progress (each taken once, by whichever replica the browser reaches).

use async_trait::async_trait;

use super::sql::{Row, SqlTx};
use super::*;

#[async_trait]
pub trait WebauthnStore: Send {
    /// Refused (`Conflict`) when the credential id is registered already,
    /// or the custodian has a live key of that name.
    async fn insert_webauthn_key(&mut self, k: &WebauthnKeyRow) -> Result<()>;
    /// A custodian's keys, removed ones too, oldest first.
    async fn webauthn_keys_of(&mut self, custodian: &str) -> Result<Vec<WebauthnKeyRow>>;
    async fn webauthn_key(&mut self, credential_id: &str) -> Result<Option<WebauthnKeyRow>>;
    /// Record a use with signature counter `counter` at `at`, only if the
    /// key is live and the counter moves forward (or both are 0: the
    /// authenticator keeps no counter); whether it was recorded.
    async fn use_webauthn_key(
        &mut self,
        credential_id: &str,
        counter: i64,
        at: i64,
    ) -> Result<bool>;
    /// Mark a live key removed; whether it was live.
    async fn remove_webauthn_key(&mut self, credential_id: &str, at: i64) -> Result<bool>;
    async fn insert_ceremony(&mut self, c: &CeremonyRow) -> Result<()>;
    /// Take a ceremony once: mark it used at `at` and return it, only if
    /// it was unused (the caller says why an expired or foreign one is
    /// refused). A second take of the same id finds nothing.
    async fn take_ceremony(&mut self, id: &str, at: i64) -> Result<Option<CeremonyRow>>;
    /// One ceremony, used or not (to say why it cannot be taken).
    async fn ceremony(&mut self, id: &str) -> Result<Option<CeremonyRow>>;
    async fn insert_key_reset(&mut self, r: &KeyResetRow) -> Result<()>;
    async fn key_reset(&mut self, id: &str) -> Result<Option<KeyResetRow>>;
    /// Every reset, newest first (at most `limit`).
    async fn key_resets(&mut self, limit: i64) -> Result<Vec<KeyResetRow>>;
    /// The resets of one custodian that are approved and not used up.
    async fn approved_key_resets_of(&mut self, custodian: &str) -> Result<Vec<KeyResetRow>>;
    /// Move a reset from `from` to `to` at `at`; whether it was in `from`.
    async fn move_key_reset(&mut self, id: &str, from: &str, to: &str, at: i64) -> Result<bool>;
    async fn insert_key_reset_decision(&mut self, reset_id: &str, d: &DecisionRow) -> Result<()>;
    async fn key_reset_decisions(&mut self, reset_id: &str) -> Result<Vec<DecisionRow>>;
    /// Delete the ceremonies (used or not) that expired before `before`.
    async fn purge_ceremonies(&mut self, before: i64) -> Result<u64>;
}

#[async_trait]
impl WebauthnStore for SqlTx {
    async fn insert_webauthn_key(&mut self, k: &WebauthnKeyRow) -> Result<()> {
        self.sql(
            "INSERT INTO webauthn_keys (credential_id, custodian, name, passkey, counter, aaguid, created_at, last_used_at, removed_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&k.credential_id)
        .bind(&k.custodian)
        .bind(&k.name)
        .bind(&k.passkey)
        .bind(k.counter)
        .bind(&k.aaguid)
        .bind(k.created_at)
        .bind(k.last_used_at)
        .bind(k.removed_at)
        .execute(self)
        .await?;
        Ok(())
    }

    async fn webauthn_keys_of(&mut self, custodian: &str) -> Result<Vec<WebauthnKeyRow>> {
        let rows = self
            .sql("SELECT * FROM webauthn_keys WHERE custodian = $1 ORDER BY created_at, credential_id")
            .bind(custodian)
            .fetch_all(self)
            .await?;
        rows.iter().map(key_from).collect()
    }

    async fn webauthn_key(&mut self, credential_id: &str) -> Result<Option<WebauthnKeyRow>> {
        let row = self
            .sql("SELECT * FROM webauthn_keys WHERE credential_id = $1")
            .bind(credential_id)
            .fetch_optional(self)
            .await?;
        row.as_ref().map(key_from).transpose()
    }

    async fn use_webauthn_key(
        &mut self,
        credential_id: &str,
        counter: i64,
        at: i64,
    ) -> Result<bool> {
        let r = self
            .sql(
                "UPDATE webauthn_keys SET counter = $1, last_used_at = $2 \
                 WHERE credential_id = $3 AND removed_at IS NULL \
                 AND (counter < $1 OR (counter = 0 AND $1 = 0))",
            )
            .bind(counter)
            .bind(at)
            .bind(credential_id)
            .execute(self)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn remove_webauthn_key(&mut self, credential_id: &str, at: i64) -> Result<bool> {
        let r = self
            .sql(
                "UPDATE webauthn_keys SET removed_at = $1 \
                 WHERE credential_id = $2 AND removed_at IS NULL",
            )
            .bind(at)
            .bind(credential_id)
            .execute(self)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn insert_ceremony(&mut self, c: &CeremonyRow) -> Result<()> {
        self.sql(
            "INSERT INTO webauthn_ceremonies (id, kind, custodian, session, request_id, key_name, nonce, authorized_by, state, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&c.id)
        .bind(&c.kind)
        .bind(&c.custodian)
        .bind(&c.session)
        .bind(&c.request_id)
        .bind(&c.key_name)
        .bind(&c.nonce)
        .bind(&c.authorized_by)
        .bind(&c.state)
        .bind(c.created_at)
        .bind(c.expires_at)
        .execute(self)
        .await?;
        Ok(())
    }

    async fn take_ceremony(&mut self, id: &str, at: i64) -> Result<Option<CeremonyRow>> {
        let row = self
            .sql(
                "UPDATE webauthn_ceremonies SET used_at = $1 \
                 WHERE id = $2 AND used_at IS NULL RETURNING *",
            )
            .bind(at)
            .bind(id)
            .fetch_optional(self)
            .await?;
        row.as_ref().map(ceremony_from).transpose()
    }

    async fn ceremony(&mut self, id: &str) -> Result<Option<CeremonyRow>> {
        let row = self
            .sql("SELECT * FROM webauthn_ceremonies WHERE id = $1")
            .bind(id)
            .fetch_optional(self)
            .await?;
        row.as_ref().map(ceremony_from).transpose()
    }

    async fn insert_key_reset(&mut self, r: &KeyResetRow) -> Result<()> {
        self.sql(
            "INSERT INTO key_resets (id, custodian, proposer, policy, quorum, reason, state, created_at, expires_at, approved_at, closed_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&r.id)
        .bind(&r.custodian)
        .bind(&r.proposer)
        .bind(&r.policy)
        .bind(&r.quorum)
        .bind(&r.reason)
        .bind(&r.state)
        .bind(r.created_at)
        .bind(r.expires_at)
        .bind(r.approved_at)
        .bind(r.closed_at)
        .execute(self)
        .await?;
        Ok(())
    }

    async fn key_reset(&mut self, id: &str) -> Result<Option<KeyResetRow>> {
        let row = self
            .sql("SELECT * FROM key_resets WHERE id = $1")
            .bind(id)
            .fetch_optional(self)
            .await?;
        row.as_ref().map(reset_from).transpose()
    }

    async fn key_resets(&mut self, limit: i64) -> Result<Vec<KeyResetRow>> {
        let rows = self
            .sql("SELECT * FROM key_resets ORDER BY created_at DESC, id LIMIT $1")
            .bind(limit)
            .fetch_all(self)
            .await?;
        rows.iter().map(reset_from).collect()
    }

    async fn approved_key_resets_of(&mut self, custodian: &str) -> Result<Vec<KeyResetRow>> {
        let rows = self
            .sql("SELECT * FROM key_resets WHERE custodian = $1 AND state = 'approved' ORDER BY approved_at DESC, id")
            .bind(custodian)
            .fetch_all(self)
            .await?;
        rows.iter().map(reset_from).collect()
    }

    async fn move_key_reset(&mut self, id: &str, from: &str, to: &str, at: i64) -> Result<bool> {
        let sql = if to == "approved" {
            "UPDATE key_resets SET state = $1, approved_at = $2 WHERE id = $3 AND state = $4"
        } else {
            "UPDATE key_resets SET state = $1, closed_at = $2 WHERE id = $3 AND state = $4"
        };
        let r = self
            .sql(sql)
            .bind(to)
            .bind(at)
            .bind(id)
            .bind(from)
            .execute(self)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn insert_key_reset_decision(&mut self, reset_id: &str, d: &DecisionRow) -> Result<()> {
        let q = self
            .sql(
                "INSERT INTO key_reset_decisions (reset_id, custodian, decision, reason, groups, totp_step, at, totp_code, webauthn) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(reset_id);
        super::requests::bind_decision(q, d).execute(self).await?;
        Ok(())
    }

    async fn key_reset_decisions(&mut self, reset_id: &str) -> Result<Vec<DecisionRow>> {
        let rows = self
            .sql("SELECT *, reset_id AS request_id FROM key_reset_decisions WHERE reset_id = $1 ORDER BY at, custodian")
            .bind(reset_id)
            .fetch_all(self)
            .await?;
        rows.iter().map(super::requests::decision_from).collect()
    }

    async fn purge_ceremonies(&mut self, before: i64) -> Result<u64> {
        let r = self
            .sql("DELETE FROM webauthn_ceremonies WHERE expires_at < $1")
            .bind(before)
            .execute(self)
            .await?;
        Ok(r.rows_affected())
    }
}

fn reset_from(r: &Row) -> Result<KeyResetRow> {
    Ok(KeyResetRow {
        id: r.try_get("id")?,
        custodian: r.try_get("custodian")?,
        proposer: r.try_get("proposer")?,
        policy: r.try_get("policy")?,
        quorum: r.try_get("quorum")?,
        reason: r.try_get("reason")?,
        state: r.try_get("state")?,
        created_at: r.try_get("created_at")?,
        expires_at: r.try_get("expires_at")?,
        approved_at: r.try_get("approved_at")?,
        closed_at: r.try_get("closed_at")?,
    })
}

fn key_from(r: &Row) -> Result<WebauthnKeyRow> {
    Ok(WebauthnKeyRow {
        credential_id: r.try_get("credential_id")?,
        custodian: r.try_get("custodian")?,
        name: r.try_get("name")?,
        passkey: r.try_get("passkey")?,
        counter: r.try_get("counter")?,
        aaguid: r.try_get("aaguid")?,
        created_at: r.try_get("created_at")?,
        last_used_at: r.try_get("last_used_at")?,
        removed_at: r.try_get("removed_at")?,
    })
}

fn ceremony_from(r: &Row) -> Result<CeremonyRow> {
    Ok(CeremonyRow {
        id: r.try_get("id")?,
        kind: r.try_get("kind")?,
        custodian: r.try_get("custodian")?,
        session: r.try_get("session")?,
        request_id: r.try_get("request_id")?,
        key_name: r.try_get("key_name")?,
        nonce: r.try_get("nonce")?,
        authorized_by: r.try_get("authorized_by")?,
        state: r.try_get("state")?,
        created_at: r.try_get("created_at")?,
        expires_at: r.try_get("expires_at")?,
        used_at: r.try_get("used_at")?,
    })
}
