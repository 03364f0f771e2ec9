//! Deposit, rotation and metadata of credentials.

use crate::domain::Action;
use crate::domain::Code;
use std::collections::BTreeMap;

use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use zeroize::Zeroizing;

use super::quorum::enrolled_groups;
use super::views::{CredentialView, DepositBody, PolicyView, RotateBody};
use super::{refuse, refuse_as, App, AppError, AppResult, Done, Event};
use crate::auth::Identity;
use crate::crypto::envelope::{credential_aad, Envelope};
use crate::domain::{AccountId, CredentialName, FieldName, Policy, Role};
use crate::keys::EncryptionContext;
use crate::secrets::SecretLocation;
use crate::store::{CredentialRow, StoreError, Tx, VersionRow};

pub const MAX_FIELDS: usize = 32;
pub const MAX_FIELD_BYTES: usize = 16 * 1024;

/// Where a sealed version went.
pub(crate) struct Sealed {
    secret_ref: String,
    key_id: String,
    recovery: Option<super::recovery::RecoveryCopy>,
}

impl Sealed {
    fn version_row(
        self,
        credential_id: &str,
        version: i64,
        field_names: Vec<String>,
        now: i64,
        by: &str,
        store: &str,
    ) -> VersionRow {
        let (recovery_set, recovery_wrap, recovery_envelope) = match self.recovery {
            Some(r) => (Some(r.set_id), Some(r.wrap), Some(r.envelope)),
            None => (None, None, None),
        };
        VersionRow {
            credential_id: credential_id.into(),
            version,
            secret_store: store.into(),
            secret_ref: self.secret_ref,
            key_id: self.key_id,
            field_names,
            created_at: now,
            created_by: by.into(),
            recovery_set,
            recovery_wrap,
            recovery_envelope,
        }
    }
}

fn credential_target(name: &str) -> String {
    format!("credential:{name}")
}

/// Check field names and sizes; return the names (for metadata and audit)
/// and the plaintext payload, in a zeroizing buffer.
fn payload(
    fields: &BTreeMap<String, SecretString>,
    code_only: &[String],
) -> AppResult<(Vec<String>, Zeroizing<Vec<u8>>)> {
    for f in code_only {
        let Some(v) = fields.get(f) else {
            return refuse(
                Code::InvalidFields,
                format!("code_only names {f}, which is not a field"),
            );
        };
        if crate::crypto::totp::code_of_base32_seed(v.expose_secret(), 0).is_none() {
            return refuse(
                Code::InvalidFields,
                format!("field {f} is released as a TOTP code, so it must be a base32 TOTP seed of at least 128 bits"),
            );
        }
    }
    if fields.is_empty() {
        return refuse(
            Code::InvalidFields,
            "a credential needs at least one field, e.g. --field password=-",
        );
    }
    if fields.len() > MAX_FIELDS {
        return refuse(Code::InvalidFields, format!("at most {MAX_FIELDS} fields"));
    }
    let mut names = Vec::new();
    let mut exposed: BTreeMap<&str, &str> = BTreeMap::new();
    for (k, v) in fields {
        let name = FieldName::parse(k).or_else(|e| refuse(Code::InvalidFields, e.0))?;
        let v = v.expose_secret();
        if v.is_empty() {
            return refuse(Code::InvalidFields, format!("field {name} is empty"));
        }
        if v.len() > MAX_FIELD_BYTES {
            return refuse(
                Code::InvalidFields,
                format!("field {name} is longer than {MAX_FIELD_BYTES} bytes"),
            );
        }
        names.push(name.to_string());
        exposed.insert(k.as_str(), v);
    }
    let bytes = Zeroizing::new(
        serde_json::to_vec(&json!({ "fields": exposed, "code_only": code_only }))
            .expect("a string map always serialises"),
    );
    Ok((names, bytes))
}

