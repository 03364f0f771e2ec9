//! One implementation of `Tx` for both SQL backends. The SQL is the same on
//! SQLite and PostgreSQL but for the row-lock clause, so the macro is
//! expanded once per backend with concrete types (no generic bounds over
//! sqlx's database traits).

use super::StoreError;

pub(crate) fn json_list(v: &[String]) -> String {
    serde_json::to_string(v).expect("a list of strings always serialises")
}

pub(crate) fn parse_list(s: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(s).map_err(|e| StoreError::Other(format!("corrupt list column: {e}")))
}

macro_rules! impl_sql_tx {
    ($tx:ident, $db:ty, $row:ty, $lock:literal, $skip_locked:literal) => {
        pub struct $tx {
            tx: sqlx::Transaction<'static, $db>,
        }

        impl $tx {
            pub(crate) fn new(tx: sqlx::Transaction<'static, $db>) -> Self {
                Self { tx }
            }
        }

        fn custodian_from(r: &$row) -> $crate::store::Result<$crate::store::CustodianRow> {
            use sqlx::Row;
            Ok($crate::store::CustodianRow {
                name: r.try_get("name")?,
                groups: $crate::store::sql::parse_list(&r.try_get::<String, _>("groups")?)?,
                status: r.try_get("status")?,
                enrollment_id: r.try_get("enrollment_id")?,
                totp_envelope: r.try_get("totp_envelope")?,
                last_totp_step: r.try_get("last_totp_step")?,
                locked_until: r.try_get("locked_until")?,
                created_at: r.try_get("created_at")?,
                created_by: r.try_get("created_by")?,
                enrolled_at: r.try_get("enrolled_at")?,
                totp_recovery_set: r.try_get("totp_recovery_set")?,
                totp_recovery_wrap: r.try_get("totp_recovery_wrap")?,
            })
        }

        fn checkpoint_from(r: &$row) -> $crate::store::Result<$crate::crypto::chain::Checkpoint> {
            use sqlx::Row;
            Ok($crate::crypto::chain::Checkpoint {
                seq: r.try_get("seq")?,
                hash: r.try_get("hash")?,
                ts_ms: r.try_get("ts_ms")?,
                kid: r.try_get("kid")?,
                signature: r.try_get("signature")?,
            })
        }

        fn policy_change_from(r: &$row) -> $crate::store::Result<$crate::store::PolicyChangeRow> {
            use sqlx::Row;
            Ok($crate::store::PolicyChangeRow {
                id: r.try_get("id")?,
                kind: r.try_get("kind")?,
                policy: r.try_get("policy")?,
                base_version: r.try_get("base_version")?,
                quorum: r.try_get("quorum")?,
                proposed: r.try_get("proposed")?,
                credential_id: r.try_get("credential_id")?,
                to_policy: r.try_get("to_policy")?,
                diff: r.try_get("diff")?,
                reason: r.try_get("reason")?,
                proposer: r.try_get("proposer")?,
                state: r.try_get("state")?,
                created_at: r.try_get("created_at")?,
                expires_at: r.try_get("expires_at")?,
                decided_at: r.try_get("decided_at")?,
            })
        }

        fn alert_from(r: &$row) -> $crate::store::Result<$crate::store::AlertRow> {
            use sqlx::Row;
            Ok($crate::store::AlertRow {
                id: r.try_get("id")?,
                seq: r.try_get("seq")?,
                channel: r.try_get("channel")?,
                kind: r.try_get("kind")?,
                payload: r.try_get("payload")?,
                state: r.try_get("state")?,
                attempts: r.try_get("attempts")?,
                next_attempt_at: r.try_get("next_attempt_at")?,
                last_error: r.try_get("last_error")?,
                created_at: r.try_get("created_at")?,
                delivered_at: r.try_get("delivered_at")?,
            })
        }

        fn session_from(r: &$row) -> $crate::store::Result<$crate::store::RecoverySessionRow> {
            use sqlx::Row;
            Ok($crate::store::RecoverySessionRow {
                id: r.try_get("id")?,
                request_id: r.try_get("request_id")?,
                set_id: r.try_get("set_id")?,
                recipient: r.try_get("recipient")?,
                replica: r.try_get("replica")?,
                opened_by: r.try_get("opened_by")?,
                opened_at: r.try_get("opened_at")?,
                expires_at: r.try_get("expires_at")?,
                state: r.try_get("state")?,
                closed_at: r.try_get("closed_at")?,
            })
        }

        fn credential_from(r: &$row) -> $crate::store::Result<$crate::store::CredentialRow> {
            use sqlx::Row;
            Ok($crate::store::CredentialRow {
                id: r.try_get("id")?,
                name: r.try_get("name")?,
                account_id: r.try_get("account_id")?,
                policy: r.try_get("policy")?,
                current_version: r.try_get("current_version")?,
                exposed: r.try_get("exposed")?,
                exposed_at: r.try_get("exposed_at")?,
                last_released_at: r.try_get("last_released_at")?,
                created_at: r.try_get("created_at")?,
                created_by: r.try_get("created_by")?,
                updated_at: r.try_get("updated_at")?,
                access_key_id: r.try_get("access_key_id")?,
                drill: r.try_get("drill")?,
                reminded_at: r.try_get("reminded_at")?,
                policy_seal: r.try_get("policy_seal")?,
            })
        }

        fn version_from(r: &$row) -> $crate::store::Result<$crate::store::VersionRow> {
            use sqlx::Row;
            Ok($crate::store::VersionRow {
                credential_id: r.try_get("credential_id")?,
                version: r.try_get("version")?,
                secret_store: r.try_get("secret_store")?,
                secret_ref: r.try_get("secret_ref")?,
                key_id: r.try_get("key_id")?,
                field_names: $crate::store::sql::parse_list(&r.try_get::<String, _>("field_names")?)?,
                created_at: r.try_get("created_at")?,
                created_by: r.try_get("created_by")?,
                recovery_set: r.try_get("recovery_set")?,
                recovery_wrap: r.try_get("recovery_wrap")?,
                recovery_envelope: r.try_get("recovery_envelope")?,
            })
        }

        fn request_from(r: &$row) -> $crate::store::Result<$crate::store::RequestRow> {
            use sqlx::Row;
            Ok($crate::store::RequestRow {
                id: r.try_get("id")?,
                credential_id: r.try_get("credential_id")?,
                credential_name: r.try_get("credential_name")?,
                requester: r.try_get("requester")?,
                reason: r.try_get("reason")?,
                ticket: r.try_get("ticket")?,
                policy: r.try_get("policy")?,
                state: r.try_get("state")?,
                created_at: r.try_get("created_at")?,
                expires_at: r.try_get("expires_at")?,
                approved_at: r.try_get("approved_at")?,
                release_deadline: r.try_get("release_deadline")?,
                released_at: r.try_get("released_at")?,
                released_version: r.try_get("released_version")?,
                denied_at: r.try_get("denied_at")?,
                denied_by: r.try_get("denied_by")?,
            })
        }

        fn decision_from(r: &$row) -> $crate::store::Result<$crate::store::DecisionRow> {
            use sqlx::Row;
            Ok($crate::store::DecisionRow {
                request_id: r.try_get("request_id")?,
                custodian: r.try_get("custodian")?,
                decision: r.try_get("decision")?,
                reason: r.try_get("reason")?,
                groups: $crate::store::sql::parse_list(&r.try_get::<String, _>("groups")?)?,
                totp_step: r.try_get("totp_step")?,
                at: r.try_get("at")?,
                totp_code: r
                    .try_get::<Option<String>, _>("totp_code")?
                    .map($crate::crypto::totp::SpentCode::new),
            })
        }

        fn audit_from(r: &$row) -> $crate::store::Result<$crate::crypto::chain::AuditEvent> {
            use sqlx::Row;
            let details: String = r.try_get("details")?;
            Ok($crate::crypto::chain::AuditEvent {
                seq: r.try_get("seq")?,
                ts_ms: r.try_get("ts_ms")?,
                actor: r.try_get("actor")?,
                action: r.try_get("action")?,
                target: r.try_get("target")?,
                outcome: r.try_get("outcome")?,
                code: r.try_get("code")?,
                // A row whose details are not JSON is kept as a string so
                // that verification reports it instead of failing to read.
                details: serde_json::from_str(&details).unwrap_or(serde_json::Value::String(details)),
                prev_hash: r.try_get("prev_hash")?,
                hash: r.try_get("hash")?,
            })
        }

        #[async_trait::async_trait]
        impl $crate::store::Tx for $tx {
            async fn commit(self: Box<Self>) -> $crate::store::Result<()> {
                Ok(self.tx.commit().await?)
            }

            async fn rollback(self: Box<Self>) -> $crate::store::Result<()> {
                Ok(self.tx.rollback().await?)
            }

            async fn insert_custodian(&mut self, c: &$crate::store::CustodianRow) -> $crate::store::Result<()> {
                sqlx::query(
                    "INSERT INTO custodians (name, groups, status, enrollment_id, totp_envelope, last_totp_step, \
                     locked_until, created_at, created_by, enrolled_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .bind(&c.name)
                .bind($crate::store::sql::json_list(&c.groups))
                .bind(&c.status)
                .bind(&c.enrollment_id)
                .bind(&c.totp_envelope)
                .bind(c.last_totp_step)
                .bind(c.locked_until)
                .bind(c.created_at)
                .bind(&c.created_by)
                .bind(c.enrolled_at)
                .execute(&mut *self.tx)
                .await?;
                Ok(())
            }

            async fn custodian(&mut self, name: &str) -> $crate::store::Result<Option<$crate::store::CustodianRow>> {
                let row = sqlx::query(concat!("SELECT * FROM custodians WHERE name = $1", $lock))
                    .bind(name)
                    .fetch_optional(&mut *self.tx)
                    .await?;
                row.as_ref().map(custodian_from).transpose()
            }

            async fn custodians(&mut self) -> $crate::store::Result<Vec<$crate::store::CustodianRow>> {
                let rows = sqlx::query("SELECT * FROM custodians ORDER BY name").fetch_all(&mut *self.tx).await?;
                rows.iter().map(custodian_from).collect()
            }

            async fn set_enrollment(
                &mut self,
                name: &str,
                status: &str,
                enrollment_id: Option<&str>,
                envelope: Option<&[u8]>,
                enrolled_at: Option<i64>,
            ) -> $crate::store::Result<()> {
                sqlx::query(
                    "UPDATE custodians SET status = $1, enrollment_id = $2, totp_envelope = $3, enrolled_at = $4, \
                     last_totp_step = NULL WHERE name = $5",
                )
                .bind(status)
                .bind(enrollment_id)
                .bind(envelope)
                .bind(enrolled_at)
                .bind(name)
                .execute(&mut *self.tx)
                .await?;
                Ok(())
            }

            async fn advance_totp_step(&mut self, name: &str, step: i64) -> $crate::store::Result<bool> {
                let r = sqlx::query(
                    "UPDATE custodians SET last_totp_step = $1 \
                     WHERE name = $2 AND (last_totp_step IS NULL OR last_totp_step < $1)",
                )
                .bind(step)
                .bind(name)
                .execute(&mut *self.tx)
                .await?;
                Ok(r.rows_affected() == 1)
            }

            async fn add_totp_failure(&mut self, name: &str, at: i64) -> $crate::store::Result<()> {
                sqlx::query("INSERT INTO totp_failures (custodian, at) VALUES ($1, $2)")
                    .bind(name)
                    .bind(at)
                    .execute(&mut *self.tx)
                    .await?;
                Ok(())
            }

            async fn count_totp_failures(&mut self, name: &str, since: i64) -> $crate::store::Result<i64> {
                use sqlx::Row;
                let row = sqlx::query("SELECT COUNT(*) AS n FROM totp_failures WHERE custodian = $1 AND at >= $2")
                    .bind(name)
                    .bind(since)
                    .fetch_one(&mut *self.tx)
                    .await?;
                Ok(row.try_get("n")?)
            }

            async fn clear_totp_failures(&mut self, name: &str) -> $crate::store::Result<()> {
                sqlx::query("DELETE FROM totp_failures WHERE custodian = $1")
                    .bind(name)
                    .execute(&mut *self.tx)
                    .await?;
                Ok(())
            }

            async fn set_locked_until(&mut self, name: &str, until: Option<i64>) -> $crate::store::Result<()> {
                sqlx::query("UPDATE custodians SET locked_until = $1 WHERE name = $2")
                    .bind(until)
                    .bind(name)
                    .execute(&mut *self.tx)
                    .await?;
                Ok(())
            }

            async fn insert_credential(&mut self, c: &$crate::store::CredentialRow) -> $crate::store::Result<()> {
                sqlx::query(
                    "INSERT INTO credentials (id, name, account_id, policy, current_version, exposed, exposed_at, \
                     last_released_at, created_at, created_by, updated_at, access_key_id, drill, policy_seal) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
                )
                .bind(&c.id)
                .bind(&c.name)
                .bind(&c.account_id)
                .bind(&c.policy)
                .bind(c.current_version)
                .bind(c.exposed)
                .bind(c.exposed_at)
                .bind(c.last_released_at)
                .bind(c.created_at)
                .bind(&c.created_by)
                .bind(c.updated_at)
                .bind(&c.access_key_id)
                .bind(c.drill)
                .bind(&c.policy_seal)
                .execute(&mut *self.tx)
                .await?;
                Ok(())
            }

            async fn mark_reminded(&mut self, id: &str, at: i64, before: i64) -> $crate::store::Result<bool> {
                let r = sqlx::query(
                    "UPDATE credentials SET reminded_at = $1 WHERE id = $2 AND exposed AND exposed_at <= $3 \
                     AND (reminded_at IS NULL OR reminded_at < $3)",
                )
                .bind(at)
                .bind(id)
                .bind(before)
                .execute(&mut *self.tx)
                .await?;
                Ok(r.rows_affected() == 1)
            }

            async fn set_access_key_id(&mut self, id: &str, key: Option<&str>) -> $crate::store::Result<()> {
                sqlx::query("UPDATE credentials SET access_key_id = $1 WHERE id = $2")
                    .bind(key)
                    .bind(id)
                    .execute(&mut *self.tx)
                    .await?;
                Ok(())
            }

            async fn credential_by_name(&mut self, name: &str) -> $crate::store::Result<Option<$crate::store::CredentialRow>> {
                let row = sqlx::query(concat!("SELECT * FROM credentials WHERE name = $1", $lock))
                    .bind(name)
                    .fetch_optional(&mut *self.tx)
                    .await?;
                row.as_ref().map(credential_from).transpose()
            }

            async fn credential_by_id(&mut self, id: &str) -> $crate::store::Result<Option<$crate::store::CredentialRow>> {
                let row = sqlx::query(concat!("SELECT * FROM credentials WHERE id = $1", $lock))
                    .bind(id)
                    .fetch_optional(&mut *self.tx)
                    .await?;
                row.as_ref().map(credential_from).transpose()
            }

            async fn credentials(&mut self) -> $crate::store::Result<Vec<$crate::store::CredentialRow>> {
                let rows = sqlx::query("SELECT * FROM credentials ORDER BY name").fetch_all(&mut *self.tx).await?;
                rows.iter().map(credential_from).collect()
            }

            async fn insert_version(&mut self, v: &$crate::store::VersionRow) -> $crate::store::Result<()> {
                sqlx::query(
                    "INSERT INTO credential_versions (credential_id, version, secret_store, secret_ref, key_id, \
                     field_names, created_at, created_by, recovery_set, recovery_wrap, recovery_envelope) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                )
                .bind(&v.credential_id)
                .bind(v.version)
                .bind(&v.secret_store)
                .bind(&v.secret_ref)
                .bind(&v.key_id)
                .bind($crate::store::sql::json_list(&v.field_names))
                .bind(v.created_at)
                .bind(&v.created_by)
                .bind(&v.recovery_set)
                .bind(&v.recovery_wrap)
                .bind(&v.recovery_envelope)
                .execute(&mut *self.tx)
                .await?;
                Ok(())
            }

            async fn version(&mut self, credential_id: &str, version: i64) -> $crate::store::Result<Option<$crate::store::VersionRow>> {
                let row = sqlx::query("SELECT * FROM credential_versions WHERE credential_id = $1 AND version = $2")
                    .bind(credential_id)
                    .bind(version)
                    .fetch_optional(&mut *self.tx)
                    .await?;
                row.as_ref().map(version_from).transpose()
            }

            async fn versions(&mut self, credential_id: &str) -> $crate::store::Result<Vec<$crate::store::VersionRow>> {
                let rows = sqlx::query("SELECT * FROM credential_versions WHERE credential_id = $1 ORDER BY version")
                    .bind(credential_id)
                    .fetch_all(&mut *self.tx)
                    .await?;
                rows.iter().map(version_from).collect()
            }

            async fn advance_credential_version(&mut self, id: &str, version: i64, at: i64) -> $crate::store::Result<bool> {
                let r = sqlx::query(
                    "UPDATE credentials SET current_version = $1, exposed = FALSE, exposed_at = NULL, updated_at = $2 \
                     WHERE id = $3 AND current_version = $1 - 1",
                )
                .bind(version)
                .bind(at)
                .bind(id)
                .execute(&mut *self.tx)
                .await?;
                Ok(r.rows_affected() == 1)
            }

            async fn mark_exposed(&mut self, id: &str, at: i64) -> $crate::store::Result<()> {
                sqlx::query(
                    "UPDATE credentials SET exposed = TRUE, exposed_at = COALESCE(exposed_at, $1), \
                     last_released_at = $1, updated_at = $1 WHERE id = $2",
                )
                .bind(at)
                .bind(id)
                .execute(&mut *self.tx)
                .await?;
                Ok(())
            }

            async fn set_version_location(
                &mut self,
                credential_id: &str,
                version: i64,
                old_ref: &str,
                new_ref: &str,
                key_id: &str,
            ) -> $crate::store::Result<bool> {
                let r = sqlx::query(
                    "UPDATE credential_versions SET secret_ref = $1, key_id = $2 \
                     WHERE credential_id = $3 AND version = $4 AND secret_ref = $5",
                )
                .bind(new_ref)
                .bind(key_id)
                .bind(credential_id)
                .bind(version)
                .bind(old_ref)
                .execute(&mut *self.tx)
                .await?;
                Ok(r.rows_affected() == 1)
            }

            async fn replace_totp_envelope(&mut self, name: &str, old: &[u8], new: &[u8]) -> $crate::store::Result<bool> {
                let r = sqlx::query("UPDATE custodians SET totp_envelope = $1 WHERE name = $2 AND totp_envelope = $3")
                    .bind(new)
                    .bind(name)
                    .bind(old)
                    .execute(&mut *self.tx)
                    .await?;
                Ok(r.rows_affected() == 1)
            }

            async fn insert_request(&mut self, r: &$crate::store::RequestRow) -> $crate::store::Result<()> {
                sqlx::query(
                    "INSERT INTO requests (id, credential_id, credential_name, requester, reason, ticket, policy, state, \
                     created_at, expires_at, approved_at, release_deadline, released_at, released_version, denied_at, denied_by) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
                )
                .bind(&r.id)
                .bind(&r.credential_id)
                .bind(&r.credential_name)
                .bind(&r.requester)
                .bind(&r.reason)
                .bind(&r.ticket)
                .bind(&r.policy)
                .bind(&r.state)
                .bind(r.created_at)
                .bind(r.expires_at)
                .bind(r.approved_at)
                .bind(r.release_deadline)
                .bind(r.released_at)
                .bind(r.released_version)
                .bind(r.denied_at)
                .bind(&r.denied_by)
                .execute(&mut *self.tx)
                .await?;
                Ok(())
            }

            async fn request(&mut self, id: &str) -> $crate::store::Result<Option<$crate::store::RequestRow>> {
                let row = sqlx::query(concat!("SELECT * FROM requests WHERE id = $1", $lock))
                    .bind(id)
                    .fetch_optional(&mut *self.tx)
                    .await?;
                row.as_ref().map(request_from).transpose()
            }

            async fn requests(&mut self, f: &$crate::store::RequestFilter) -> $crate::store::Result<Vec<$crate::store::RequestRow>> {
                let rows = sqlx::query(
                    "SELECT * FROM requests WHERE ($1 IS NULL OR requester = $1) AND ($2 IS NULL OR credential_id = $2) \
                     ORDER BY created_at DESC, id LIMIT $3",
                )
                .bind(&f.requester)
                .bind(&f.credential_id)
                .bind(f.limit)
                .fetch_all(&mut *self.tx)
                .await?;
                rows.iter().map(request_from).collect()
            }

            async fn mark_approved(&mut self, id: &str, at: i64, release_deadline: i64) -> $crate::store::Result<bool> {
                let r = sqlx::query(
                    "UPDATE requests SET state = 'approved', approved_at = $1, release_deadline = $2 \
                     WHERE id = $3 AND state = 'pending' AND expires_at > $1",
                )
                .bind(at)
                .bind(release_deadline)
                .bind(id)
                .execute(&mut *self.tx)
                .await?;
                Ok(r.rows_affected() == 1)
            }

            async fn mark_denied(&mut self, id: &str, at: i64, by: &str) -> $crate::store::Result<bool> {
                let r = sqlx::query(
                    "UPDATE requests SET state = 'denied', denied_at = $1, denied_by = $2 \
                     WHERE id = $3 AND state = 'pending' AND expires_at > $1",
                )
                .bind(at)
                .bind(by)
                .bind(id)
                .execute(&mut *self.tx)
                .await?;
                Ok(r.rows_affected() == 1)
            }

            async fn mark_released(&mut self, id: &str, at: i64, version: i64) -> $crate::store::Result<bool> {
                let r = sqlx::query(
                    "UPDATE requests SET state = 'released', released_at = $1, released_version = $2 \
                     WHERE id = $3 AND state = 'approved' AND release_deadline > $1",
                )
                .bind(at)
                .bind(version)
                .bind(id)
                .execute(&mut *self.tx)
                .await?;
                Ok(r.rows_affected() == 1)
            }

            async fn insert_decision(&mut self, d: &$crate::store::DecisionRow) -> $crate::store::Result<()> {
                sqlx::query(
                    "INSERT INTO decisions (request_id, custodian, decision, reason, groups, totp_step, at, totp_code) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(&d.request_id)
                .bind(&d.custodian)
                .bind(&d.decision)
                .bind(&d.reason)
                .bind($crate::store::sql::json_list(&d.groups))
                .bind(d.totp_step)
                .bind(d.at)
                .bind(d.totp_code.as_ref().map(|c| c.expose().to_owned()))
                .execute(&mut *self.tx)
                .await?;
                Ok(())
            }

            async fn decisions(&mut self, request_id: &str) -> $crate::store::Result<Vec<$crate::store::DecisionRow>> {
                let rows = sqlx::query("SELECT * FROM decisions WHERE request_id = $1 ORDER BY at, custodian")
                    .bind(request_id)
                    .fetch_all(&mut *self.tx)
                    .await?;
                rows.iter().map(decision_from).collect()
            }

            async fn decision_steps(&mut self, custodian: &str) -> $crate::store::Result<Vec<(i64, i64)>> {
                use sqlx::Row;
                let rows = sqlx::query(
                    "SELECT totp_step, at FROM decisions WHERE custodian = $1 \
                     UNION ALL SELECT totp_step, at FROM policy_change_decisions WHERE custodian = $1",
                )
                .bind(custodian)
                .fetch_all(&mut *self.tx)
                .await?;
                rows.iter()
                    .map(|r| Ok((r.try_get("totp_step")?, r.try_get("at")?)))
                    .collect()
            }

            async fn audit_head(&mut self) -> $crate::store::Result<(i64, String)> {
                use sqlx::Row;
                let row = sqlx::query(concat!("SELECT seq, hash FROM audit_head WHERE id = 1", $lock))
                    .fetch_one(&mut *self.tx)
                    .await?;
                Ok((row.try_get("seq")?, row.try_get("hash")?))
            }

            async fn audit_head_peek(&mut self) -> $crate::store::Result<(i64, String)> {
                use sqlx::Row;
                let row = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
                    .fetch_one(&mut *self.tx)
                    .await?;
                Ok((row.try_get("seq")?, row.try_get("hash")?))
            }

            async fn insert_audit(&mut self, e: &$crate::crypto::chain::AuditEvent) -> $crate::store::Result<()> {
                let details = serde_json::to_string(&e.details).expect("a JSON value always serialises");
                sqlx::query(
                    "INSERT INTO audit_events (seq, ts_ms, actor, action, target, outcome, code, details, prev_hash, hash) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .bind(e.seq)
                .bind(e.ts_ms)
                .bind(&e.actor)
                .bind(&e.action)
                .bind(&e.target)
                .bind(&e.outcome)
                .bind(&e.code)
                .bind(details)
                .bind(&e.prev_hash)
                .bind(&e.hash)
                .execute(&mut *self.tx)
                .await?;
                let r = sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1 AND seq = $3 AND hash = $4")
                    .bind(e.seq)
                    .bind(&e.hash)
                    .bind(e.seq - 1)
                    .bind(&e.prev_hash)
                    .execute(&mut *self.tx)
                    .await?;
                if r.rows_affected() != 1 {
                    return Err($crate::store::StoreError::Conflict("audit_head".into()));
                }
                Ok(())
            }

            async fn audit_events(&mut self, after_seq: i64, limit: i64) -> $crate::store::Result<Vec<$crate::crypto::chain::AuditEvent>> {
                let rows = sqlx::query("SELECT * FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT $2")
                    .bind(after_seq)
                    .bind(limit)
                    .fetch_all(&mut *self.tx)
                    .await?;
                rows.iter().map(audit_from).collect()
            }

            async fn audit_search(
                &mut self,
                f: &$crate::store::AuditFilter,
                after_seq: i64,
                limit: i64,
            ) -> $crate::store::Result<Vec<$crate::crypto::chain::AuditEvent>> {
                let (cond, values) = f.sql();
                let n = values.len() + 2;
                let sql = format!("SELECT * FROM audit_events WHERE seq > $1{cond} ORDER BY seq LIMIT ${n}");
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(after_seq);
                for v in values {
                    q = match v {
                        $crate::store::SqlValue::Int(i) => q.bind(i),
                        $crate::store::SqlValue::Text(t) => q.bind(t),
                    };
                }
                let rows = q.bind(limit).fetch_all(&mut *self.tx).await?;
                rows.iter().map(audit_from).collect()
            }

            async fn first_seq_since(&mut self, ts_ms: i64) -> $crate::store::Result<Option<i64>> {
                use sqlx::Row;
                let row = sqlx::query("SELECT MIN(seq) AS seq FROM audit_events WHERE ts_ms >= $1")
                    .bind(ts_ms)
                    .fetch_one(&mut *self.tx)
                    .await?;
                Ok(row.try_get("seq")?)
            }

            async fn audit_seq_after(&mut self, seq: i64) -> $crate::store::Result<Option<i64>> {
                use sqlx::Row;
                let row = sqlx::query("SELECT MIN(seq) AS seq FROM audit_events WHERE seq > $1")
                    .bind(seq)
                    .fetch_one(&mut *self.tx)
                    .await?;
                Ok(row.try_get("seq")?)
            }

            async fn audit_hash_at(&mut self, seq: i64) -> $crate::store::Result<Option<String>> {
                use sqlx::Row;
                if seq == 0 {
                    return Ok(Some($crate::crypto::chain::GENESIS.into()));
                }
                let row = sqlx::query(
                    "SELECT hash FROM audit_events WHERE seq = $1 UNION ALL SELECT hash FROM audit_base WHERE id = 1 AND seq = $1",
                )
                .bind(seq)
                .fetch_optional(&mut *self.tx)
                .await?;
                Ok(row.map(|r| r.try_get("hash")).transpose()?)
            }

            async fn insert_checkpoint(&mut self, c: &$crate::crypto::chain::Checkpoint) -> $crate::store::Result<bool> {
                let r = sqlx::query(
                    "INSERT INTO audit_checkpoints (seq, hash, ts_ms, kid, signature) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (seq) DO NOTHING",
                )
                .bind(c.seq)
                .bind(&c.hash)
                .bind(c.ts_ms)
                .bind(&c.kid)
                .bind(&c.signature)
                .execute(&mut *self.tx)
                .await?;
                Ok(r.rows_affected() == 1)
            }

            async fn checkpoints(&mut self, after_seq: i64, limit: i64) -> $crate::store::Result<Vec<$crate::crypto::chain::Checkpoint>> {
                let rows = sqlx::query("SELECT * FROM audit_checkpoints WHERE seq > $1 ORDER BY seq LIMIT $2")
                    .bind(after_seq)
                    .bind(limit)
                    .fetch_all(&mut *self.tx)
                    .await?;
                rows.iter().map(checkpoint_from).collect()
            }

            async fn last_checkpoint(&mut self) -> $crate::store::Result<Option<$crate::crypto::chain::Checkpoint>> {
                let row = sqlx::query("SELECT * FROM audit_checkpoints ORDER BY seq DESC LIMIT 1")
                    .fetch_optional(&mut *self.tx)
                    .await?;
                row.as_ref().map(checkpoint_from).transpose()
            }

            async fn insert_key_rotation(&mut self, r: &$crate::store::KeyRotationRow) -> $crate::store::Result<()> {
                sqlx::query(
                    "INSERT INTO key_rotations (id, credential_id, state, old_key_id, new_key_id, started_by, started_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(&r.id)
                .bind(&r.credential_id)
                .bind(&r.state)
                .bind(&r.old_key_id)
                .bind(&r.new_key_id)
                .bind(&r.started_by)
                .bind(r.started_at)
                .bind(r.updated_at)
                .execute(&mut *self.tx)
                .await?;
                Ok(())
            }

            async fn open_key_rotation(&mut self, credential_id: &str) -> $crate::store::Result<Option<$crate::store::KeyRotationRow>> {
                use sqlx::Row;
                let row = sqlx::query(concat!("SELECT * FROM key_rotations WHERE credential_id = $1 AND state <> 'done'", $lock))
                    .bind(credential_id)
                    .fetch_optional(&mut *self.tx)
                    .await?;
                let Some(r) = row else { return Ok(None) };
                Ok(Some($crate::store::KeyRotationRow {
                    id: r.try_get("id")?,
                    credential_id: r.try_get("credential_id")?,
                    state: r.try_get("state")?,
                    old_key_id: r.try_get("old_key_id")?,
                    new_key_id: r.try_get("new_key_id")?,
                    started_by: r.try_get("started_by")?,
                    started_at: r.try_get("started_at")?,
                    updated_at: r.try_get("updated_at")?,
                }))
            }

            async fn open_key_rotation_ids(&mut self) -> $crate::store::Result<Vec<String>> {
                use sqlx::Row;
                let rows = sqlx::query("SELECT credential_id FROM key_rotations WHERE state <> 'done'")
                    .fetch_all(&mut *self.tx)
                    .await?;
                rows.iter().map(|r| Ok(r.try_get("credential_id")?)).collect()
            }

            async fn advance_key_rotation(&mut self, id: &str, from: &str, to: &str, new_key_id: Option<&str>, at: i64) -> $crate::store::Result<bool> {
                let r = sqlx::query(
                    "UPDATE key_rotations SET state = $1, new_key_id = COALESCE($2, new_key_id), updated_at = $3 WHERE id = $4 AND state = $5",
                )
                .bind(to)
                .bind(new_key_id)
                .bind(at)
                .bind(id)
                .bind(from)
                .execute(&mut *self.tx)
                .await?;
                Ok(r.rows_affected() == 1)
            }

            async fn insert_alert(&mut self, a: &$crate::store::AlertRow) -> $crate::store::Result<()> {
                sqlx::query(
                    "INSERT INTO alert_outbox (id, seq, channel, kind, payload, state, attempts, next_attempt_at, last_error, created_at, delivered_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                )
                .bind(&a.id)
                .bind(a.seq)
                .bind(&a.channel)
                .bind(&a.kind)
                .bind(&a.payload)
                .bind(&a.state)
                .bind(a.attempts)
                .bind(a.next_attempt_at)
                .bind(&a.last_error)
                .bind(a.created_at)
                .bind(a.delivered_at)
                .execute(&mut *self.tx)
                .await?;
                Ok(())
            }

            async fn lease_alert_channel(&mut self, channel: &str, owner: &str, now: i64, until: i64) -> $crate::store::Result<bool> {
                sqlx::query("INSERT INTO alert_channels (name) VALUES ($1) ON CONFLICT (name) DO NOTHING")
                    .bind(channel)
                    .execute(&mut *self.tx)
                    .await?;
                // Another process delivering this channel holds the row: skip it.
                let free = sqlx::query(concat!(
                    "SELECT name FROM alert_channels WHERE name = $1 AND (lease_until IS NULL OR lease_until < $2)",
                    $skip_locked
                ))
                .bind(channel)
                .bind(now)
                .fetch_optional(&mut *self.tx)
                .await?;
                if free.is_none() {
                    return Ok(false);
                }
                let r = sqlx::query(
                    "UPDATE alert_channels SET lease_owner = $1, lease_until = $2 WHERE name = $3 AND (lease_until IS NULL OR lease_until < $4)",
                )
                .bind(owner)
                .bind(until)
                .bind(channel)
                .bind(now)
                .execute(&mut *self.tx)
                .await?;
                Ok(r.rows_affected() == 1)
            }

            async fn release_alert_channel(&mut self, channel: &str, owner: &str) -> $crate::store::Result<()> {
                sqlx::query("UPDATE alert_channels SET lease_owner = NULL, lease_until = NULL WHERE name = $1 AND lease_owner = $2")
                    .bind(channel)
                    .bind(owner)
                    .execute(&mut *self.tx)
                    .await?;
                Ok(())
            }

            async fn due_alerts(&mut self, channel: &str, now: i64, limit: i64) -> $crate::store::Result<Vec<$crate::store::AlertRow>> {
                let rows = sqlx::query(
                    "SELECT * FROM alert_outbox WHERE channel = $1 AND state = 'pending' ORDER BY seq LIMIT $2",
                )
                .bind(channel)
                .bind(limit)
                .fetch_all(&mut *self.tx)
                .await?;
                let _ = now;
                rows.iter().map(alert_from).collect()
            }

            async fn set_alert_state(
                &mut self,
                id: &str,
                state: &str,
                attempts: i64,
                next_attempt_at: i64,
                last_error: Option<&str>,
                delivered_at: Option<i64>,
            ) -> $crate::store::Result<()> {
                sqlx::query(
                    "UPDATE alert_outbox SET state = $1, attempts = $2, next_attempt_at = $3, last_error = $4, delivered_at = $5 WHERE id = $6",
                )
                .bind(state)
                .bind(attempts)
                .bind(next_attempt_at)
                .bind(last_error)
                .bind(delivered_at)
                .bind(id)
                .execute(&mut *self.tx)
                .await?;
                Ok(())
            }

            async fn alerts(&mut self, state: Option<&str>, limit: i64) -> $crate::store::Result<Vec<$crate::store::AlertRow>> {
                let rows = match state {
                    Some(st) => sqlx::query("SELECT * FROM alert_outbox WHERE state = $1 ORDER BY seq DESC, channel LIMIT $2")
                        .bind(st)
                        .bind(limit)
                        .fetch_all(&mut *self.tx)
                        .await?,
                    None => sqlx::query("SELECT * FROM alert_outbox ORDER BY seq DESC, channel LIMIT $1")
                        .bind(limit)
                        .fetch_all(&mut *self.tx)
                        .await?,
                };
                rows.iter().map(alert_from).collect()
            }

            async fn retry_alert(&mut self, id: &str) -> $crate::store::Result<bool> {
                let r = sqlx::query(
                    "UPDATE alert_outbox SET state = 'pending', attempts = 0, next_attempt_at = 0 WHERE id = $1 AND state = 'dead'",
                )
                .bind(id)
                .execute(&mut *self.tx)
                .await?;
                Ok(r.rows_affected() == 1)
            }

            async fn policy_versions(&mut self) -> $crate::store::Result<Vec<(String, i64, String, Option<String>)>> {
                use sqlx::Row;
                let rows = sqlx::query(
                    "SELECT v.name, v.version, v.body, v.seal FROM policy_versions v \
                     WHERE v.version = (SELECT MAX(w.version) FROM policy_versions w WHERE w.name = v.name) ORDER BY v.name",
                )
                .fetch_all(&mut *self.tx)
                .await?;
                rows.iter()
                    .map(|r| Ok((r.try_get("name")?, r.try_get("version")?, r.try_get("body")?, r.try_get("seal")?)))
                    .collect()
            }

            async fn insert_policy_version(&mut self, v: &$crate::store::PolicyVersionRow) -> $crate::store::Result<()> {
                sqlx::query(
                    "INSERT INTO policy_versions (name, version, body, created_at, created_by, change_id, seal) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(&v.name)
                .bind(v.version)
                .bind(&v.body)
                .bind(v.at)
                .bind(&v.by)
                .bind(&v.change_id)
                .bind(&v.seal)
                .execute(&mut *self.tx)
                .await?;
                Ok(())
            }

            async fn insert_policy_change(&mut self, c: &$crate::store::PolicyChangeRow) -> $crate::store::Result<()> {
                sqlx::query(
                    "INSERT INTO policy_changes (id, kind, policy, base_version, quorum, proposed, credential_id, to_policy, diff, reason, proposer, state, created_at, expires_at, decided_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
                )
                .bind(&c.id)
                .bind(&c.kind)
                .bind(&c.policy)
                .bind(c.base_version)
                .bind(&c.quorum)
                .bind(&c.proposed)
                .bind(&c.credential_id)
                .bind(&c.to_policy)
                .bind(&c.diff)
                .bind(&c.reason)
                .bind(&c.proposer)
                .bind(&c.state)
                .bind(c.created_at)
                .bind(c.expires_at)
                .bind(c.decided_at)
                .execute(&mut *self.tx)
                .await?;
                Ok(())
            }

            async fn policy_change(&mut self, id: &str) -> $crate::store::Result<Option<$crate::store::PolicyChangeRow>> {
                let row = sqlx::query(concat!("SELECT * FROM policy_changes WHERE id = $1", $lock))
                    .bind(id)
                    .fetch_optional(&mut *self.tx)
                    .await?;
                row.as_ref().map(policy_change_from).transpose()
            }

            async fn policy_changes(&mut self, limit: i64) -> $crate::store::Result<Vec<$crate::store::PolicyChangeRow>> {
                let rows = sqlx::query("SELECT * FROM policy_changes ORDER BY created_at DESC, id LIMIT $1")
                    .bind(limit)
                    .fetch_all(&mut *self.tx)
                    .await?;
                rows.iter().map(policy_change_from).collect()
            }

            async fn close_policy_change(&mut self, id: &str, state: &str, at: i64) -> $crate::store::Result<bool> {
                let r = sqlx::query("UPDATE policy_changes SET state = $1, decided_at = $2 WHERE id = $3 AND state = 'pending'")
                    .bind(state)
                    .bind(at)
                    .bind(id)
                    .execute(&mut *self.tx)
                    .await?;
                Ok(r.rows_affected() == 1)
            }

            async fn insert_policy_change_decision(&mut self, change_id: &str, d: &$crate::store::DecisionRow) -> $crate::store::Result<()> {
                sqlx::query(
                    "INSERT INTO policy_change_decisions (change_id, custodian, decision, reason, groups, totp_step, at, totp_code) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(change_id)
                .bind(&d.custodian)
                .bind(&d.decision)
                .bind(&d.reason)
                .bind($crate::store::sql::json_list(&d.groups))
                .bind(d.totp_step)
                .bind(d.at)
                .bind(d.totp_code.as_ref().map(|c| c.expose().to_owned()))
                .execute(&mut *self.tx)
                .await?;
                Ok(())
            }

            async fn policy_change_decisions(&mut self, change_id: &str) -> $crate::store::Result<Vec<$crate::store::DecisionRow>> {
                use sqlx::Row;
                let rows = sqlx::query("SELECT * FROM policy_change_decisions WHERE change_id = $1 ORDER BY at, custodian")
                    .bind(change_id)
                    .fetch_all(&mut *self.tx)
                    .await?;
                rows.iter()
                    .map(|r| {
                        Ok($crate::store::DecisionRow {
                            request_id: r.try_get("change_id")?,
                            custodian: r.try_get("custodian")?,
                            decision: r.try_get("decision")?,
                            reason: r.try_get("reason")?,
                            groups: $crate::store::sql::parse_list(&r.try_get::<String, _>("groups")?)?,
                            totp_step: r.try_get("totp_step")?,
                            at: r.try_get("at")?,
                            totp_code: r
                                .try_get::<Option<String>, _>("totp_code")?
                                .map($crate::crypto::totp::SpentCode::new),
                        })
                    })
                    .collect()
            }

            async fn set_credential_policy(&mut self, id: &str, from: &str, to: &str, at: i64, seal: &str) -> $crate::store::Result<bool> {
                let r = sqlx::query("UPDATE credentials SET policy = $1, updated_at = $2, policy_seal = $5 WHERE id = $3 AND policy = $4")
                    .bind(to)
                    .bind(at)
                    .bind(id)
                    .bind(from)
                    .bind(seal)
                    .execute(&mut *self.tx)
                    .await?;
                Ok(r.rows_affected() == 1)
            }

            async fn last_decisions(&mut self) -> $crate::store::Result<Vec<(String, i64)>> {
                use sqlx::Row;
                let rows = sqlx::query("SELECT custodian, MAX(at) AS at FROM decisions GROUP BY custodian")
                    .fetch_all(&mut *self.tx)
                    .await?;
                rows.iter().map(|r| Ok((r.try_get("custodian")?, r.try_get("at")?))).collect()
            }

            async fn count_open_requests(&mut self, policy: &str, now: i64) -> $crate::store::Result<i64> {
                use sqlx::Row;
                sqlx::query(concat!("SELECT id FROM credentials WHERE policy = $1 ORDER BY id", $lock))
                    .bind(policy)
                    .fetch_all(&mut *self.tx)
                    .await?;
                let r = sqlx::query(
                    "SELECT COUNT(*) AS n FROM requests r JOIN credentials c ON c.id = r.credential_id \
                     WHERE c.policy = $1 AND ((r.state = 'pending' AND r.expires_at > $2) \
                     OR (r.state = 'approved' AND r.release_deadline > $2))",
                )
                .bind(policy)
                .bind(now)
                .fetch_one(&mut *self.tx)
                .await?;
                Ok(r.try_get("n")?)
            }

            async fn audit_base(&mut self) -> $crate::store::Result<(i64, String)> {
                use sqlx::Row;
                let row = sqlx::query("SELECT seq, hash FROM audit_base WHERE id = 1")
                    .fetch_optional(&mut *self.tx)
                    .await?;
                Ok(match row {
                    Some(r) => (r.try_get("seq")?, r.try_get("hash")?),
                    None => (0, $crate::crypto::chain::GENESIS.into()),
                })
            }

            async fn prune_audit(&mut self, seq: i64, hash: &str) -> $crate::store::Result<bool> {
                let found = sqlx::query("SELECT seq FROM audit_events WHERE seq = $1 AND hash = $2")
                    .bind(seq)
                    .bind(hash)
                    .fetch_optional(&mut *self.tx)
                    .await?;
                if found.is_none() {
                    return Ok(false);
                }
                sqlx::query("DELETE FROM audit_events WHERE seq <= $1")
                    .bind(seq)
                    .execute(&mut *self.tx)
                    .await?;
                sqlx::query(
                    "INSERT INTO audit_base (id, seq, hash) VALUES (1, $1, $2) \
                     ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
                )
                .bind(seq)
                .bind(hash)
                .execute(&mut *self.tx)
                .await?;
                Ok(true)
            }

            async fn sink_cursor(&mut self, sink: &str) -> $crate::store::Result<$crate::store::SinkCursor> {
                use sqlx::Row;
                sqlx::query("INSERT INTO audit_sink_cursor (sink) VALUES ($1) ON CONFLICT (sink) DO NOTHING")
                    .bind(sink)
                    .execute(&mut *self.tx)
                    .await?;
                let r = sqlx::query("SELECT * FROM audit_sink_cursor WHERE sink = $1")
                    .bind(sink)
                    .fetch_one(&mut *self.tx)
                    .await?;
                Ok($crate::store::SinkCursor {
                    sink: r.try_get("sink")?,
                    events_through: r.try_get("events_through")?,
                    checkpoints_through: r.try_get("checkpoints_through")?,
                    lease_owner: r.try_get("lease_owner")?,
                    lease_until: r.try_get("lease_until")?,
                    attempts: r.try_get("attempts")?,
                    next_attempt_at: r.try_get("next_attempt_at")?,
                    last_error: r.try_get("last_error")?,
                    last_attempt_at: r.try_get("last_attempt_at")?,
                    delivered_at: r.try_get("delivered_at")?,
                })
            }

            async fn lease_sink(&mut self, sink: &str, owner: &str, now: i64, until: i64) -> $crate::store::Result<bool> {
                let r = sqlx::query(
                    "UPDATE audit_sink_cursor SET lease_owner = $1, lease_until = $2 \
                     WHERE sink = $3 AND next_attempt_at <= $4 AND (lease_until IS NULL OR lease_until < $4)",
                )
                .bind(owner)
                .bind(until)
                .bind(sink)
                .bind(now)
                .execute(&mut *self.tx)
                .await?;
                Ok(r.rows_affected() == 1)
            }

            async fn sink_delivered(
                &mut self,
                sink: &str,
                owner: &str,
                events_through: i64,
                checkpoints_through: i64,
                now: i64,
            ) -> $crate::store::Result<bool> {
                let r = sqlx::query(
                    "UPDATE audit_sink_cursor SET events_through = $1, checkpoints_through = $2, attempts = 0, \
                     next_attempt_at = 0, last_error = NULL, last_attempt_at = $3, delivered_at = $3, \
                     lease_owner = NULL, lease_until = NULL \
                     WHERE sink = $4 AND lease_owner = $5 AND events_through <= $1",
                )
                .bind(events_through)
                .bind(checkpoints_through)
                .bind(now)
                .bind(sink)
                .bind(owner)
                .execute(&mut *self.tx)
                .await?;
                Ok(r.rows_affected() == 1)
            }

            async fn sink_failed(&mut self, sink: &str, owner: &str, error: &str, now: i64, next_attempt_at: i64) -> $crate::store::Result<()> {
                sqlx::query(
                    "UPDATE audit_sink_cursor SET attempts = attempts + 1, last_error = $1, last_attempt_at = $2, \
                     next_attempt_at = $3, lease_owner = NULL, lease_until = NULL WHERE sink = $4 AND lease_owner = $5",
                )
                .bind(error)
                .bind(now)
                .bind(next_attempt_at)
                .bind(sink)
                .bind(owner)
                .execute(&mut *self.tx)
                .await?;
                Ok(())
            }

            async fn insert_recovery_set(&mut self, s: &$crate::store::RecoverySetRow) -> $crate::store::Result<()> {
                sqlx::query(
                    "INSERT INTO recovery_sets (set_id, threshold, share_count, recipient, key_check, state, created_at, created_by) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(&s.set_id)
                .bind(s.threshold)
                .bind(s.share_count)
                .bind(&s.recipient)
                .bind(&s.key_check)
                .bind(&s.state)
                .bind(s.created_at)
                .bind(&s.created_by)
                .execute(&mut *self.tx)
                .await?;
                Ok(())
            }

            async fn insert_recovery_share(&mut self, s: &$crate::store::RecoveryShareRow) -> $crate::store::Result<()> {
                sqlx::query(
                    "INSERT INTO recovery_shares (set_id, idx, custodian, age_recipient, commitment, checked_at) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(&s.set_id)
                .bind(s.idx)
                .bind(&s.custodian)
                .bind(&s.age_recipient)
                .bind(&s.commitment)
                .bind(s.checked_at)
                .execute(&mut *self.tx)
                .await?;
                Ok(())
            }

            async fn active_recovery_set(&mut self) -> $crate::store::Result<Option<$crate::store::RecoverySetRow>> {
                use sqlx::Row;
                let row = sqlx::query(concat!("SELECT * FROM recovery_sets WHERE state = 'active'", $lock))
                    .fetch_optional(&mut *self.tx)
                    .await?;
                let Some(r) = row else { return Ok(None) };
                Ok(Some($crate::store::RecoverySetRow {
                    set_id: r.try_get("set_id")?,
                    threshold: r.try_get("threshold")?,
                    share_count: r.try_get("share_count")?,
                    recipient: r.try_get("recipient")?,
                    key_check: r.try_get("key_check")?,
                    state: r.try_get("state")?,
                    created_at: r.try_get("created_at")?,
                    created_by: r.try_get("created_by")?,
                }))
            }

            async fn recovery_shares(&mut self, set_id: &str) -> $crate::store::Result<Vec<$crate::store::RecoveryShareRow>> {
                use sqlx::Row;
                let rows = sqlx::query("SELECT * FROM recovery_shares WHERE set_id = $1 ORDER BY idx")
                    .bind(set_id)
                    .fetch_all(&mut *self.tx)
                    .await?;
                rows.iter()
                    .map(|r| {
                        Ok($crate::store::RecoveryShareRow {
                            set_id: r.try_get("set_id")?,
                            idx: r.try_get("idx")?,
                            custodian: r.try_get("custodian")?,
                            age_recipient: r.try_get("age_recipient")?,
                            commitment: r.try_get("commitment")?,
                            checked_at: r.try_get("checked_at")?,
                        })
                    })
                    .collect()
            }

            async fn mark_share_checked(&mut self, set_id: &str, idx: i64, at: i64) -> $crate::store::Result<()> {
                sqlx::query("UPDATE recovery_shares SET checked_at = $1 WHERE set_id = $2 AND idx = $3")
                    .bind(at)
                    .bind(set_id)
                    .bind(idx)
                    .execute(&mut *self.tx)
                    .await?;
                Ok(())
            }

            async fn retire_recovery_set(&mut self, set_id: &str) -> $crate::store::Result<bool> {
                let r = sqlx::query("UPDATE recovery_sets SET state = 'retired' WHERE set_id = $1 AND state = 'active'")
                    .bind(set_id)
                    .execute(&mut *self.tx)
                    .await?;
                Ok(r.rows_affected() == 1)
            }

            async fn set_recovery_wrap(
                &mut self,
                credential_id: &str,
                version: i64,
                old_set: &str,
                new_set: &str,
                wrap: &[u8],
            ) -> $crate::store::Result<bool> {
                let r = sqlx::query(
                    "UPDATE credential_versions SET recovery_set = $1, recovery_wrap = $2 \
                     WHERE credential_id = $3 AND version = $4 AND recovery_set = $5",
                )
                .bind(new_set)
                .bind(wrap)
                .bind(credential_id)
                .bind(version)
                .bind(old_set)
                .execute(&mut *self.tx)
                .await?;
                Ok(r.rows_affected() == 1)
            }

            async fn set_totp_recovery_wrap(&mut self, name: &str, set_id: &str, wrap: &[u8]) -> $crate::store::Result<()> {
                sqlx::query("UPDATE custodians SET totp_recovery_set = $1, totp_recovery_wrap = $2 WHERE name = $3")
                    .bind(set_id)
                    .bind(wrap)
                    .bind(name)
                    .execute(&mut *self.tx)
                    .await?;
                Ok(())
            }

            async fn insert_recovery_session(&mut self, s: &$crate::store::RecoverySessionRow) -> $crate::store::Result<()> {
                sqlx::query(
                    "INSERT INTO recovery_sessions (id, request_id, set_id, recipient, replica, opened_by, opened_at, expires_at, state, closed_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .bind(&s.id)
                .bind(&s.request_id)
                .bind(&s.set_id)
                .bind(&s.recipient)
                .bind(&s.replica)
                .bind(&s.opened_by)
                .bind(s.opened_at)
                .bind(s.expires_at)
                .bind(&s.state)
                .bind(s.closed_at)
                .execute(&mut *self.tx)
                .await?;
                Ok(())
            }

            async fn recovery_session(&mut self, id: &str) -> $crate::store::Result<Option<$crate::store::RecoverySessionRow>> {
                let row = sqlx::query(concat!("SELECT * FROM recovery_sessions WHERE id = $1", $lock))
                    .bind(id)
                    .fetch_optional(&mut *self.tx)
                    .await?;
                row.as_ref().map(session_from).transpose()
            }

            async fn supersede_recovery_sessions(&mut self, request_id: &str, at: i64) -> $crate::store::Result<u64> {
                let r = sqlx::query(
                    "UPDATE recovery_sessions SET state = 'superseded', closed_at = $1 WHERE request_id = $2 AND state = 'open'",
                )
                .bind(at)
                .bind(request_id)
                .execute(&mut *self.tx)
                .await?;
                Ok(r.rows_affected())
            }

            async fn close_recovery_session(&mut self, id: &str, state: &str, at: i64) -> $crate::store::Result<bool> {
                let r = sqlx::query("UPDATE recovery_sessions SET state = $1, closed_at = $2 WHERE id = $3 AND state = 'open'")
                    .bind(state)
                    .bind(at)
                    .bind(id)
                    .execute(&mut *self.tx)
                    .await?;
                Ok(r.rows_affected() == 1)
            }

            async fn insert_recovery_submission(&mut self, s: &$crate::store::RecoverySubmissionRow) -> $crate::store::Result<()> {
                sqlx::query(
                    "INSERT INTO recovery_submissions (session_id, idx, custodian, submitted_at, prior_step) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(&s.session_id)
                .bind(s.idx)
                .bind(&s.custodian)
                .bind(s.submitted_at)
                .bind(s.prior_step)
                .execute(&mut *self.tx)
                .await?;
                Ok(())
            }

            async fn recovery_submissions(&mut self, session_id: &str) -> $crate::store::Result<Vec<$crate::store::RecoverySubmissionRow>> {
                use sqlx::Row;
                let rows = sqlx::query("SELECT * FROM recovery_submissions WHERE session_id = $1 ORDER BY idx")
                    .bind(session_id)
                    .fetch_all(&mut *self.tx)
                    .await?;
                rows.iter()
                    .map(|r| {
                        Ok($crate::store::RecoverySubmissionRow {
                            session_id: r.try_get("session_id")?,
                            idx: r.try_get("idx")?,
                            custodian: r.try_get("custodian")?,
                            submitted_at: r.try_get("submitted_at")?,
                            prior_step: r.try_get("prior_step")?,
                        })
                    })
                    .collect()
            }

            async fn delete_recovery_submission(&mut self, session_id: &str, idx: i64) -> $crate::store::Result<()> {
                sqlx::query("DELETE FROM recovery_submissions WHERE session_id = $1 AND idx = $2")
                    .bind(session_id)
                    .bind(idx)
                    .execute(&mut *self.tx)
                    .await?;
                Ok(())
            }

            async fn custody_gauges(&mut self, now: i64) -> $crate::store::Result<$crate::metrics::CustodyGauges> {
                use sqlx::Row;
                let pairs = |rows: Vec<$row>| -> $crate::store::Result<Vec<(String, i64)>> {
                    rows.iter()
                        .map(|r| Ok((r.try_get::<String, _>(0)?, r.try_get::<i64, _>(1)?)))
                        .collect()
                };
                let requests_by_state = pairs(
                    sqlx::query("SELECT state, COUNT(*) FROM requests GROUP BY state")
                        .fetch_all(&mut *self.tx)
                        .await?,
                )?;
                let custodians_locked_out: i64 =
                    sqlx::query("SELECT COUNT(*) FROM custodians WHERE locked_until > $1")
                        .bind(now)
                        .fetch_one(&mut *self.tx)
                        .await?
                        .try_get(0)?;
                let alerts_by_state = pairs(
                    sqlx::query("SELECT state, COUNT(*) FROM alert_outbox WHERE state <> 'delivered' GROUP BY state")
                        .fetch_all(&mut *self.tx)
                        .await?,
                )?;
                let audit_head_seq: i64 = sqlx::query("SELECT seq FROM audit_head WHERE id = 1")
                    .fetch_one(&mut *self.tx)
                    .await?
                    .try_get(0)?;
                let sink_backlog = pairs(
                    sqlx::query("SELECT sink, events_through FROM audit_sink_cursor")
                        .fetch_all(&mut *self.tx)
                        .await?,
                )?
                .into_iter()
                .map(|(sink, through)| (sink, (audit_head_seq - through).max(0)))
                .collect();
                Ok($crate::metrics::CustodyGauges {
                    requests_by_state,
                    custodians_locked_out,
                    alerts_by_state,
                    audit_head_seq,
                    sink_backlog,
                    ..Default::default()
                })
            }

            async fn is_token_revoked(&mut self, jti: &str) -> $crate::store::Result<bool> {
                let row = sqlx::query("SELECT jti FROM revoked_tokens WHERE jti = $1")
                    .bind(jti)
                    .fetch_optional(&mut *self.tx)
                    .await?;
                Ok(row.is_some())
            }

            async fn revoke_token(&mut self, jti: &str, at: i64, by: &str) -> $crate::store::Result<bool> {
                let r = sqlx::query(
                    "INSERT INTO revoked_tokens (jti, revoked_at, revoked_by) VALUES ($1, $2, $3) ON CONFLICT (jti) DO NOTHING",
                )
                .bind(jti)
                .bind(at)
                .bind(by)
                .execute(&mut *self.tx)
                .await?;
                Ok(r.rows_affected() == 1)
            }
        }
    };
}

pub(crate) use impl_sql_tx;

/// The `Store` implementation both SQL backends share; they differ only in
/// the statement that opens each kind of transaction (`None`: `BEGIN`).
macro_rules! impl_sql_store {
    ($store:ident, $tx:ident, backend = $backend:expr, write = $write:expr, snapshot = $snapshot:expr) => {
        #[async_trait::async_trait]
        impl $crate::store::Store for $store {
            fn backend(&self) -> $crate::store::Backend {
                $backend
            }

            async fn begin(&self) -> $crate::store::Result<Box<dyn $crate::store::Tx>> {
                let tx = match $write {
                    Some(stmt) => self.pool.begin_with(stmt).await?,
                    None => self.pool.begin().await?,
                };
                Ok(Box::new($tx::new(tx)))
            }

            async fn begin_read(&self) -> $crate::store::Result<Box<dyn $crate::store::Tx>> {
                Ok(Box::new($tx::new(self.pool.begin().await?)))
            }

            async fn begin_snapshot(&self) -> $crate::store::Result<Box<dyn $crate::store::Tx>> {
                let tx = match $snapshot {
                    Some(stmt) => self.pool.begin_with(stmt).await?,
                    None => self.pool.begin().await?,
                };
                Ok(Box::new($tx::new(tx)))
            }

            async fn ping(&self) -> $crate::store::Result<()> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }

            async fn put_envelope(&self, id: &str, credential_id: &str, version: i64, envelope: &[u8]) -> $crate::store::Result<()> {
                sqlx::query("INSERT INTO secret_envelopes (id, credential_id, version, envelope) VALUES ($1, $2, $3, $4)")
                    .bind(id)
                    .bind(credential_id)
                    .bind(version)
                    .bind(envelope)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn get_envelope(&self, id: &str, credential_id: &str) -> $crate::store::Result<Option<Vec<u8>>> {
                use sqlx::Row;
                let row = sqlx::query("SELECT envelope FROM secret_envelopes WHERE id = $1 AND credential_id = $2")
                    .bind(id)
                    .bind(credential_id)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.map(|r| r.try_get("envelope")).transpose()?)
            }

            async fn replace_envelope(&self, id: &str, credential_id: &str, old: &[u8], new: &[u8]) -> $crate::store::Result<bool> {
                let r = sqlx::query(
                    "UPDATE secret_envelopes SET envelope = $1 WHERE id = $2 AND credential_id = $3 AND envelope = $4",
                )
                .bind(new)
                .bind(id)
                .bind(credential_id)
                .bind(old)
                .execute(&self.pool)
                .await?;
                Ok(r.rows_affected() == 1)
            }

            async fn close(&self) {
                self.pool.close().await
            }
        }
    };
}

pub(crate) use impl_sql_store;