impl App {
    async fn policy(&self, tx: &mut dyn Tx, name: &str) -> AppResult<Policy> {
        let all = self.effective_policies(tx).await?;
        match all.get(name) {
            Some((p, _)) => Ok(p.clone()),
            None => {
                let known: Vec<String> = all.keys().cloned().collect();
                refuse_as(
                    422,
                    Code::UnknownPolicy,
                    format!("no policy named {name:?}; loaded: {}", known.join(", ")),
                )
            }
        }
    }

    #[tracing::instrument(skip_all, fields(caller = %who.subject))]
    pub async fn deposit(&self, who: &Identity, body: DepositBody) -> AppResult<CredentialView> {
        let target = credential_target(&body.name);
        let res = self.deposit_prepare(who, &body).await;
        let mut tx = self.store.begin().await?;
        let res = match res {
            Ok(prepared) => self.deposit_tx(tx.as_mut(), who, &body, prepared).await,
            Err(e) => Err(e),
        };
        self.finish(tx, Some(who), Action::CredentialDeposit, &target, res)
            .await
    }

    /// Everything that can be refused before any key is generated, then the
    /// envelope (written to the secret store outside the transaction, under
    /// a fresh id, so a failure leaves only inert ciphertext).
    async fn deposit_prepare(
        &self,
        who: &Identity,
        body: &DepositBody,
    ) -> AppResult<(String, Vec<String>, Sealed)> {
        self.require(who, Role::Admin)?;
        let name = CredentialName::parse(&body.name).or_else(|e| refuse(Code::InvalidName, e.0))?;
        let account =
            AccountId::parse(&body.account_id).or_else(|e| refuse(Code::InvalidAccount, e.0))?;
        let policy = {
            let mut tx = self.store.begin_read().await?;
            let p = self.policy(tx.as_mut(), &body.policy).await;
            tx.rollback().await?;
            p?
        };
        let (field_names, plaintext) = payload(&body.fields, &body.code_only)?;
        {
            let mut tx = self.store.begin_read().await?;
            let exists = tx.credential_by_name(name.as_str()).await?.is_some();
            let enrolled = enrolled_groups(tx.as_mut(), None).await?;
            tx.rollback().await?;
            if exists {
                return refuse(
                    Code::CredentialExists,
                    format!("credential {name} already exists: use `breakglass credential rotate` for a new version"),
                );
            }
            let s = policy.satisfiability(&enrolled);
            if !s.satisfiable {
                return refuse(Code::PolicyUnsatisfiable, s.explanation);
            }
        }
        let id = uuid::Uuid::new_v4().to_string();
        let sealed = self
            .seal_version(
                &id,
                name.as_str(),
                account.as_str(),
                policy.name.as_str(),
                1,
                &plaintext,
            )
            .await?;
        Ok((id, field_names, sealed))
    }

    async fn seal_version(
        &self,
        id: &str,
        name: &str,
        account: &str,
        policy: &str,
        version: i64,
        plaintext: &[u8],
    ) -> AppResult<Sealed> {
        let (env, key) = Envelope::seal_keeping_key(
            self.keys.as_ref(),
            &EncryptionContext::credential(id, version),
            &credential_aad(id, version),
            plaintext,
        )
        .await?;
        // With a recovery share set, the data key is also wrapped to the
        // recovery key, so k custodians can recover without the key service.
        let recovery = {
            let mut tx = self.store.begin_read().await?;
            let set = tx.active_recovery_set().await?;
            tx.rollback().await?;
            match set {
                None => None,
                Some(set) => Some(super::recovery::RecoveryCopy {
                    wrap: crate::crypto::recovery_wrap::wrap_for_recovery(
                        &set.recipient,
                        id,
                        version,
                        &key,
                    )?,
                    set_id: set.set_id,
                    envelope: env.to_bytes(),
                }),
            }
        };
        drop(key);
        let loc = SecretLocation {
            credential_id: id.into(),
            credential_name: name.into(),
            account_id: account.into(),
            policy: policy.into(),
            version,
        };
        let r = self.secrets.put(&loc, &env.to_bytes()).await?;
        Ok(Sealed {
            secret_ref: r.0,
            key_id: env.kid,
            recovery,
        })
    }

    async fn deposit_tx(
        &self,
        tx: &mut dyn Tx,
        who: &Identity,
        body: &DepositBody,
        (id, field_names, sealed): (String, Vec<String>, Sealed),
    ) -> AppResult<Done<CredentialView>> {
        // Re-check inside the transaction: custodians may have changed.
        let policy = self.policy(tx, &body.policy).await?;
        let s = policy.satisfiability(&enrolled_groups(tx, None).await?);
        if !s.satisfiable {
            return refuse(Code::PolicyUnsatisfiable, s.explanation);
        }
        let now = self.now_ms();
        let row = CredentialRow {
            id: id.clone(),
            name: body.name.clone(),
            account_id: body.account_id.clone(),
            policy: policy.name.to_string(),
            current_version: 1,
            exposed: false,
            exposed_at: None,
            last_released_at: None,
            created_at: now,
            created_by: who.subject.clone(),
            updated_at: now,
            access_key_id: access_key(body.access_key_id.as_deref())?,
            drill: body.drill,
            reminded_at: None,
            policy_seal: Some(super::proof::seal_policy_of(
                &self.audit_key,
                &id,
                policy.name.as_str(),
            )),
        };
        match tx.insert_credential(&row).await {
            Err(StoreError::Conflict(_)) => {
                return refuse(
                    Code::CredentialExists,
                    format!("credential {} already exists", body.name),
                )
            }
            other => other?,
        }
        let v = sealed.version_row(
            &id,
            1,
            field_names.clone(),
            now,
            &who.subject,
            self.secrets.kind(),
        );
        let key_id = v.key_id.clone();
        tx.insert_version(&v).await?;
        let ev = Event::new(
            Action::CredentialDeposit,
            credential_target(&body.name),
            json!({
                "account_id": body.account_id,
                "policy": policy.name,
                "version": 1,
                "fields": field_names,
                "key_id": key_id,
                "secret_store": self.secrets.kind(),
            }),
        );
        Ok(Done::new(CredentialView::new(&row, &[v]), ev))
    }

    /// Store a new version: clears `exposed`.
    #[tracing::instrument(skip_all, fields(caller = %who.subject, name = %name))]
    pub async fn rotate(
        &self,
        who: &Identity,
        name: &str,
        body: RotateBody,
    ) -> AppResult<CredentialView> {
        let target = credential_target(name);
        let prepared = self.rotate_prepare(who, name, &body).await;
        let mut tx = self.store.begin().await?;
        let res = match prepared {
            Ok(p) => match access_key(body.access_key_id.as_deref()) {
                Ok(key) => {
                    let id = p.0.id.clone();
                    let r = self.rotate_tx(tx.as_mut(), who, p).await;
                    match r {
                        Ok(done) => match tx.set_access_key_id(&id, key.as_deref()).await {
                            Ok(()) => Ok(done),
                            Err(e) => Err(e.into()),
                        },
                        e => e,
                    }
                }
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        self.finish(tx, Some(who), Action::CredentialRotate, &target, res)
            .await
    }

    async fn rotate_prepare(
        &self,
        who: &Identity,
        name: &str,
        body: &RotateBody,
    ) -> AppResult<(CredentialRow, i64, Vec<String>, Sealed)> {
        self.require(who, Role::Admin)?;
        let (field_names, plaintext) = payload(&body.fields, &body.code_only)?;
        let mut tx = self.store.begin_read().await?;
        let c = tx.credential_by_name(name).await?;
        tx.rollback().await?;
        let Some(c) = c else {
            return refuse(
                Code::CredentialNotFound,
                format!("no credential named {name}"),
            );
        };
        let version = c.current_version + 1;
        let sealed = self
            .seal_version(
                &c.id,
                &c.name,
                &c.account_id,
                &c.policy,
                version,
                &plaintext,
            )
            .await?;
        Ok((c, version, field_names, sealed))
    }

    async fn rotate_tx(
        &self,
        tx: &mut dyn Tx,
        who: &Identity,
        (c, version, field_names, sealed): (CredentialRow, i64, Vec<String>, Sealed),
    ) -> AppResult<Done<CredentialView>> {
        let now = self.now_ms();
        let was_exposed = tx
            .credential_by_id(&c.id)
            .await?
            .map(|c| c.exposed)
            .unwrap_or(false);
        if !tx.advance_credential_version(&c.id, version, now).await? {
            return refuse(
                Code::ConcurrentRotation,
                "another version was deposited at the same time: try again",
            );
        }
        let v = sealed.version_row(
            &c.id,
            version,
            field_names.clone(),
            now,
            &who.subject,
            self.secrets.kind(),
        );
        let key_id = v.key_id.clone();
        tx.insert_version(&v).await?;
        let row = tx.credential_by_id(&c.id).await?.ok_or_else(|| {
            AppError::Internal(anyhow::anyhow!("credential vanished during rotation"))
        })?;
        let versions = tx.versions(&c.id).await?;
        let ev = Event::new(
            Action::CredentialRotate,
            credential_target(&c.name),
            json!({ "version": version, "fields": field_names, "key_id": key_id, "was_exposed": was_exposed }),
        );
        Ok(Done::new(CredentialView::new(&row, &versions), ev))
    }

    #[tracing::instrument(skip_all, fields(caller = %who.subject))]
    pub async fn list_credentials(&self, who: &Identity) -> AppResult<Vec<CredentialView>> {
        let mut tx = self.store.begin_read().await?;
        let res = async {
            let mut out = Vec::new();
            for c in tx.credentials().await? {
                let versions = tx.versions(&c.id).await?;
                out.push(CredentialView::new(&c, &versions));
            }
            Ok(out)
        }
        .await;
        self.finish_read(tx, who, Action::CredentialList, "credentials", res)
            .await
    }

    #[tracing::instrument(skip_all, fields(caller = %who.subject, name = %name))]
    pub async fn show_credential(&self, who: &Identity, name: &str) -> AppResult<CredentialView> {
        let mut tx = self.store.begin_read().await?;
        let res = async {
            let Some(c) = tx.credential_by_name(name).await? else {
                return refuse(
                    Code::CredentialNotFound,
                    format!("no credential named {name}"),
                );
            };
            let versions = tx.versions(&c.id).await?;
            Ok(CredentialView::new(&c, &versions))
        }
        .await;
        self.finish_read(
            tx,
            who,
            Action::CredentialShow,
            &credential_target(name),
            res,
        )
        .await
    }

    #[tracing::instrument(skip_all, fields(caller = %who.subject))]
    pub async fn list_policies(&self, who: &Identity) -> AppResult<Vec<PolicyView>> {
        let mut tx = self.store.begin_read().await?;
        let res = async {
            let enrolled = enrolled_groups(tx.as_mut(), None).await?;
            Ok(self
                .effective_policies(tx.as_mut())
                .await?
                .into_values()
                .map(|(p, _)| PolicyView {
                    quorum: p.describe(),
                    satisfiability: p.satisfiability(&enrolled),
                    policy: p,
                })
                .collect())
        }
        .await;
        self.finish_read(tx, who, Action::PolicyList, "policies", res)
            .await
    }
}

/// An AWS access key id (`AKIA…`, 16 to 128 upper-case letters and digits).
fn access_key(key: Option<&str>) -> AppResult<Option<String>> {
    match key.map(str::trim) {
        None | Some("") => Ok(None),
        Some(k)
            if (16..=128).contains(&k.len())
                && k.bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()) =>
        {
            Ok(Some(k.to_string()))
        }
        Some(_) => refuse(
            Code::InvalidAccessKeyId,
            "access_key_id is an AWS access key id (AKIA…, upper-case letters and digits)",
        ),
    }
}
